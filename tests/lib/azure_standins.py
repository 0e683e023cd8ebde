#!/usr/bin/env python3
"""Azure test helpers (python3 stdlib only): a managed-identity (IMDS) stand-in
and a tiny Blob client for Azurite that signs with SharedKey and makes SAS
tokens.  The signing here is written from Microsoft's documentation, not from
lfsfs's C code, so the two cross-check each other.

  azure_standins.py imds
      Serve an IMDS stand-in on 127.0.0.1 (free port, printed on stdout as
      the first line, then flushed).  GET /metadata/identity/oauth2/token
      must carry "Metadata: true" (else 400 like the real IMDS), api-version
      and resource=https://storage.azure.com/.  client_id=none -> 400
      "Identity not found"; client_id=short -> a token expiring in 120 s;
      otherwise 3600 s.  Tokens are "lfsfs-test-token-<n>" (n counts issued
      tokens).  GET /_stats -> {"requests", "tokens", "last_headers",
      "last_query"}.

Blob client (account/key/endpoint from --account/--key/--endpoint, defaulting
to AZ_ACCOUNT, AZ_KEY, AZ_ENDPOINT, then Azurite's devstoreaccount1 and its
well-known key; the endpoint is path-style "http://127.0.0.1:PORT/ACCOUNT"):
  azure_standins.py container NAME [--public blob|container]
  azure_standins.py put CONTAINER BLOB FILE        prints the new ETag
  azure_standins.py etag CONTAINER BLOB            prints the ETag (HEAD)
  azure_standins.py sas CONTAINER [--perm r] [--expiry-minutes N | --expired]
                                                   prints a service SAS for
                                                   the container (no '?')
  azure_standins.py ready                          exit 0 if the endpoint answers
"""
import argparse
import base64
import datetime
import hashlib
import hmac
import json
import os
import socket
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

DEV_ACCOUNT = "devstoreaccount1"
DEV_KEY = ("Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/"
           "K1SZFPTOtr/KBHBeksoGMGw==")
VERSION = "2021-08-06"


# ---------------------------------------------------------------- IMDS stand-in
class Imds(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    stats = {"requests": 0, "tokens": 0, "last_headers": {}, "last_query": {}}

    def log_message(self, *a):  # quiet
        pass

    def reply(self, code, obj):
        body = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        u = urllib.parse.urlsplit(self.path)
        if u.path == "/_stats":
            return self.reply(200, Imds.stats)
        if u.path != "/metadata/identity/oauth2/token":
            return self.reply(404, {"error": "not_found"})
        q = {k: v[0] for k, v in urllib.parse.parse_qs(u.query).items()}
        st = Imds.stats
        st["requests"] += 1
        st["last_headers"] = {k: v for k, v in self.headers.items()}
        st["last_query"] = q
        if self.headers.get("Metadata") != "true":
            return self.reply(400, {"error": "invalid_request",
                                    "error_description": "Required metadata header not specified"})
        if "api-version" not in q or q.get("resource") != "https://storage.azure.com/":
            return self.reply(400, {"error": "invalid_request",
                                    "error_description": "bad api-version or resource"})
        if q.get("client_id") == "none":
            return self.reply(400, {"error": "invalid_request",
                                    "error_description": "Identity not found"})
        life = 120 if q.get("client_id") == "short" else 3600
        st["tokens"] += 1
        now = int(time.time())
        self.reply(200, {"access_token": "lfsfs-test-token-%d" % st["tokens"],
                         "expires_on": str(now + life), "expires_in": str(life),
                         "not_before": str(now), "resource": q["resource"],
                         "token_type": "Bearer"})


def cmd_imds(a):
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Imds)
    srv.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    print(srv.server_address[1], flush=True)
    srv.serve_forever()


# ---------------------------------------------------------------- Blob client
def conf(a):
    account = a.account or os.environ.get("AZ_ACCOUNT") or DEV_ACCOUNT
    key = a.key or os.environ.get("AZ_KEY") or DEV_KEY
    endpoint = (a.endpoint or os.environ.get("AZ_ENDPOINT") or
                "http://127.0.0.1:10000/" + account).rstrip("/")
    return account, key, endpoint


def shared_key(method, url, headers, account, key):
    """Authorization value per 'Authorize with Shared Key' (Blob, 2009-09-19+)."""
    u = urllib.parse.urlsplit(url)
    h = {k.lower(): v for k, v in headers.items()}
    cl = h.get("content-length", "")
    std = [h.get("content-encoding", ""), h.get("content-language", ""),
           "" if cl == "0" else cl, h.get("content-md5", ""), h.get("content-type", ""),
           h.get("date", ""), h.get("if-modified-since", ""), h.get("if-match", ""),
           h.get("if-none-match", ""), h.get("if-unmodified-since", ""), h.get("range", "")]
    canon_h = "".join("%s:%s\n" % (k, " ".join(h[k].split()))
                      for k in sorted(k for k in h if k.startswith("x-ms-")))
    res = "/" + account + u.path
    q = urllib.parse.parse_qs(u.query, keep_blank_values=True)
    for k in sorted(q, key=str.lower):
        res += "\n%s:%s" % (k.lower(), ",".join(sorted(q[k])))
    sts = method + "\n" + "\n".join(std) + "\n" + canon_h + res
    sig = base64.b64encode(hmac.new(base64.b64decode(key), sts.encode(),
                                    hashlib.sha256).digest()).decode()
    return "SharedKey %s:%s" % (account, sig)


def request(a, method, path, body=None, extra=None, query=""):
    account, key, endpoint = conf(a)
    url = endpoint + "/" + urllib.parse.quote(path) + ("?" + query if query else "")
    hdrs = {"x-ms-date": datetime.datetime.now(datetime.timezone.utc).strftime(
                "%a, %d %b %Y %H:%M:%S GMT"),
            "x-ms-version": VERSION}
    if body is not None:
        # urllib would add (unsigned) form-encoding otherwise
        hdrs["Content-Length"] = str(len(body))
        hdrs["Content-Type"] = "application/octet-stream"
    hdrs.update(extra or {})
    hdrs["Authorization"] = shared_key(method, url, hdrs, account, key)
    req = urllib.request.Request(url, data=body, method=method, headers=hdrs)
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            return r.status, {k.lower(): v for k, v in r.headers.items()}, r.read()
    except urllib.error.HTTPError as e:
        return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read()


def cmd_container(a):
    extra = {"x-ms-blob-public-access": a.public} if a.public else {}
    st, _, body = request(a, "PUT", a.name, b"", extra, "restype=container")
    if st not in (201, 409):
        sys.exit("create container %s: HTTP %d %s" % (a.name, st, body[:300]))


def cmd_put(a):
    with open(a.file, "rb") as f:
        data = f.read()
    st, h, body = request(a, "PUT", a.container + "/" + a.blob, data,
                          {"x-ms-blob-type": "BlockBlob",
                           "Content-Type": "application/octet-stream"})
    if st != 201:
        sys.exit("put %s/%s: HTTP %d %s" % (a.container, a.blob, st, body[:300]))
    print(h.get("etag", ""))


def cmd_etag(a):
    st, h, _ = request(a, "HEAD", a.container + "/" + a.blob)
    if st != 200:
        sys.exit("head %s/%s: HTTP %d" % (a.container, a.blob, st))
    print(h.get("etag", ""))


def cmd_sas(a):
    """Service SAS for a container, string-to-sign for version 2020-12-06 and
    later ('Create a service SAS', Blob): sp, st, se, canonicalizedResource
    (/blob/ACCOUNT/CONTAINER), si, sip, spr, sv, sr, snapshot time, encryption
    scope, rscc, rscd, rsce, rscl, rsct, joined with newlines."""
    account, key, _ = conf(a)
    now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    fmt = "%Y-%m-%dT%H:%M:%SZ"
    if a.expired:
        st, se = now - datetime.timedelta(hours=2), now - datetime.timedelta(hours=1)
    else:
        st, se = now - datetime.timedelta(minutes=5), now + datetime.timedelta(minutes=a.expiry_minutes)
    f = {"sp": a.perm, "st": st.strftime(fmt), "se": se.strftime(fmt), "spr": "https,http",
         "sv": VERSION, "sr": "c"}
    sts = "\n".join([f["sp"], f["st"], f["se"], "/blob/%s/%s" % (account, a.container), "",
                     "", f["spr"], f["sv"], f["sr"], "", "", "", "", "", "", ""])
    f["sig"] = base64.b64encode(hmac.new(base64.b64decode(key), sts.encode(),
                                         hashlib.sha256).digest()).decode()
    print(urllib.parse.urlencode(f, quote_via=urllib.parse.quote, safe=""))


def cmd_ready(a):
    _, _, endpoint = conf(a)
    try:
        st, _, _ = request(a, "GET", "", query="comp=list")
    except OSError:
        sys.exit(1)
    sys.exit(0 if st == 200 else 1)


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--account")
    p.add_argument("--key")
    p.add_argument("--endpoint")
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("imds")
    s = sub.add_parser("container")
    s.add_argument("name")
    s.add_argument("--public", choices=["blob", "container"])
    s = sub.add_parser("put")
    s.add_argument("container")
    s.add_argument("blob")
    s.add_argument("file")
    s = sub.add_parser("etag")
    s.add_argument("container")
    s.add_argument("blob")
    s = sub.add_parser("sas")
    s.add_argument("container")
    s.add_argument("--perm", default="r")
    s.add_argument("--expiry-minutes", type=int, default=60)
    s.add_argument("--expired", action="store_true")
    sub.add_parser("ready")
    a = p.parse_args()
    {"imds": cmd_imds, "container": cmd_container, "put": cmd_put, "etag": cmd_etag,
     "sas": cmd_sas, "ready": cmd_ready}[a.cmd](a)


if __name__ == "__main__":
    main()
