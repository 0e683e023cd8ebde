#!/usr/bin/env python3
"""A Google Cloud Storage JSON-API test server, with an OAuth2 token endpoint
and a GCE metadata server, for lfsfs tests.

No GCS emulator is installable here (the firebase emulator needs Java 21 or
downloads a jar at start; fake-gcs-server is Go and not packaged), so this
server was written from Google's public documentation of the JSON API
(objects.get, media downloads, preconditions, error format), the OAuth 2.0
service-account flow (RFC 7523 JWT bearer grant, RS256 per RFC 7515/7518)
and the refresh-token grant (RFC 6749 6), and the GCE metadata server.  It is
our own: behaviour it does not implement is listed at the end of docs/GCS.md.

usage: gcs_server.py --root DIR --trust-dir DIR [--users FILE] [--port 0]
                     [--port-file FILE] [--log FILE] [--token-lifetime S]

Objects: DIR/<bucket>/<object name> (slashes in names are directories).
  GET  /storage/v1/b/{bucket}/o/{object}             metadata (JSON)
  GET  /storage/v1/b/{bucket}/o/{object}?alt=media   bytes; also under /download/
       a single Range (206 + Content-Range; 416 past the end), X-Goog-Generation,
       X-Goog-Metageneration, X-Goog-Hash (crc32c, md5), X-Goog-Stored-Content-Length;
       query preconditions ifGenerationMatch (412), ifGenerationNotMatch (304),
       ifMetagenerationMatch (412), generation (404 unless current).
  A generation is a microsecond timestamp assigned when the server first sees a
  file version (inode, size, mtime, ctime); replacing or rewriting the file gives
  a new, larger one.  metageneration is always 1.
Auth: objects whose name starts with "public/" are readable anonymously; all
  others need "Authorization: Bearer <token issued here>" (401 otherwise, in
  the GCS error format).
  POST /token  grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer: the
       assertion must be an RS256 JWT signed by the key whose public half is
       TRUST_DIR/<iss>.pem, with aud = this endpoint's URL, a devstorage or
       cloud-platform scope, iat not in the future (60 s skew), exp > now and
       exp - iat <= 3600.  Verified with python3-cryptography when importable,
       else with a stdlib RSA implementation (PKCS#1 v1.5, SHA-256).
       grant_type=refresh_token: client_id/client_secret/refresh_token must be
       in USERS ({"<client_id>": {"secret": "...", "refresh_tokens": [...]}}).
       Errors are Google's: 400 {"error": "invalid_grant", "error_description"}.
  GET  /computeMetadata/v1/instance/service-accounts/default/token needs
       "Metadata-Flavor: Google" (403 otherwise); answers with Metadata-Flavor.
Test-only controls (not GCS): POST /_admin/revoke forgets every issued token;
  POST /_admin/lifetime?seconds=N sets the lifetime of tokens issued after it.
Log: one JSON object per request (keys: method, path, object, alt, range,
  query, auth ["none", "bearer", "bad-bearer"], grant, flavor, status, bytes).
TCP_NODELAY on every connection; HTTP/1.1 keep-alive.
"""
import argparse
import base64
import binascii
import hashlib
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

try:  # optional: an independent RS256 verifier
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding
    from cryptography.exceptions import InvalidSignature
    HAVE_CRYPTOGRAPHY = True
except Exception:  # pragma: no cover - depends on the host
    HAVE_CRYPTOGRAPHY = False

STORAGE_SCOPES = {
    "https://www.googleapis.com/auth/devstorage.read_only",
    "https://www.googleapis.com/auth/devstorage.read_write",
    "https://www.googleapis.com/auth/devstorage.full_control",
    "https://www.googleapis.com/auth/cloud-platform",
    "https://www.googleapis.com/auth/cloud-platform.read-only",
}
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
CHUNK = 1 << 20


# ----------------------------------------------------------------- crc32c
def _crc32c_tables():
    poly = 0x82F63B78
    t0 = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ poly if c & 1 else c >> 1
        t0.append(c)
    tables = [t0]
    for _ in range(7):
        prev = tables[-1]
        tables.append([(prev[i] >> 8) ^ t0[prev[i] & 0xFF] for i in range(256)])
    return tables


_T = _crc32c_tables()


def _crc32c_py(data, crc=0):
    """CRC-32C (Castagnoli), slicing-by-8, pure Python (~6 MB/s)."""
    t0, t1, t2, t3, t4, t5, t6, t7 = _T
    crc ^= 0xFFFFFFFF
    n = len(data)
    i = 0
    mv = memoryview(data)
    while i + 8 <= n:
        lo = crc ^ int.from_bytes(mv[i:i + 4], "little")
        hi = int.from_bytes(mv[i + 4:i + 8], "little")
        crc = (t7[lo & 0xFF] ^ t6[(lo >> 8) & 0xFF] ^ t5[(lo >> 16) & 0xFF] ^ t4[lo >> 24] ^
               t3[hi & 0xFF] ^ t2[(hi >> 8) & 0xFF] ^ t1[(hi >> 16) & 0xFF] ^ t0[hi >> 24])
        i += 8
    while i < n:
        crc = t0[(crc ^ mv[i]) & 0xFF] ^ (crc >> 8)
        i += 1
    return crc ^ 0xFFFFFFFF


def _crc32c_native():
    """e2fsprogs' libext2fs has a fast CRC-32C (ext2fs_crc32c_le: no pre/post
    inversion); use it when present and it agrees with the check value."""
    try:
        import ctypes
        import ctypes.util
        lib = ctypes.CDLL(ctypes.util.find_library("ext2fs") or "libext2fs.so.2")
        fn = lib.ext2fs_crc32c_le
        fn.restype = ctypes.c_uint32
        fn.argtypes = [ctypes.c_uint32, ctypes.c_char_p, ctypes.c_size_t]

        def crc(data, c=0):
            data = bytes(data)
            return fn(c ^ 0xFFFFFFFF, data, len(data)) ^ 0xFFFFFFFF
        if crc(b"123456789") == 0xE3069283 and crc(b"6789", crc(b"12345")) == 0xE3069283:
            return crc
    except (OSError, AttributeError):
        pass
    return None


_crc32c_fast = _crc32c_native()
crc32c = _crc32c_fast or _crc32c_py
CRC_INLINE_MAX = (1 << 62) if _crc32c_fast else (16 << 20)


# ------------------------------------------------------------ RS256 verify
def b64url_decode(s):
    """RFC 7515 base64url; trailing "=" padding is tolerated, as Google's token
    endpoint tolerates it (older google-auth releases send it)."""
    if isinstance(s, str):
        s = s.encode("ascii")
    s = s.rstrip(b"=")
    if not all(c in b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_" for c in s):
        raise ValueError("not base64url without padding")
    return base64.urlsafe_b64decode(s + b"=" * (-len(s) % 4))


def _der_read(buf, i):
    tag = buf[i]
    ln = buf[i + 1]
    i += 2
    if ln & 0x80:
        k = ln & 0x7F
        ln = int.from_bytes(buf[i:i + k], "big")
        i += k
    return tag, buf[i:i + ln], i + ln


def rsa_public_numbers(pem):
    """(n, e) of a PEM SubjectPublicKeyInfo or PKCS#1 RSA public key (stdlib)."""
    lines = [ln for ln in pem.strip().splitlines() if not ln.startswith("-----")]
    der = base64.b64decode("".join(lines))
    tag, body, _ = _der_read(der, 0)
    if "BEGIN PUBLIC KEY" in pem:  # SPKI: SEQ { SEQ {oid, null}, BIT STRING }
        _, _, j = _der_read(body, 0)
        tag, bits, _ = _der_read(body, j)
        tag, body, _ = _der_read(bits[1:], 0)
    _, n, j = _der_read(body, 0)
    _, e, _ = _der_read(body, j)
    return int.from_bytes(n, "big"), int.from_bytes(e, "big")


SHA256_DIGEST_INFO = bytes.fromhex("3031300d060960864801650304020105000420")


def rs256_verify(pem, signing_input, sig):
    if HAVE_CRYPTOGRAPHY:
        key = serialization.load_pem_public_key(pem.encode())
        try:
            key.verify(sig, signing_input, padding.PKCS1v15(), hashes.SHA256())
            return True
        except InvalidSignature:
            return False
    n, e = rsa_public_numbers(pem)
    k = (n.bit_length() + 7) // 8
    if len(sig) != k:
        return False
    em = pow(int.from_bytes(sig, "big"), e, n).to_bytes(k, "big")
    t = SHA256_DIGEST_INFO + hashlib.sha256(signing_input).digest()
    want = b"\x00\x01" + b"\xff" * (k - len(t) - 3) + b"\x00" + t
    return secrets.compare_digest(em, want)


# ------------------------------------------------------------------ state
class State:
    def __init__(self, args):
        self.root = os.path.abspath(args.root)
        self.trust_dir = os.path.abspath(args.trust_dir)
        self.users = args.users
        self.lifetime = args.token_lifetime
        self.lock = threading.Lock()
        self.gens = {}     # path -> (fingerprint, generation)
        self.hashes = {}   # (path, generation) -> (md5 b64, crc32c b64 or None)
        self.tokens = {}   # token -> (expiry, principal)
        self.last_gen = 0
        self.log_lock = threading.Lock()
        self.log = open(args.log, "a", buffering=1) if args.log else None
        self.port = 0

    def generation(self, path, st):
        fp = (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        with self.lock:
            cur = self.gens.get(path)
            if cur and cur[0] == fp:
                return cur[1]
            g = max(int(time.time() * 1e6), self.last_gen + 1)
            self.last_gen = g
            self.gens[path] = (fp, g)
            return g

    def object_hashes(self, path, gen, size, need_crc):
        key = (path, gen)
        with self.lock:
            h = self.hashes.get(key)
        if h and (h[1] or not need_crc):
            return h
        md5 = hashlib.md5()
        crc = 0
        with open(path, "rb") as f:
            while True:
                b = f.read(CHUNK)
                if not b:
                    break
                md5.update(b)
                if need_crc:
                    crc = crc32c(b, crc)
        h = (base64.b64encode(md5.digest()).decode(),
             base64.b64encode(crc.to_bytes(4, "big")).decode() if need_crc else None)
        with self.lock:
            self.hashes[key] = h
        return h

    def issue(self, principal):
        tok = "ya29.test-" + secrets.token_urlsafe(32)
        with self.lock:
            self.tokens[tok] = (time.time() + self.lifetime, principal)
        return tok

    def token_ok(self, tok):
        with self.lock:
            t = self.tokens.get(tok)
        return t is not None and t[0] > time.time()

    def write_log(self, rec):
        if not self.log:
            return
        with self.log_lock:
            self.log.write(json.dumps(rec, sort_keys=True) + "\n")


def etag_of(gen, metagen=1):
    """The JSON API etag: base64 of a protobuf {1: generation, 2: metageneration}."""
    def varint(v):
        out = bytearray()
        while True:
            b = v & 0x7F
            v >>= 7
            out.append(b | (0x80 if v else 0))
            if not v:
                return bytes(out)
    return base64.b64encode(b"\x08" + varint(gen) + b"\x10" + varint(metagen)).decode()


def rfc3339(ts):
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + ".%03dZ" % int((ts % 1) * 1000)


# ---------------------------------------------------------------- handler
class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "lfsfs-gcs-test/1"
    sys_version = ""

    def setup(self):
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, fmt, *args):  # quiet; we keep our own log
        pass

    # ------------------------------------------------------------ replies
    def reply(self, status, body=b"", ctype="application/json; charset=UTF-8", headers=None,
              send_body=True):
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
        if send_body and self.command != "HEAD":
            self.wfile.write(body)
        self.rec["status"] = status
        self.rec["bytes"] = len(body) if self.command != "HEAD" else 0

    def gcs_error(self, status, message, reason, extra_headers=None):
        self.reply(status, {"error": {"code": status, "message": message,
                                      "errors": [{"message": message, "domain": "global",
                                                  "reason": reason}]}},
                   headers=extra_headers)

    def oauth_error(self, status, error, desc):
        self.reply(status, {"error": error, "error_description": desc})

    # ------------------------------------------------------------ dispatch
    def do_GET(self):
        self.handle_any()

    def do_HEAD(self):
        self.handle_any()

    def do_POST(self):
        self.handle_any()

    def handle_any(self):
        st = self.server.state
        u = urllib.parse.urlsplit(self.path)
        self.q = urllib.parse.parse_qs(u.query, keep_blank_values=True)
        self.rec = {"t": round(time.time(), 3), "method": self.command, "path": u.path,
                    "query": {k: v[0] for k, v in self.q.items()},
                    "range": self.headers.get("Range", ""), "status": 0, "bytes": 0}
        auth = self.headers.get("Authorization", "")
        self.rec["auth"] = "none" if not auth else (
            "bearer" if auth.startswith("Bearer ") and st.token_ok(auth[7:]) else "bad-bearer")
        try:
            if u.path == "/token" and self.command == "POST":
                self.token_endpoint(st)
            elif u.path.startswith("/computeMetadata/"):
                self.metadata_server(st, u.path)
            elif u.path.startswith("/storage/v1/b/") or u.path.startswith("/download/storage/v1/b/"):
                self.objects(st, u.path)
            elif u.path.startswith("/_admin/") and self.command == "POST":
                self.admin(st, u.path)
            elif u.path == "/healthz":
                self.reply(200, "ok\n", ctype="text/plain")
            else:
                self.gcs_error(404, "Not Found", "notFound")
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
            self.rec["status"] = self.rec["status"] or 499
        finally:
            st.write_log(self.rec)

    # ------------------------------------------------------------ objects
    def objects(self, st, raw_path):
        p = raw_path[len("/download"):] if raw_path.startswith("/download/") else raw_path
        rest = p[len("/storage/v1/b/"):]
        if "/o/" not in rest:
            return self.gcs_error(404, "Not Found", "notFound")
        bseg, oseg = rest.split("/o/", 1)
        bucket = urllib.parse.unquote(bseg)
        name = urllib.parse.unquote(oseg)
        self.rec["object"] = name
        alt = self.q.get("alt", ["json"])[0]
        self.rec["alt"] = alt
        if self.command not in ("GET", "HEAD"):
            return self.gcs_error(405, "Method not allowed", "methodNotAllowed")
        if (not bucket or "/" in bucket or bucket in (".", "..") or not name or
                any(part in ("", ".", "..") for part in name.split("/"))):
            return self.gcs_error(400, "Invalid bucket or object name", "invalid")
        path = os.path.join(st.root, bucket, *name.split("/"))
        # auth first, as GCS does: a private object's existence is not revealed
        if not name.startswith("public/") and self.rec["auth"] != "bearer":
            if self.rec["auth"] == "none":
                return self.gcs_error(
                    401, "Anonymous caller does not have storage.objects.get access to the "
                    "Google Cloud Storage object. Permission 'storage.objects.get' denied on "
                    "resource (or it may not exist).", "required",
                    {"WWW-Authenticate": 'Bearer realm="https://accounts.google.com/"'})
            return self.gcs_error(
                401, "Invalid Credentials", "authError",
                {"WWW-Authenticate": 'Bearer realm="https://accounts.google.com/", '
                 'error="invalid_token"'})
        if not os.path.isdir(os.path.join(st.root, bucket)):
            return self.gcs_error(404, "The specified bucket does not exist.", "notFound")
        try:
            f = open(path, "rb")
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            return self.gcs_error(404, "No such object: %s/%s" % (bucket, name), "notFound")
        with f:
            fs = os.fstat(f.fileno())
            gen = st.generation(path, fs)
            size = fs.st_size
            # preconditions (query parameters, as the JSON API takes them)
            for k in ("ifGenerationMatch", "ifGenerationNotMatch", "ifMetagenerationMatch",
                      "generation"):
                v = self.q.get(k, [None])[0]
                if v is not None and not v.isdigit():
                    return self.gcs_error(400, "Invalid argument: %s=%r" % (k, v), "invalid")
            v = self.q.get("generation", [None])[0]
            if v is not None and int(v) != gen:
                return self.gcs_error(404, "No such object: %s/%s#%s" % (bucket, name, v),
                                      "notFound")
            v = self.q.get("ifGenerationMatch", [None])[0]
            if v is not None and int(v) != gen:
                return self.gcs_error(412, "At least one of the pre-conditions you specified "
                                      "did not hold.", "conditionNotMet")
            v = self.q.get("ifMetagenerationMatch", [None])[0]
            if v is not None and int(v) != 1:
                return self.gcs_error(412, "At least one of the pre-conditions you specified "
                                      "did not hold.", "conditionNotMet")
            v = self.q.get("ifGenerationNotMatch", [None])[0]
            if v is not None and int(v) == gen:
                self.send_response(304)
                self.send_header("Content-Length", "0")
                self.end_headers()
                self.rec["status"] = 304
                return
            if alt == "media":
                return self.media(st, f, path, bucket, name, gen, size, fs)
            if alt != "json":
                return self.gcs_error(400, "Invalid alt: %s" % alt, "invalid")
            md5, crc = st.object_hashes(path, gen, size, True)
            base = "http://%s" % (self.headers.get("Host") or "127.0.0.1:%d" % st.port)
            enc = urllib.parse.quote(name, safe="")
            meta = {
                "kind": "storage#object",
                "id": "%s/%s/%d" % (bucket, name, gen),
                "selfLink": "%s/storage/v1/b/%s/o/%s" % (base, bucket, enc),
                "mediaLink": "%s/download/storage/v1/b/%s/o/%s?generation=%d&alt=media"
                             % (base, bucket, enc, gen),
                "name": name,
                "bucket": bucket,
                "generation": str(gen),
                "metageneration": "1",
                "contentType": "application/octet-stream",
                "storageClass": "STANDARD",
                "size": str(size),
                "md5Hash": md5,
                "crc32c": crc,
                "etag": etag_of(gen),
                "timeCreated": rfc3339(gen / 1e6),
                "updated": rfc3339(gen / 1e6),
                "timeStorageClassUpdated": rfc3339(gen / 1e6),
            }
            self.reply(200, meta, headers={"ETag": '"%s"' % etag_of(gen)})

    def media(self, st, f, path, bucket, name, gen, size, fs):
        # X-Goog-Hash always has md5 and crc32c, like GCS; without libext2fs the
        # pure-Python crc32c is slow, so above 16 MiB it is only sent once a
        # metadata GET has computed it
        md5, crc = st.object_hashes(path, gen, size, size <= CRC_INLINE_MAX)
        if crc is None:
            with st.lock:
                crc = (st.hashes.get((path, gen)) or (None, None))[1]
        xhash = ("crc32c=%s,md5=%s" % (crc, md5)) if crc else "md5=%s" % md5
        start, end, status = 0, size - 1, 200
        rng = self.headers.get("Range")
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
                    end = int(b) if b else size - 1
                    if end < start:
                        raise ValueError
                    end = min(end, size - 1)
                    if start >= size:
                        return self.gcs_error(
                            416, "The requested range cannot be satisfied.",
                            "requestedRangeNotSatisfiable",
                            {"Content-Range": "bytes */%d" % size})
                status = 206
            except ValueError:
                start, end, status = 0, size - 1, 200   # invalid: ignored (RFC 9110 14.2)
        length = max(0, end - start + 1) if size else 0
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(length))
        if status == 206:
            self.send_header("Content-Range", "bytes %d-%d/%d" % (start, end, size))
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("ETag", '"%s"' % etag_of(gen))
        self.send_header("Last-Modified", formatdate(gen / 1e6, usegmt=True))
        self.send_header("X-Goog-Generation", str(gen))
        self.send_header("X-Goog-Metageneration", "1")
        self.send_header("X-Goog-Hash", xhash)
        self.send_header("X-Goog-Stored-Content-Length", str(size))
        self.send_header("X-Goog-Stored-Content-Encoding", "identity")
        self.send_header("X-Goog-Storage-Class", "STANDARD")
        self.end_headers()
        self.rec["status"] = status
        if self.command == "HEAD":
            return
        f.seek(start)
        left = length
        while left > 0:
            b = f.read(min(CHUNK, left))
            if not b:   # the file shrank under us: cut the connection
                self.close_connection = True
                break
            self.wfile.write(b)
            left -= len(b)
            self.rec["bytes"] += len(b)

    # ------------------------------------------------------ token endpoint
    def token_endpoint(self, st):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n).decode("utf-8", "replace") if n else ""
        form = {k: v[0] for k, v in urllib.parse.parse_qs(body, keep_blank_values=True).items()}
        grant = form.get("grant_type", "")
        self.rec["grant"] = grant
        ctype = self.headers.get("Content-Type", "")
        if not ctype.startswith("application/x-www-form-urlencoded"):
            return self.oauth_error(400, "invalid_request", "Content-Type must be "
                                    "application/x-www-form-urlencoded")
        if grant == JWT_BEARER:
            return self.jwt_grant(st, form.get("assertion", ""))
        if grant == "refresh_token":
            return self.refresh_grant(st, form)
        return self.oauth_error(400, "unsupported_grant_type", "Invalid grant_type: %s" % grant)

    def jwt_grant(self, st, assertion):
        parts = assertion.split(".")
        if len(parts) != 3:
            return self.oauth_error(400, "invalid_grant", "Invalid JWT: not three parts")
        try:
            header = json.loads(b64url_decode(parts[0]))
            claims = json.loads(b64url_decode(parts[1]))
            sig = b64url_decode(parts[2])
        except (ValueError, binascii.Error, UnicodeDecodeError):
            return self.oauth_error(400, "invalid_grant", "Invalid JWT: bad encoding")
        if not isinstance(header, dict) or not isinstance(claims, dict):
            return self.oauth_error(400, "invalid_grant", "Invalid JWT: not JSON objects")
        if header.get("alg") != "RS256":
            return self.oauth_error(400, "invalid_grant", "Invalid JWT: alg must be RS256")
        iss = claims.get("iss")
        self.rec["iss"] = iss
        if not isinstance(iss, str) or "/" in iss or iss.startswith("."):
            return self.oauth_error(400, "invalid_grant", "Invalid JWT: no iss")
        try:
            with open(os.path.join(st.trust_dir, iss + ".pem")) as fh:
                pem = fh.read()
        except OSError:
            return self.oauth_error(400, "invalid_grant", "Invalid grant: account not found")
        if not rs256_verify(pem, (parts[0] + "." + parts[1]).encode("ascii"), sig):
            return self.oauth_error(400, "invalid_grant", "Invalid JWT Signature.")
        aud = claims.get("aud")
        mine = {"http://%s/token" % self.headers.get("Host", ""),
                "http://127.0.0.1:%d/token" % st.port, "http://localhost:%d/token" % st.port}
        if aud not in mine:
            return self.oauth_error(400, "invalid_grant", "Invalid JWT: Failed audience check. "
                                    "The expected audience is http://127.0.0.1:%d/token." % st.port)
        now = time.time()
        iat, exp = claims.get("iat"), claims.get("exp")
        if (not isinstance(iat, int) or not isinstance(exp, int) or iat > now + 60 or
                exp <= now or exp - iat > 3600 or exp <= iat):
            return self.oauth_error(400, "invalid_grant", "Invalid JWT: Token must be a "
                                    "short-lived token (60 minutes) and in a reasonable "
                                    "timeframe. Check your iat and exp values in the JWT claim.")
        scopes = set(str(claims.get("scope", "")).split())
        if not scopes & STORAGE_SCOPES:
            return self.oauth_error(400, "invalid_scope", "Invalid OAuth scope or ID token "
                                    "audience provided.")
        tok = st.issue(iss)
        self.reply(200, {"access_token": tok, "expires_in": st.lifetime, "token_type": "Bearer"},
                   headers={"Cache-Control": "no-store", "Pragma": "no-cache"})

    def refresh_grant(self, st, form):
        try:
            with open(st.users) as fh:
                users = json.load(fh)
        except (OSError, TypeError, ValueError):
            users = {}
        cid = form.get("client_id", "")
        u = users.get(cid)
        if not u or not secrets.compare_digest(u.get("secret", ""), form.get("client_secret", "")):
            return self.oauth_error(401, "invalid_client", "The OAuth client was not found.")
        if form.get("refresh_token") not in u.get("refresh_tokens", []):
            return self.oauth_error(400, "invalid_grant", "Token has been expired or revoked.")
        tok = st.issue("user:" + cid)
        self.reply(200, {"access_token": tok, "expires_in": st.lifetime, "token_type": "Bearer",
                         "scope": "https://www.googleapis.com/auth/devstorage.read_only"},
                   headers={"Cache-Control": "no-store"})

    # ------------------------------------------------- test-only controls
    def admin(self, st, path):
        """Not GCS: knobs for tests. /_admin/revoke forgets every issued token
        (as if revoked); /_admin/lifetime?seconds=N sets the lifetime of
        tokens issued from now on."""
        if path == "/_admin/revoke":
            with st.lock:
                n = len(st.tokens)
                st.tokens.clear()
            return self.reply(200, {"revoked": n})
        if path == "/_admin/lifetime":
            v = self.q.get("seconds", [""])[0]
            if not v.isdigit() or int(v) <= 0:
                return self.reply(400, {"error": "seconds=N required"})
            st.lifetime = int(v)
            return self.reply(200, {"lifetime": st.lifetime})
        return self.reply(404, {"error": "no such control"})

    # ----------------------------------------------------- metadata server
    def metadata_server(self, st, path):
        flavor = self.headers.get("Metadata-Flavor", "")
        self.rec["flavor"] = flavor
        hdrs = {"Metadata-Flavor": "Google", "Server": "Metadata Server for VM"}
        if flavor != "Google" and self.headers.get("X-Google-Metadata-Request", "") != "True":
            return self.reply(403, "Missing required header: Metadata-Flavor\n",
                              ctype="text/html; charset=UTF-8", headers=hdrs)
        if path == "/computeMetadata/v1/instance/service-accounts/default/token":
            tok = st.issue("gce-default")
            return self.reply(200, {"access_token": tok, "expires_in": st.lifetime,
                                    "token_type": "Bearer"}, headers=hdrs)
        if path == "/computeMetadata/v1/instance/service-accounts/default/email":
            return self.reply(200, "gce-default@lfsfs-test.iam.gserviceaccount.com",
                              ctype="application/text", headers=hdrs)
        if path in ("/computeMetadata/v1/", "/computeMetadata/v1"):
            return self.reply(200, "instance/\nproject/\n", ctype="application/text",
                              headers=hdrs)
        return self.reply(404, "Not Found\n", ctype="text/html; charset=UTF-8", headers=hdrs)


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--root", required=True)
    ap.add_argument("--trust-dir", required=True)
    ap.add_argument("--users")
    ap.add_argument("--bind", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file")
    ap.add_argument("--log")
    ap.add_argument("--token-lifetime", type=int, default=3599)
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
    print("gcs test server on %s:%d (RS256 via %s)" % (
        args.bind, state.port, "cryptography" if HAVE_CRYPTOGRAPHY else "stdlib"),
        file=sys.stderr, flush=True)
    try:
        srv.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
