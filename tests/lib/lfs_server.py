#!/usr/bin/env python3
"""A Git LFS Batch API test server (download and upload, basic transfers) for lfsfs tests.

No real LFS server is installable here (lfs-test-server, Gitea and GitLab are
not Debian packages), so this one follows git-lfs docs/api/batch.md and
docs/api/basic-transfers.md.  It is strict where the spec says MUST and where
real servers are strict, so that stock `git lfs push` can fill it and lfsfs
has to get the protocol right to read from it.

usage: lfs_server.py --root DIR [--user U --password P] [--port 0] [--port-file F]
                     [--log F] [--expiry S] [--advertise S] [--style in|at|both]

Objects: DIR/<oid> (a flat directory named by sha256; copy files in, or push).

  POST <any prefix>/objects/batch   (e.g. /team/data.git/info/lfs/objects/batch)
       Needs "Accept: application/vnd.git-lfs+json" (406 otherwise) and, when
       --user is given, Basic auth (401 with LFS-Authenticate: Basic
       realm="Git LFS" and a JSON message otherwise).  Body: operation
       download|upload, objects [{oid, size}], optional transfers (must offer
       "basic", else 422), ref, hash_algo (anything but sha256: 409).
       Malformed JSON or objects: 422.  Answer: {"transfer": "basic",
       "objects": [...], "hash_algo": "sha256"}, Content-Type
       application/vnd.git-lfs+json.
       download: an object present with that size gets
         actions.download {href: /dl/<oid>?exp=E&sig=S, header:
         {"Authorization": "RemoteAuth <token>"}, expires_in | expires_at}
         and "authenticated": true; absent: error {code 404}; present with
         another size: error {code 422}.
       upload: absent objects get actions.upload {href: /ul/<oid>?exp&sig,
         header, expires_in}; present ones get no actions (already there).
  GET|HEAD /dl/<oid>?exp&sig   the bytes.  The signature must be this server's
       (403 otherwise), exp must not have passed (403 "expired"), and
       "Authorization: RemoteAuth <token>" must be the token of that href
       (401 otherwise).  One Range (206 + Content-Range, 416 past the end),
       ETag (strong, from the oid), If-Match (412 on mismatch), Accept-Ranges.
  PUT  /ul/<oid>?exp&sig        basic-transfer upload (same checks); the body's
       sha256 and length must match (422 otherwise); stored as DIR/<oid>.
  POST <prefix>/locks/verify    404 (no locking API; git-lfs carries on).
  GET  /healthz
Test-only controls (not LFS):
  POST /_admin/config?expiry=S&advertise=S&style=in|at|both
       hrefs issued from now on stop working after `expiry` seconds, while the
       batch answer claims `advertise` seconds (default: the same; a smaller
       expiry than advertised stands in for a revoked or skewed signature).
Log: one JSON object per request (keys: t, method, path, kind [batch, download,
  upload, locks, admin, other], status, bytes, auth [none, basic, bad-basic],
  operation, n_objects, oids, ref, hash_algo, transfers, oid, sig [ok, bad,
  expired], remote_auth [ok, missing, bad], range, if_match).
HTTP/1.1 keep-alive; TCP_NODELAY.
"""
import argparse
import base64
import hashlib
import hmac
import json
import os
import re
import secrets
import socket
import sys
import tempfile
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MEDIA = "application/vnd.git-lfs+json"
OID_RE = re.compile(r"^[0-9a-f]{64}$")
CHUNK = 1 << 20


class State:
    def __init__(self, args):
        self.root = os.path.abspath(args.root)
        self.user = args.user
        self.password = args.password
        self.expiry = args.expiry
        self.advertise = args.advertise
        self.style = args.style
        self.secret = secrets.token_bytes(32)
        self.lock = threading.Lock()
        self.log_lock = threading.Lock()
        self.log = open(args.log, "a", buffering=1) if args.log else None

    def sign(self, kind, oid, exp):
        msg = ("%s:%s:%d" % (kind, oid, exp)).encode()
        return hmac.new(self.secret, msg, hashlib.sha256).hexdigest()

    def token(self, kind, oid, exp):
        msg = ("token:%s:%s:%d" % (kind, oid, exp)).encode()
        return base64.urlsafe_b64encode(
            hmac.new(self.secret, msg, hashlib.sha256).digest()).decode().rstrip("=")

    def path_of(self, oid):
        return os.path.join(self.root, oid)

    def write_log(self, rec):
        if not self.log:
            return
        with self.log_lock:
            self.log.write(json.dumps(rec, sort_keys=True) + "\n")


def rfc3339(ts):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "lfsfs-lfs-test/1"
    sys_version = ""

    def setup(self):
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, fmt, *args):  # quiet; we keep our own log
        pass

    # ------------------------------------------------------------ replies
    def reply(self, status, body=b"", ctype=MEDIA, headers=None):
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
        elif isinstance(body, str):
            body = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.rec["status"] = status
        self.rec["bytes"] = len(body) if self.command != "HEAD" else 0
        self.flush_log()
        if self.command != "HEAD":
            self.wfile.write(body)

    def flush_log(self):
        """Log the request before the last bytes of its answer go out, so that a
        client that has the whole answer also finds the log line."""
        if not self.logged:
            self.logged = True
            self.server.state.write_log(self.rec)

    def lfs_error(self, status, message, headers=None):
        self.reply(status, {"message": message, "request_id": secrets.token_hex(4),
                            "documentation_url": "https://example.invalid/lfs-errors"},
                   headers=headers)

    def read_body(self, limit=64 << 20):
        n = int(self.headers.get("Content-Length") or 0)
        if n > limit:
            self.close_connection = True
            return None
        return self.rfile.read(n) if n else b""

    # ------------------------------------------------------------ dispatch
    def do_GET(self):
        self.handle_any()

    def do_HEAD(self):
        self.handle_any()

    def do_POST(self):
        self.handle_any()

    def do_PUT(self):
        self.handle_any()

    def handle_any(self):
        st = self.server.state
        u = urllib.parse.urlsplit(self.path)
        self.q = {k: v[0] for k, v in urllib.parse.parse_qs(u.query, keep_blank_values=True).items()}
        self.rec = {"t": round(time.time(), 3), "method": self.command, "path": u.path,
                    "kind": "other", "status": 0, "bytes": 0}
        self.logged = False
        try:
            if u.path.endswith("/objects/batch") and self.command == "POST":
                self.rec["kind"] = "batch"
                self.batch(st)
            elif u.path.startswith("/dl/") and self.command in ("GET", "HEAD"):
                self.rec["kind"] = "download"
                self.download(st, u.path[4:])
            elif u.path.startswith("/ul/") and self.command == "PUT":
                self.rec["kind"] = "upload"
                self.upload(st, u.path[4:])
            elif "/locks" in u.path:
                self.rec["kind"] = "locks"
                self.read_body()
                self.lfs_error(404, "this server has no locking API")
            elif u.path.startswith("/_admin/") and self.command == "POST":
                self.rec["kind"] = "admin"
                self.read_body()
                self.admin(st, u.path)
            elif u.path == "/healthz":
                self.reply(200, "ok\n", ctype="text/plain")
            else:
                if self.command in ("POST", "PUT"):
                    self.read_body()
                self.lfs_error(404, "Not found")
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
            self.rec["status"] = self.rec["status"] or 499
        finally:
            self.flush_log()

    # ------------------------------------------------------------ batch API
    def basic_auth(self, st):
        """None if fine, else the reason (and the request is answered 401)."""
        if not st.user:
            self.rec["auth"] = "none"
            return None
        auth = self.headers.get("Authorization", "")
        ok = False
        if auth.startswith("Basic "):
            try:
                user, _, pw = base64.b64decode(auth[6:], validate=True).decode().partition(":")
                ok = hmac.compare_digest(user, st.user) and hmac.compare_digest(pw, st.password)
            except (ValueError, UnicodeDecodeError):
                ok = False
        self.rec["auth"] = "basic" if ok else ("bad-basic" if auth else "none")
        if ok:
            return None
        self.lfs_error(401, "Credentials needed" if not auth else "Bad credentials",
                       headers={"LFS-Authenticate": 'Basic realm="Git LFS"'})
        return "unauthorized"

    def batch(self, st):
        raw = self.read_body()
        if raw is None:
            return self.lfs_error(413, "request too large")
        if MEDIA not in self.headers.get("Accept", ""):
            return self.lfs_error(406, "Accept must be %s" % MEDIA)
        if self.basic_auth(st):
            return
        try:
            req = json.loads(raw.decode("utf-8"))
            if not isinstance(req, dict):
                raise ValueError("not an object")
        except (ValueError, UnicodeDecodeError) as e:
            return self.lfs_error(422, "malformed JSON: %s" % e)
        op = req.get("operation")
        objs = req.get("objects")
        transfers = req.get("transfers")
        ref = req.get("ref")
        algo = req.get("hash_algo")
        self.rec.update(operation=op, ref=(ref or {}).get("name") if isinstance(ref, dict) else ref,
                        hash_algo=algo, transfers=transfers)
        if op not in ("download", "upload"):
            return self.lfs_error(422, "operation must be download or upload")
        if not isinstance(objs, list):
            return self.lfs_error(422, "objects must be an array")
        if transfers is not None and (not isinstance(transfers, list) or "basic" not in transfers):
            return self.lfs_error(422, "this server only offers the basic transfer adapter")
        if algo is not None and algo != "sha256":
            return self.lfs_error(409, "unsupported hash algorithm %r" % (algo,))
        if ref is not None and not (isinstance(ref, dict) and isinstance(ref.get("name"), str)):
            return self.lfs_error(422, "ref must be {\"name\": ...}")
        self.rec["n_objects"] = len(objs)
        self.rec["oids"] = [o.get("oid") for o in objs if isinstance(o, dict)]
        host = self.headers.get("Host") or "127.0.0.1:%d" % self.server.server_address[1]
        base = "http://%s" % host
        now = int(time.time())
        with st.lock:
            expiry, advertise, style = st.expiry, st.advertise, st.style
        out = []
        for o in objs:
            oid = o.get("oid") if isinstance(o, dict) else None
            size = o.get("size") if isinstance(o, dict) else None
            if not isinstance(oid, str) or not OID_RE.match(oid) or \
                    not isinstance(size, int) or isinstance(size, bool) or size < 0:
                out.append({"oid": oid if isinstance(oid, str) else "", "size": 0,
                            "error": {"code": 422, "message": "Invalid object"}})
                continue
            path = st.path_of(oid)
            have = os.stat(path).st_size if os.path.isfile(path) else None
            if op == "download":
                if have is None:
                    out.append({"oid": oid, "size": size,
                                "error": {"code": 404, "message": "Object does not exist"}})
                    continue
                if have != size:
                    out.append({"oid": oid, "size": size,
                                "error": {"code": 422, "message": "Object size mismatch"}})
                    continue
                out.append({"oid": oid, "size": size, "authenticated": True,
                            "actions": {"download": self.action(st, "dl", base, oid, now, expiry,
                                                                advertise, style)}})
            else:
                if have == size:
                    out.append({"oid": oid, "size": size})   # already there: no actions
                    continue
                out.append({"oid": oid, "size": size, "authenticated": True,
                            "actions": {"upload": self.action(st, "ul", base, oid, now, expiry,
                                                              advertise, "in")}})
        self.reply(200, {"transfer": "basic", "objects": out, "hash_algo": "sha256"})

    def action(self, st, kind, base, oid, now, expiry, advertise, style):
        exp = now + expiry
        a = {"href": "%s/%s/%s?exp=%d&sig=%s" % (base, kind, oid, exp, st.sign(kind, oid, exp)),
             "header": {"Authorization": "RemoteAuth %s" % st.token(kind, oid, exp)}}
        if style in ("in", "both"):
            a["expires_in"] = advertise
        if style in ("at", "both"):
            a["expires_at"] = rfc3339(now + advertise)
        return a

    # ------------------------------------------------------------ transfers
    def check_href(self, st, kind, oid):
        """None if the signed href may be used, else it has been answered."""
        self.rec["oid"] = oid
        try:
            exp = int(self.q.get("exp", ""))
        except ValueError:
            exp = -1
        sig = self.q.get("sig", "")
        if not OID_RE.match(oid) or exp < 0 or \
                not hmac.compare_digest(sig, st.sign(kind, oid, exp)):
            self.rec["sig"] = "bad"
            self.lfs_error(403, "bad signature")
            return "bad"
        if time.time() >= exp:
            self.rec["sig"] = "expired"
            self.lfs_error(403, "expired")
            return "expired"
        self.rec["sig"] = "ok"
        auth = self.headers.get("Authorization", "")
        if not auth:
            self.rec["remote_auth"] = "missing"
        elif hmac.compare_digest(auth, "RemoteAuth %s" % st.token(kind, oid, exp)):
            self.rec["remote_auth"] = "ok"
            return None
        else:
            self.rec["remote_auth"] = "bad"
        self.lfs_error(401, "the header of the action is required")
        return "unauthorized"

    def download(self, st, oid):
        if self.check_href(st, "dl", oid):
            return
        path = st.path_of(oid)
        try:
            f = open(path, "rb")
        except OSError:
            return self.lfs_error(404, "Object does not exist")
        with f:
            size = os.fstat(f.fileno()).st_size
            etag = '"%s"' % oid[:32]
            rng = self.headers.get("Range")
            im = self.headers.get("If-Match")
            self.rec["range"] = rng or ""
            self.rec["if_match"] = im or ""
            if im and im.strip() != "*" and etag not in [t.strip() for t in im.split(",")]:
                return self.lfs_error(412, "precondition failed", headers={"ETag": etag})
            start, end, status = 0, size - 1, 200
            if rng and rng.startswith("bytes=") and "," not in rng:
                a, _, b = rng[6:].strip().partition("-")
                try:
                    if a == "":
                        n = int(b)
                        if n <= 0:
                            raise ValueError
                        start, end = max(0, size - n), size - 1
                    else:
                        start = int(a)
                        end = min(int(b), size - 1) if b else size - 1
                        if end < start and start < size:
                            raise ValueError
                        if start >= size:
                            return self.lfs_error(416, "range not satisfiable",
                                                  headers={"Content-Range": "bytes */%d" % size})
                    status = 206
                except ValueError:
                    start, end, status = 0, size - 1, 200
            length = max(0, end - start + 1) if size else 0
            self.send_response(status)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(length))
            if status == 206:
                self.send_header("Content-Range", "bytes %d-%d/%d" % (start, end, size))
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("ETag", etag)
            self.end_headers()
            self.rec["status"] = status
            if self.command == "HEAD":
                return self.flush_log()
            f.seek(start)
            left = length
            while left > 0:
                b = f.read(min(CHUNK, left))
                if not b:
                    self.close_connection = True
                    break
                self.rec["bytes"] += len(b)
                if len(b) == left:
                    self.flush_log()
                self.wfile.write(b)
                left -= len(b)

    def upload(self, st, oid):
        n = int(self.headers.get("Content-Length") or 0)
        if self.check_href(st, "ul", oid):
            self.rfile.read(n)
            return
        fd, tmp = tempfile.mkstemp(dir=st.root, prefix=".incoming-")
        h = hashlib.sha256()
        left = n
        try:
            with os.fdopen(fd, "wb") as out:
                while left > 0:
                    b = self.rfile.read(min(CHUNK, left))
                    if not b:
                        break
                    h.update(b)
                    out.write(b)
                    left -= len(b)
            if left or h.hexdigest() != oid:
                os.unlink(tmp)
                return self.lfs_error(422, "content does not match oid %s" % oid)
            os.rename(tmp, st.path_of(oid))
        except OSError as e:
            if os.path.exists(tmp):
                os.unlink(tmp)
            return self.lfs_error(500, "cannot store: %s" % e)
        self.rec["bytes_in"] = n
        self.reply(200, b"", ctype="text/plain")

    # ------------------------------------------------------------ controls
    def admin(self, st, path):
        if path != "/_admin/config":
            return self.reply(404, {"message": "no such control"}, ctype="application/json")
        with st.lock:
            for k in ("expiry", "advertise"):
                if k in self.q:
                    v = self.q[k]
                    if not v.lstrip("-").isdigit():
                        return self.reply(400, {"message": "%s=N" % k}, ctype="application/json")
                    setattr(st, k, int(v))
            if "expiry" in self.q and "advertise" not in self.q:
                st.advertise = st.expiry
            if "style" in self.q:
                if self.q["style"] not in ("in", "at", "both"):
                    return self.reply(400, {"message": "style=in|at|both"}, ctype="application/json")
                st.style = self.q["style"]
            cfg = {"expiry": st.expiry, "advertise": st.advertise, "style": st.style}
        self.reply(200, cfg, ctype="application/json")


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--root", required=True)
    ap.add_argument("--user")
    ap.add_argument("--password", default="")
    ap.add_argument("--bind", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file")
    ap.add_argument("--log")
    ap.add_argument("--expiry", type=int, default=3600)
    ap.add_argument("--advertise", type=int)
    ap.add_argument("--style", choices=("in", "at", "both"), default="in")
    args = ap.parse_args()
    if args.advertise is None:
        args.advertise = args.expiry
    os.makedirs(args.root, exist_ok=True)
    state = State(args)
    srv = Server((args.bind, args.port), Handler)
    srv.state = state
    port = srv.server_address[1]
    if args.port_file:
        tmp = args.port_file + ".tmp"
        with open(tmp, "w") as fh:
            fh.write("%d\n" % port)
        os.rename(tmp, args.port_file)
    print("lfs test server on %s:%d" % (args.bind, port), file=sys.stderr, flush=True)
    try:
        srv.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
