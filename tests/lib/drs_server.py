#!/usr/bin/env python3
"""A GA4GH DRS 1.4 + Gen3 Indexd test server, with the data it points at, for
lfsfs tests.

No DRS or Indexd server is installable here (the reference implementations,
Gen3 fence/indexd, need PostgreSQL and a deployment; none is packaged in
Debian or npm), so this server follows the published specifications: the
DRS 1.4 OpenAPI description (DrsObject, AccessMethod, AccessURL, Checksum,
service-info with drs.maxBulkRequestLength, bulk POST /objects and POST
/objects/access, Error {msg, status_code}), the draft checksum lookup
GET /objects/checksum/{checksum}, Indexd's GET /index/?hash=type:value
listing, and Gen3 fence's POST /user/credentials/cdis/access_token.  It is
our own: it implements only what lfsfs uses.

usage: drs_server.py --config FILE [--port 0] [--port-file FILE] [--log FILE]

Config (JSON; re-read on POST /_admin/reload):
  {"tokens": ["..."],               static bearer tokens accepted by the DRS API
   "api_keys": {"<key_id>": "<api_key>"},  Gen3 API keys accepted by the token endpoint
   "token_lifetime": 3600,          seconds an issued access token (a JWT) lives
   "url_ttl": 300,                  seconds a signed data URL lives
   "bulk_max": 100,                 maxBulkRequestLength (1 = no bulk requests)
   "bulk_access": true,             serve POST /objects/access
   "indexd_tokens": [],             if non-empty, Indexd needs one of these
   "objects": [{
      "id": "...",                  DRS object id (also the Indexd did)
      "aliases": ["..."],           more ids that name it
      "file": "/abs/path",          backing bytes, served at /data/<name> (signed)
                                    and /public/<name>
      "name": "x.bin",              default: basename of file
      "sha256": "...",              checksum the object claims (default: the file's)
      "size": N,                    size it claims (default: the file's)
      "checksum_type": "sha-256",   or "sha256"
      "access": "id",               "id": access_id -> signed /data URL;
                                    "url": access_url to /public;
                                    "headers": access_url to /hdr with headers
                                    "s3": access_url s3://bucket/<name> (no store here)
      "sign": "amz",                signed URL style: amz (X-Amz-Date/X-Amz-Expires),
                                    azure (se=), expires (Expires=), opaque (e=)
      "forbidden": false,           403 for every token
      "accepted": 0,                answer the first N GETs of the object with
                                    202 Accepted + Retry-After: 1
      "indexd": true}]}             also an Indexd record (urls: the /public URL)

DRS API (all under /ga4gh/drs/v1; Bearer token required except service-info):
  GET  /service-info                  type org.ga4gh:drs:1.4.0, drs.maxBulkRequestLength
  GET  /objects/{id}                  DrsObject; 404 {msg, status_code} if unknown;
                                      202 + Retry-After while "accepted" says so
  GET  /objects/{id}/access/{access_id}  AccessURL {url, headers}
  GET  /objects/checksum/{checksum}   {summary, resolved_drs_object: [...]}
  POST /objects {"bulk_object_ids"}   {summary, resolved_drs_object, unresolved_drs_objects};
                                      413 past maxBulkRequestLength
  POST /objects/access {"bulk_object_access_ids": [{bulk_object_id, bulk_access_ids}]}
                                      {summary, resolved_drs_object_access_urls, unresolved...}
  401 without a valid token, 403 for forbidden objects.
Data:
  GET/HEAD /data/<name>?<signature>   403 when the signature is bad or expired; single
                                      Range (206/416), ETag, If-Match (412)
  GET/HEAD /public/<name>             the same bytes, unsigned
  GET/HEAD /hdr/<name>                needs the header the access_url told about
Gen3:
  POST /user/credentials/cdis/access_token {"api_key"}  -> {"access_token": JWT (HS256, exp)}
  GET  /index/?hash=sha256:<hex>[&hash=md5:<hex>]       -> {"records": [...], ...}
Test-only (not DRS): POST /_admin/reload, /_admin/set?url_ttl=N&token_lifetime=N,
  /_admin/revoke (forget issued access tokens).
Log: one JSON object per request (JSON answers are logged before they are sent,
  data answers once their bytes are): method, path, kind (service-info, object, access,
  checksum, bulk, bulk-access, token, indexd, data, public, hdr, admin), id,
  access_id, n (bulk ids), auth (none, bearer, bad-bearer), status, range, bytes,
  reason (why a data request was refused).
TCP_NODELAY on every connection; HTTP/1.1 keep-alive.
"""
import argparse
import base64
import calendar
import hashlib
import hmac
import json
import os
import secrets
import socket
import sys
import threading
import time
import urllib.parse
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

API = "/ga4gh/drs/v1"
CHUNK = 1 << 20
HDR_NAME = "X-Lfsfs-Test-Key"


def b64url(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode("ascii")


def b64url_decode(s):
    s = s.encode("ascii") if isinstance(s, str) else s
    return base64.urlsafe_b64decode(s + b"=" * (-len(s) % 4))


def file_sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for blk in iter(lambda: fh.read(CHUNK), b""):
            h.update(blk)
    return h.hexdigest()


def file_md5(path):
    h = hashlib.md5()
    with open(path, "rb") as fh:
        for blk in iter(lambda: fh.read(CHUNK), b""):
            h.update(blk)
    return h.hexdigest()


class State:
    def __init__(self, args):
        self.args = args
        self.lock = threading.Lock()
        self.log_lock = threading.Lock()
        self.secret = secrets.token_bytes(32)
        self.issued = set()
        self.accepted = {}    # object id -> GETs answered so far (for "accepted")
        self.port = 0
        self.cfg = {}
        self.objects = {}     # id or alias -> object
        self.by_name = {}     # data name -> object
        self.reload()

    def reload(self):
        with open(self.args.config) as fh:
            cfg = json.load(fh)
        objects, by_name = {}, {}
        for o in cfg.get("objects", []):
            o = dict(o)
            o.setdefault("name", os.path.basename(o["file"]))
            st = os.stat(o["file"])
            o["real_sha256"] = file_sha256(o["file"])
            o["md5"] = file_md5(o["file"])
            o.setdefault("sha256", o["real_sha256"])
            o.setdefault("size", st.st_size)
            o.setdefault("checksum_type", "sha-256")
            o.setdefault("access", "id")
            o.setdefault("sign", "amz")
            o.setdefault("indexd", True)
            o["hdr_key"] = hmac.new(self.secret, ("hdr\n" + o["name"]).encode(),
                                    hashlib.sha256).hexdigest()[:32]
            for i in [o["id"]] + list(o.get("aliases", [])):
                objects[i] = o
            by_name[o["name"]] = o
        with self.lock:
            self.cfg = cfg
            self.objects = objects
            self.by_name = by_name

    def log(self, rec):
        if not self.args.log:
            return
        with self.log_lock, open(self.args.log, "a") as fh:
            fh.write(json.dumps(rec) + "\n")

    # ------------------------------------------------------------ tokens
    def issue(self, sub):
        now = int(time.time())
        head = b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
        body = b64url(json.dumps({"sub": sub, "iat": now, "jti": secrets.token_hex(8),
                                  "exp": now + int(self.cfg.get("token_lifetime", 3600)),
                                  "iss": "lfsfs-drs-test"}).encode())
        sig = b64url(hmac.new(self.secret, (head + "." + body).encode(), hashlib.sha256).digest())
        tok = head + "." + body + "." + sig
        with self.lock:
            self.issued.add(tok)
        return tok

    def token_ok(self, tok, indexd=False):
        if indexd:
            return tok in self.cfg.get("indexd_tokens", [])
        if tok in self.cfg.get("tokens", []):
            return True
        with self.lock:
            if tok not in self.issued:
                return False
        try:
            head, body, sig = tok.split(".")
            want = b64url(hmac.new(self.secret, (head + "." + body).encode(),
                                   hashlib.sha256).digest())
            claims = json.loads(b64url_decode(body))
        except ValueError:
            return False
        return hmac.compare_digest(sig, want) and claims.get("exp", 0) > time.time()

    # ------------------------------------------------------------ signed URLs
    def mac(self, name, exp):
        return hmac.new(self.secret, ("%s\n%d" % (name, exp)).encode(),
                        hashlib.sha256).hexdigest()

    def sign(self, o, host):
        now = int(time.time())
        ttl = int(self.cfg.get("url_ttl", 300))
        exp = now + ttl
        name = urllib.parse.quote(o["name"])
        style = o["sign"]
        if style == "amz":
            date = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))
            q = {"X-Amz-Algorithm": "AWS4-HMAC-SHA256", "X-Amz-Date": date,
                 "X-Amz-Expires": str(ttl), "X-Amz-SignedHeaders": "host",
                 "X-Amz-Signature": self.mac(o["name"], exp)}
        elif style == "azure":
            q = {"sv": "2021-08-06", "sr": "b", "sp": "r",
                 "se": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(exp)),
                 "sig": self.mac(o["name"], exp)}
        elif style == "expires":
            q = {"Expires": str(exp), "Signature": self.mac(o["name"], exp)}
        else:  # opaque: an expiry lfsfs cannot see
            q = {"e": b64url(str(exp).encode()), "s": self.mac(o["name"], exp)}
        return "http://%s/data/%s?%s" % (host, name, urllib.parse.urlencode(q))

    def verify(self, q):
        """(ok, reason) for a /data query string."""
        g = lambda k: q.get(k, [""])[0]
        try:
            if "X-Amz-Date" in q:
                t = calendar.timegm(time.strptime(g("X-Amz-Date"), "%Y%m%dT%H%M%SZ"))
                exp, sig = int(t) + int(g("X-Amz-Expires")), g("X-Amz-Signature")
            elif "se" in q:
                t = calendar.timegm(time.strptime(g("se"), "%Y-%m-%dT%H:%M:%SZ"))
                exp, sig = int(t), g("sig")
            elif "Expires" in q:
                exp, sig = int(g("Expires")), g("Signature")
            elif "e" in q:
                exp, sig = int(b64url_decode(g("e"))), g("s")
            else:
                return None, "unsigned"
        except (ValueError, TypeError):
            return None, "malformed signature"
        return exp, sig


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "lfsfs-drs-test/1"
    sys_version = ""

    def setup(self):
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, fmt, *args):
        pass

    @property
    def st(self):
        return self.server.state

    def reply(self, status, body=b"", ctype="application/json", headers=None):
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
        elif isinstance(body, str):
            body = body.encode()
        self.rec["status"] = status
        self.rec["bytes"] = len(body) if self.command != "HEAD" else 0
        # logged before the answer leaves, so a client that counts requests
        # right after its own finished sees them
        self.st.log(self.rec)
        self.logged = True
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def drs_error(self, status, msg):
        self.reply(status, {"msg": msg, "status_code": status})

    def body_json(self):
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n) if n else b""
        try:
            return json.loads(raw or b"null")
        except ValueError:
            return None

    def auth(self, indexd=False):
        h = self.headers.get("Authorization", "")
        if not h:
            self.rec["auth"] = "none"
            return False
        ok = h.startswith("Bearer ") and self.st.token_ok(h[7:], indexd)
        self.rec["auth"] = "bearer" if ok else "bad-bearer"
        return ok

    def host(self):
        return self.headers.get("Host") or "127.0.0.1:%d" % self.st.port

    # ------------------------------------------------------------ dispatch
    def do_GET(self):
        self.handle_any()

    def do_HEAD(self):
        self.handle_any()

    def do_POST(self):
        self.handle_any()

    def handle_any(self):
        u = urllib.parse.urlsplit(self.path)
        path = u.path
        self.q = urllib.parse.parse_qs(u.query, keep_blank_values=True)
        self.rec = {"t": round(time.time(), 3), "method": self.command, "path": path,
                    "kind": "", "auth": "none", "status": 0,
                    "range": self.headers.get("Range", "")}
        self.logged = False
        try:
            self.route(path)
        except (BrokenPipeError, ConnectionResetError):
            self.rec["status"] = self.rec["status"] or 499
            self.close_connection = True
        finally:
            if not self.logged:
                self.st.log(self.rec)

    def route(self, path):
        if path.startswith(API + "/"):
            return self.drs(path[len(API):])
        for kind in ("data", "public", "hdr"):
            if path.startswith("/%s/" % kind):
                self.rec["kind"] = kind
                return self.data(kind, urllib.parse.unquote(path[len(kind) + 2:]))
        if path == "/user/credentials/cdis/access_token" and self.command == "POST":
            self.rec["kind"] = "token"
            return self.gen3_token()
        if path in ("/index/", "/index") and self.command == "GET":
            self.rec["kind"] = "indexd"
            return self.indexd()
        if path.startswith("/_admin/") and self.command == "POST":
            self.rec["kind"] = "admin"
            return self.admin(path)
        if path == "/healthz":
            return self.reply(200, {"ok": True})
        return self.reply(404, {"error": "not found"})

    # ------------------------------------------------------------ DRS
    def drs_object(self, o):
        am = {"type": "https"}
        name = urllib.parse.quote(o["name"])
        if o["access"] == "url":
            am["access_url"] = {"url": "http://%s/public/%s" % (self.host(), name)}
        elif o["access"] == "headers":
            am["access_url"] = {"url": "http://%s/hdr/%s" % (self.host(), name),
                                "headers": ["%s: %s" % (HDR_NAME, o["hdr_key"])]}
        elif o["access"] == "s3":
            am = {"type": "s3", "access_url": {"url": "s3://lfsfs-test-bucket/%s" % name}}
        else:
            am["access_id"] = "https"
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        return {"id": o["id"], "name": o["name"], "size": o["size"],
                "self_uri": "drs://%s/%s" % (self.host(), urllib.parse.quote(o["id"], safe="")),
                "created_time": now, "updated_time": now, "version": "1",
                "mime_type": "application/octet-stream",
                "checksums": [{"type": o["checksum_type"], "checksum": o["sha256"]},
                              {"type": "md5", "checksum": o["md5"]}],
                "access_methods": [am], "aliases": list(o.get("aliases", []))}

    def access_url(self, o, access_id):
        if o["access"] != "id" or access_id != "https":
            return None
        return {"url": self.st.sign(o, self.host())}

    def service_info(self):
        n = int(self.st.cfg.get("bulk_max", 100)) or 1
        objs = {id(o): o for o in self.st.objects.values()}.values()
        return {"id": "org.lfsfs.test.drs", "name": "lfsfs DRS test server",
                "type": {"group": "org.ga4gh", "artifact": "drs", "version": "1.4.0"},
                "organization": {"name": "lfsfs tests", "url": "https://lfsfs.invalid"},
                "version": "1.0.0", "maxBulkRequestLength": n,
                "drs": {"maxBulkRequestLength": n, "objectCount": len(objs),
                        "totalObjectSize": sum(o["size"] for o in objs)}}

    def drs(self, sub):
        st = self.st
        parts = [urllib.parse.unquote(p) for p in sub.strip("/").split("/")]
        if sub == "/service-info" and self.command == "GET":
            self.rec["kind"] = "service-info"
            return self.reply(200, self.service_info())
        authed = self.auth()
        if parts[:1] == ["objects"] and len(parts) == 1 and self.command == "POST":
            self.rec["kind"] = "bulk"
            if not authed:
                return self.drs_error(401, "a valid bearer token is required")
            return self.bulk_objects()
        if parts[:2] == ["objects", "access"] and len(parts) == 2 and self.command == "POST":
            self.rec["kind"] = "bulk-access"
            if not st.cfg.get("bulk_access", True):
                return self.drs_error(404, "bulk access is not served")
            if not authed:
                return self.drs_error(401, "a valid bearer token is required")
            return self.bulk_access()
        if self.command != "GET" or parts[:1] != ["objects"] or len(parts) < 2:
            return self.drs_error(404, "no such endpoint")
        if parts[1] == "checksum" and len(parts) == 3:
            self.rec["kind"] = "checksum"
            if not authed:
                return self.drs_error(401, "a valid bearer token is required")
            want = parts[2].split(":", 1)[-1].lower()
            found = [o for o in {id(o): o for o in st.objects.values()}.values()
                     if o["sha256"].lower() == want or o["md5"] == want]
            if not found:
                return self.drs_error(404, "no object with checksum %s" % parts[2])
            return self.reply(200, {"summary": {"requested": 1, "resolved": len(found),
                                                "unresolved": 0},
                                    "resolved_drs_object": [self.drs_object(o) for o in found]})
        oid = parts[1]
        self.rec["id"] = oid
        if len(parts) == 2:
            self.rec["kind"] = "object"
        elif len(parts) == 4 and parts[2] == "access":
            self.rec["kind"] = "access"
            self.rec["access_id"] = parts[3]
        else:
            return self.drs_error(404, "no such endpoint")
        if not authed:
            return self.drs_error(401, "a valid bearer token is required")
        o = st.objects.get(oid)
        if o is None:
            return self.drs_error(404, "no DRS object %s" % oid)
        if o.get("forbidden"):
            return self.drs_error(403, "this token may not read %s" % oid)
        if len(parts) == 2:
            with st.lock:
                n = st.accepted.get(o["id"], 0)
                st.accepted[o["id"]] = n + 1
            if n < int(o.get("accepted", 0)):
                return self.reply(202, {"msg": "preparing the object, try again",
                                        "status_code": 202}, headers={"Retry-After": "1"})
            return self.reply(200, self.drs_object(o))
        acc = self.access_url(o, parts[3])
        if acc is None:
            return self.drs_error(404, "no access method %s for %s" % (parts[3], oid))
        return self.reply(200, acc)

    def bulk_objects(self):
        b = self.body_json()
        ids = b.get("bulk_object_ids") if isinstance(b, dict) else None
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            return self.drs_error(400, "bulk_object_ids (a list of ids) is required")
        self.rec["n"] = len(ids)
        if len(ids) > max(1, int(self.st.cfg.get("bulk_max", 100))):
            return self.drs_error(413, "more than maxBulkRequestLength ids")
        res, unres = [], {}
        for i in ids:
            o = self.st.objects.get(i)
            if o is None:
                unres.setdefault(404, []).append(i)
            elif o.get("forbidden"):
                unres.setdefault(403, []).append(i)
            else:
                res.append(self.drs_object(o))
        return self.reply(200, {"summary": {"requested": len(ids), "resolved": len(res),
                                            "unresolved": len(ids) - len(res)},
                                "resolved_drs_object": res,
                                "unresolved_drs_objects": [{"error_code": c, "object_ids": v}
                                                           for c, v in unres.items()]})

    def bulk_access(self):
        b = self.body_json()
        reqs = b.get("bulk_object_access_ids") if isinstance(b, dict) else None
        if not isinstance(reqs, list):
            return self.drs_error(400, "bulk_object_access_ids is required")
        self.rec["n"] = len(reqs)
        if len(reqs) > max(1, int(self.st.cfg.get("bulk_max", 100))):
            return self.drs_error(413, "more than maxBulkRequestLength ids")
        res, unres, n = [], {}, 0
        for r in reqs:
            oid = r.get("bulk_object_id") if isinstance(r, dict) else None
            aids = r.get("bulk_access_ids") if isinstance(r, dict) else None
            for aid in aids if isinstance(aids, list) else []:
                n += 1
                o = self.st.objects.get(oid)
                acc = self.access_url(o, aid) if o and not o.get("forbidden") else None
                if acc is None:
                    unres.setdefault(404 if not o else 403, []).append(oid)
                    continue
                res.append({"drs_object_id": oid, "drs_access_id": aid, **acc})
        return self.reply(200, {"summary": {"requested": n, "resolved": len(res),
                                            "unresolved": n - len(res)},
                                "resolved_drs_object_access_urls": res,
                                "unresolved_drs_objects": [{"error_code": c, "object_ids": v}
                                                           for c, v in unres.items()]})

    # ------------------------------------------------------------ Gen3
    def gen3_token(self):
        b = self.body_json()
        key = b.get("api_key") if isinstance(b, dict) else None
        keys = self.st.cfg.get("api_keys", {})
        kid = next((k for k, v in keys.items() if isinstance(key, str) and
                    hmac.compare_digest(v, key)), None)
        if kid is None:
            return self.reply(401, {"error": "invalid api_key"})
        self.rec["key_id"] = kid
        return self.reply(200, {"access_token": self.st.issue(kid)})

    def indexd(self):
        st = self.st
        if st.cfg.get("indexd_tokens"):
            if not self.auth(indexd=True):
                return self.reply(401, {"error": "authentication required"})
        want = {}
        for h in self.q.get("hash", []):
            t, _, v = h.partition(":")
            want[t.lower()] = v.lower()
        self.rec["id"] = want.get("sha256", "")
        recs = []
        for o in {id(o): o for o in st.objects.values()}.values():
            if not o.get("indexd", True):
                continue
            hashes = {"md5": o["md5"], "sha256": o["sha256"]}
            if all(hashes.get(t) == v for t, v in want.items()):
                url = "http://%s/public/%s" % (self.host(), urllib.parse.quote(o["name"]))
                recs.append({"did": o["id"], "baseid": o["id"], "rev": "1", "form": "object",
                             "size": o["size"], "file_name": o["name"], "urls": [url],
                             "urls_metadata": {url: {}}, "hashes": hashes, "acl": ["*"],
                             "authz": [], "metadata": {}, "version": None, "uploader": None,
                             "created_date": "2024-01-01T00:00:00",
                             "updated_date": "2024-01-01T00:00:00"})
        return self.reply(200, {"ids": None, "records": recs, "size": None, "start": 0,
                                "limit": 100, "file_name": None, "urls": [], "acl": [],
                                "authz": [], "hashes": want, "metadata": {}, "version": None})

    # ------------------------------------------------------------ data
    def data(self, kind, name):
        st = self.st
        o = st.by_name.get(name)
        if self.command not in ("GET", "HEAD"):
            return self.reply(405, {"error": "read-only"})
        if o is None:
            return self.reply(404, {"error": "no such data"})
        if kind == "data":
            exp, sig = st.verify(self.q)
            if exp is None:
                self.rec["reason"] = sig
                return self.reply(403, {"error": "AccessDenied", "reason": sig})
            if not hmac.compare_digest(sig or "", st.mac(o["name"], exp)):
                self.rec["reason"] = "bad signature"
                return self.reply(403, {"error": "SignatureDoesNotMatch"})
            if time.time() >= exp:
                self.rec["reason"] = "expired"
                return self.reply(403, {"error": "AccessDenied", "reason": "Request has expired"})
        elif kind == "hdr":
            if not hmac.compare_digest(self.headers.get(HDR_NAME, ""), o["hdr_key"]):
                self.rec["reason"] = "missing header"
                return self.reply(403, {"error": "missing or wrong %s" % HDR_NAME})
        try:
            fh = open(o["file"], "rb")
        except OSError:
            return self.reply(404, {"error": "gone"})
        with fh:
            stt = os.fstat(fh.fileno())
            size = stt.st_size
            etag = '"%x-%x"' % (int(stt.st_mtime_ns // 1000), size)
            hdrs = {"ETag": etag, "Accept-Ranges": "bytes",
                    "Last-Modified": formatdate(stt.st_mtime, usegmt=True)}
            im = self.headers.get("If-Match")
            if im and im.strip() != "*" and etag not in [x.strip() for x in im.split(",")]:
                return self.reply(412, {"error": "PreconditionFailed"}, headers=hdrs)
            start, end, status = 0, size - 1, 200
            rng = self.headers.get("Range", "")
            if rng.startswith("bytes=") and "," not in rng:
                a, _, b = rng[6:].partition("-")
                try:
                    if a == "":
                        start, end = max(0, size - int(b)), size - 1
                    else:
                        start = int(a)
                        end = min(int(b), size - 1) if b else size - 1
                except ValueError:
                    start, end = 0, size - 1
                else:
                    if start >= size or start > end:
                        hdrs["Content-Range"] = "bytes */%d" % size
                        return self.reply(416, {"error": "InvalidRange"}, headers=hdrs)
                    status = 206
                    hdrs["Content-Range"] = "bytes %d-%d/%d" % (start, end, size)
            n = end - start + 1 if size else 0
            self.send_response(status)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(n))
            for k, v in hdrs.items():
                self.send_header(k, v)
            self.end_headers()
            self.rec["status"] = status
            self.rec["bytes"] = 0
            if self.command == "HEAD":
                return
            fh.seek(start)
            left = n
            while left > 0:
                blk = fh.read(min(CHUNK, left))
                if not blk:
                    break
                self.wfile.write(blk)
                left -= len(blk)
                self.rec["bytes"] += len(blk)

    # ------------------------------------------------------------ admin
    def admin(self, path):
        st = self.st
        if path == "/_admin/reload":
            st.reload()
            return self.reply(200, {"objects": len(st.by_name)})
        if path == "/_admin/set":
            with st.lock:
                for k in ("url_ttl", "token_lifetime", "bulk_max"):
                    if k in self.q:
                        st.cfg[k] = int(self.q[k][0])
            return self.reply(200, {k: st.cfg.get(k) for k in ("url_ttl", "token_lifetime",
                                                                 "bulk_max")})
        if path == "/_admin/revoke":
            with st.lock:
                n = len(st.issued)
                st.issued.clear()
            return self.reply(200, {"revoked": n})
        return self.reply(404, {"error": "no such control"})


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", required=True)
    ap.add_argument("--bind", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file")
    ap.add_argument("--log")
    args = ap.parse_args()
    state = State(args)
    srv = Server((args.bind, args.port), Handler)
    srv.state = state
    state.port = srv.server_address[1]
    if args.port_file:
        tmp = args.port_file + ".tmp"
        with open(tmp, "w") as fh:
            fh.write("%d\n" % state.port)
        os.rename(tmp, args.port_file)
    print("drs test server on %s:%d" % (args.bind, state.port), file=sys.stderr, flush=True)
    try:
        srv.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
