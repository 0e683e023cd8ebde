#!/usr/bin/env python3
"""A SigV4-verifying reverse proxy in front of s3rver, for tests.

s3rver does not check signatures (a wrong secret or region still gets 200)
and ignores If-Match.  This proxy makes it behave like S3 where lfsfs's S3
backend needs an independent check:

  * every request signed with an Authorization header is verified by
    recomputing its signature with botocore (S3SigV4Auth: canonical request,
    string to sign, signing key) from the request as received: same method,
    path, query, signed headers and x-amz-date, with the secret of the
    access key (--key AKID:SECRET).  A mismatch answers 403 with an S3 XML
    error document (Code SignatureDoesNotMatch); an unknown key 403
    InvalidAccessKeyId; a missing/unsigned x-amz-content-sha256, an
    unsigned x-amz-* / Range / If-Match header, or a malformed header 400/403
    like S3; a request time more than 15 minutes off 403
    RequestTimeTooSkewed.  The canonical URI is rebuilt the way S3 does
    (decode, then encode everything but unreserved characters and '/'), so a
    client that signs a differently encoded path than S3 would fails here.
  * --region R: a credential scope for another region answers 400
    AuthorizationHeaderMalformed naming R (as S3 does), and every response
    carries x-amz-bucket-region: R.
  * unsigned (anonymous) requests answer 403 AccessDenied, except for
    buckets named with --public-bucket.
  * If-Match on GET/HEAD is enforced: the proxy HEADs the object upstream
    and answers 412 PreconditionFailed when the ETag differs.
  * --vhost-base localhost: requests with Host: <bucket>.localhost[:port]
    (virtual-hosted addressing; curl resolves *.localhost to loopback) are
    verified as sent and forwarded path-style, since s3rver on 127.0.0.1
    only does path-style.
  * everything else is forwarded to --upstream and the response (status,
    headers, Range/ETag, body) streamed back.

One log line per request (--log FILE), fields separated by single spaces:
  METHOD PATH range=<Range> if_match=<If-Match> auth=<verified|anonymous|
  rejected:<Code>> region=<scope region> token=<yes|no> status=<status>
  host=<Host header>
"""

import argparse
import datetime
import hashlib
import hmac
import http.client
import os
import socket
import sys
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from xml.sax.saxutils import escape

from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te",
       "trailer", "upgrade", "host"}
UNSIGNED = "UNSIGNED-PAYLOAD"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
MAX_SKEW = datetime.timedelta(minutes=15)


class Config:
    keys = {}
    upstream = ("127.0.0.1", 4568)
    region = ""
    public = set()
    log = None
    log_lock = threading.Lock()
    strict = True
    vhost_base = ""


def error_xml(code, message, extra=None):
    parts = [f"<Code>{escape(code)}</Code>", f"<Message>{escape(message)}</Message>"]
    for k, v in (extra or {}).items():
        parts.append(f"<{k}>{escape(v)}</{k}>")
    parts.append("<RequestId>s3-verify-proxy</RequestId>")
    return ('<?xml version="1.0" encoding="UTF-8"?>\n<Error>' + "".join(parts) +
            "</Error>").encode()


def parse_authorization(value):
    """'AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=...'"""
    if not value.startswith("AWS4-HMAC-SHA256 "):
        return None
    fields = {}
    for part in value[len("AWS4-HMAC-SHA256 "):].split(","):
        k, sep, v = part.strip().partition("=")
        if not sep:
            return None
        fields[k] = v
    if not {"Credential", "SignedHeaders", "Signature"} <= fields.keys():
        return None
    scope = fields["Credential"].split("/")
    if len(scope) != 5 or scope[4] != "aws4_request":
        return None
    return {
        "akid": scope[0], "date": scope[1], "region": scope[2], "service": scope[3],
        "signed": fields["SignedHeaders"].split(";"), "signature": fields["Signature"],
    }


class Reject(Exception):
    def __init__(self, status, code, message, extra=None, headers=None):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.extra = extra or {}
        self.headers = headers or {}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "s3-verify-proxy"
    sys_version = ""
    _local = threading.local()

    def log_message(self, fmt, *args):  # quiet: our own log instead
        pass

    def setup(self):
        super().setup()
        try:
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass

    # ------------------------------------------------------------ helpers
    def upstream(self, fresh=False):
        conn = getattr(self._local, "conn", None)
        if conn is None or fresh:
            if conn is not None:
                conn.close()
            conn = http.client.HTTPConnection(*Config.upstream, timeout=60)
            self._local.conn = conn
        return conn

    def upstream_request(self, method, path, headers, body=None):
        for attempt in (0, 1):
            conn = self.upstream(fresh=attempt > 0)
            try:
                conn.request(method, path, body=body, headers=headers)
                return conn.getresponse()
            except (ConnectionError, http.client.HTTPException, OSError):
                if attempt:
                    raise
        raise RuntimeError("unreachable")

    def header(self, name):
        vals = self.headers.get_all(name)
        if not vals:
            return None
        return ",".join(" ".join(v.split()) for v in vals)

    def vhost_bucket(self):
        """The bucket of a virtual-hosted request (Host: <bucket>.<vhost-base>)."""
        if not Config.vhost_base:
            return None
        host = (self.headers.get("Host") or "").rsplit(":", 1)[0].lower()
        suffix = "." + Config.vhost_base
        if host.endswith(suffix) and len(host) > len(suffix):
            return host[:-len(suffix)]
        return None

    def upstream_path(self):
        """The path-style request-target for s3rver."""
        b = self.vhost_bucket()
        return self.path if b is None else "/" + urllib.parse.quote(b) + self.path

    def bucket(self):
        b = self.vhost_bucket()
        if b is not None:
            return b
        path = urllib.parse.urlsplit(self.path).path
        return urllib.parse.unquote(path.lstrip("/").split("/", 1)[0])

    def log(self, status, auth, region="", token=False):
        if not Config.log:
            return
        line = "%s %s range=%s if_match=%s auth=%s region=%s token=%s status=%s host=%s\n" % (
            self.command, self.path.split("?", 1)[0], self.header("Range") or "",
            self.header("If-Match") or "", auth, region or "-", "yes" if token else "no",
            status, self.headers.get("Host") or "")
        with Config.log_lock:
            with open(Config.log, "a") as f:
                f.write(line)

    def send_error_doc(self, rej):
        body = error_xml(rej.code, rej.message, rej.extra)
        self.send_response(rej.status)
        self.send_header("Content-Type", "application/xml")
        if Config.region:
            self.send_header("x-amz-bucket-region", Config.region)
        for k, v in rej.headers.items():
            self.send_header(k, v)
        if self.command == "HEAD":
            self.send_header("Content-Length", "0")
            self.end_headers()
        else:
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    # ------------------------------------------------------- verification
    def verify(self, body):
        """Returns (auth verdict, scope region, has token); raises Reject."""
        auth = self.headers.get("Authorization")
        query = urllib.parse.urlsplit(self.path).query
        if not auth:
            if "X-Amz-Signature" in query or "X-Amz-Credential" in query:
                raise Reject(501, "NotImplemented",
                             "presigned URLs are not verified by this test proxy")
            if self.bucket() in Config.public:
                return "anonymous", "", False
            raise Reject(403, "AccessDenied", "Access Denied (anonymous request to a "
                         "private bucket)")
        a = parse_authorization(auth)
        if a is None:
            raise Reject(400, "AuthorizationHeaderMalformed",
                         "The authorization header is malformed.")
        self.scope_region = a["region"]
        secret = Config.keys.get(a["akid"])
        if secret is None:
            raise Reject(403, "InvalidAccessKeyId", "The AWS Access Key Id you provided "
                         "does not exist in our records.", {"AWSAccessKeyId": a["akid"]})
        if a["service"] != "s3":
            raise Reject(400, "AuthorizationHeaderMalformed",
                         f"wrong service '{a['service']}' in the credential scope")
        if Config.region and a["region"] != Config.region:
            raise Reject(400, "AuthorizationHeaderMalformed",
                         f"The authorization header is malformed; the region "
                         f"'{a['region']}' is wrong; expecting '{Config.region}'",
                         {"Region": Config.region})
        amz_date = self.headers.get("X-Amz-Date")
        if not amz_date:
            raise Reject(403, "AccessDenied", "AWS authentication requires a valid Date "
                         "or x-amz-date header")
        try:
            when = datetime.datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ")
        except ValueError:
            raise Reject(403, "AccessDenied", "invalid x-amz-date")
        if a["date"] != amz_date[:8]:
            raise Reject(403, "SignatureDoesNotMatch", "credential scope date differs "
                         "from x-amz-date")
        now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
        if abs(now - when) > MAX_SKEW:
            raise Reject(403, "RequestTimeTooSkewed", "The difference between the request "
                         "time and the current time is too large.")
        signed = a["signed"]
        if signed != sorted(signed) or "host" not in signed:
            raise Reject(403, "SignatureDoesNotMatch", "SignedHeaders must be sorted and "
                         "include host")
        sha = self.headers.get("X-Amz-Content-SHA256")
        if sha is None:
            raise Reject(400, "InvalidRequest", "Missing required header for this request: "
                         "x-amz-content-sha256")
        must_sign = [h.lower() for h in self.headers.keys()
                     if h.lower().startswith("x-amz-")]
        if Config.strict:
            must_sign += [h for h in ("range", "if-match") if self.headers.get(h)]
        for h in set(must_sign):
            if h not in signed:
                raise Reject(403, "AccessDenied", f"There were headers present in the "
                             f"request which were not signed: {h}")
        if sha not in (UNSIGNED,) and sha != hashlib.sha256(body or b"").hexdigest():
            raise Reject(400, "XAmzContentSHA256Mismatch", "The provided "
                         "'x-amz-content-sha256' header does not match what was computed.")
        token = self.headers.get("X-Amz-Security-Token")

        # Recompute the signature with botocore, independent of lfsfs.
        split = urllib.parse.urlsplit(self.path)
        canon_path = urllib.parse.quote(urllib.parse.unquote(split.path), safe="/~")
        params = urllib.parse.parse_qsl(split.query, keep_blank_values=True)
        headers = {}
        for h in signed:
            v = self.header(h)
            if v is None:
                raise Reject(403, "SignatureDoesNotMatch", f"signed header '{h}' is "
                             f"missing from the request")
            headers[h] = v
        req = AWSRequest(method=self.command, url="http://" + headers["host"] + canon_path,
                         headers=headers, params=params or None)
        req.context["timestamp"] = amz_date
        signer = S3SigV4Auth(Credentials(a["akid"], secret, token), "s3", a["region"])
        canonical = signer.canonical_request(req)
        sts = signer.string_to_sign(req, canonical)
        want = signer.signature(sts, req)
        if signer.signed_headers(signer.headers_to_sign(req)) != ";".join(signed):
            raise Reject(403, "SignatureDoesNotMatch", "SignedHeaders differ from the "
                         "headers botocore would sign")
        if not hmac.compare_digest(want, a["signature"]):
            raise Reject(403, "SignatureDoesNotMatch",
                         "The request signature we calculated does not match the signature "
                         "you provided. Check your key and signing method.",
                         {"AWSAccessKeyId": a["akid"], "StringToSign": sts,
                          "CanonicalRequest": canonical})
        return "verified", a["region"], bool(token)

    def check_if_match(self):
        im = self.headers.get("If-Match")
        if not im or self.command not in ("GET", "HEAD"):
            return
        path = urllib.parse.urlsplit(self.upstream_path()).path
        resp = self.upstream_request("HEAD", path, {"Host": "%s:%d" % Config.upstream})
        resp.read()
        etag = resp.getheader("ETag")
        wanted = [t.strip() for t in im.split(",")]
        if resp.status == 200 and ("*" in wanted or etag in wanted):
            return
        raise Reject(412, "PreconditionFailed", "At least one of the pre-conditions you "
                     "specified did not hold", {"Condition": "If-Match"})

    # ----------------------------------------------------------- handling
    def handle_any(self):
        self.scope_region = ""
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        auth, region, token = "anonymous", "", False
        try:
            auth, region, token = self.verify(body)
            self.check_if_match()
        except Reject as rej:
            verdict = auth if rej.status == 412 else "rejected:" + rej.code
            self.log(rej.status, verdict, region or getattr(self, "scope_region", ""), token)
            self.send_error_doc(rej)
            return
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP}
        headers["Host"] = "%s:%d" % Config.upstream
        headers.pop("If-Match", None)  # enforced above; s3rver ignores it anyway
        try:
            resp = self.upstream_request(self.command, self.upstream_path(), headers,
                                         body or None)
        except Exception as e:  # noqa: BLE001 - report any upstream failure as 502
            self.log(502, auth, region, token)
            self.send_error_doc(Reject(502, "BadGateway", f"upstream: {e}"))
            return
        self.log(resp.status, auth, region, token)
        self.send_response(resp.status)
        has_len = False
        for k, v in resp.getheaders():
            if k.lower() in HOP:
                continue
            if k.lower() == "content-length":
                has_len = True
            self.send_header(k, v)
        if Config.region:
            self.send_header("x-amz-bucket-region", Config.region)
        if self.command == "HEAD" or resp.status in (204, 304):
            self.end_headers()
            resp.read()
            return
        if not has_len:
            data = resp.read()
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return
        self.end_headers()
        while True:
            chunk = resp.read(256 * 1024)
            if not chunk:
                break
            self.wfile.write(chunk)

    do_GET = do_HEAD = do_PUT = do_POST = do_DELETE = handle_any


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--listen", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0, help="0 = any free port")
    ap.add_argument("--port-file", help="write the port here once listening")
    ap.add_argument("--upstream", required=True, help="http://127.0.0.1:PORT of s3rver")
    ap.add_argument("--key", action="append", default=[], help="AKID:SECRET (repeatable)")
    ap.add_argument("--region", default="", help="enforce this signing region")
    ap.add_argument("--public-bucket", action="append", default=[],
                    help="allow anonymous reads of this bucket (repeatable)")
    ap.add_argument("--log", help="append one line per request here")
    ap.add_argument("--vhost-base", default="",
                    help="serve virtual-hosted requests (Host: <bucket>.BASE[:port]), "
                    "e.g. localhost, by forwarding them path-style")
    ap.add_argument("--lax", action="store_true",
                    help="do not require Range/If-Match to be signed")
    args = ap.parse_args()

    u = urllib.parse.urlsplit(args.upstream)
    Config.upstream = (u.hostname, u.port or 80)
    for k in args.key:
        akid, sep, secret = k.partition(":")
        if not sep:
            ap.error("--key wants AKID:SECRET")
        Config.keys[akid] = secret
    Config.region = args.region
    Config.public = set(args.public_bucket)
    Config.log = args.log
    Config.strict = not args.lax
    Config.vhost_base = args.vhost_base.lower()

    ThreadingHTTPServer.daemon_threads = True
    ThreadingHTTPServer.allow_reuse_address = True
    srv = ThreadingHTTPServer((args.listen, args.port), Handler)
    port = srv.server_address[1]
    if args.port_file:
        tmp = args.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write(f"{port}\n")
        os.rename(tmp, args.port_file)
    print(f"s3-verify-proxy listening on {args.listen}:{port} -> {args.upstream}",
          file=sys.stderr, flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
