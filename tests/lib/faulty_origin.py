#!/usr/bin/env python3
"""A misbehaving HTTP/1.1 range origin for fault-injection tests (stdlib only).

usage: faulty_origin.py --root DIR --port-file FILE [--rules FILE] [--log FILE]
                        [--bind ADDR] [--port N]

Serves the files under DIR on ADDR (default 127.0.0.1), port N (default 0: a free
port, written to --port-file once the socket listens). HTTP/1.1 with keep-alive and
TCP_NODELAY; GET and HEAD; a single "Range: bytes=a-b" / "a-" / "-n" is answered 206
with Content-Range, an unsatisfiable one 416 ("bytes */SIZE"), several ranges are
ignored (200). Every response carries a strong ETag, "\"<sha1 of the content>\"";
If-Match with any other value (and not "*") is answered 412.

Fault plan (--rules): a JSON object mapping a URL path to a list of rules, read
again whenever the file changes (the test may rewrite it at any time; use an atomic
rename). A changed file resets every rule's counters.

    {"/a.bin": [{"fault": "status", "code": 503, "times": 2},
                {"fault": "slow", "seconds": 1.5, "start": 1048576}]}

Rule keys:
    fault    status | reset | reset_mid | truncate | wrong_range | ignore_range |
             wrong_total | wrong_bytes | slow | stall
    times    how many matching requests the rule applies to (absent or < 0:
             every one)
    skip     let this many matching requests through untouched first (default 0)
    start    only requests whose range starts at this byte offset
    method   only this method (default: any)
    code     status: the HTTP status to answer (default 503)
    seconds  slow: sleep before answering (default 1); stall: pause after half
             the body, then close the connection (default 2)

Faults:
    status       answer CODE with a short text body (keeps the connection)
    reset        read the request, then reset the connection (RST, no response)
    reset_mid    send the headers and half the body, then reset the connection
    truncate     send the headers (full Content-Length) and half the body, then
                 close the connection cleanly (FIN)
    wrong_range  206 whose Content-Range names a range shifted by one block
                 (4096 bytes) - with the right length - and that range's bytes
    ignore_range 200 with the whole object, whatever the Range asked
    wrong_total  correct 206, but the Content-Range total is the size plus one
    wrong_bytes  correct headers, the body's bytes XOR 0xff (every byte flipped)
    slow         sleep SECONDS, then answer normally
    stall        send the headers and half the body, sleep SECONDS, then close

The first matching rule with requests left is applied; a request matches no rule
or only exhausted ones -> normal answer.

Request log (--log): one line per request, appended and flushed at once:
    METHOD PATH RANGE STATUS FAULT if_match=IFMATCH t=ARRIVAL
RANGE is the Range header or "-", STATUS the status line sent ("0" when the
connection was reset before any response), FAULT the fault applied or "none",
ARRIVAL the time the request was read (Unix seconds, ms precision).
"""
import argparse
import hashlib
import http.server
import json
import os
import socket
import socketserver
import struct
import sys
import threading
import time
import urllib.parse

BLOCK_SHIFT = 4096  # how far wrong_range moves the range
FLIP = bytes(255 - i for i in range(256))  # wrong_bytes: XOR 0xff


class Plan:
    """The rules file, re-read when it changes, with per-rule counters."""

    def __init__(self, path):
        self.path = path
        self.lock = threading.Lock()
        self.sig = None
        self.rules = {}
        self.seen = {}  # (path, index) -> matching requests so far

    def _reload(self):
        if not self.path:
            return
        try:
            st = os.stat(self.path)
            sig = (st.st_mtime_ns, st.st_size, st.st_ino)
        except FileNotFoundError:
            sig = None
        if sig == self.sig:
            return
        rules = {}
        if sig is not None:
            try:
                with open(self.path) as f:
                    text = f.read()
                rules = json.loads(text) if text.strip() else {}
            except (OSError, ValueError) as e:
                print(f"faulty_origin: bad rules file {self.path}: {e}", file=sys.stderr)
                return  # keep the old plan; try again next request
        self.sig = sig
        self.rules = rules if isinstance(rules, dict) else {}
        self.seen = {}

    def pick(self, method, path, start):
        """The rule to apply to this request (a dict) or None."""
        with self.lock:
            self._reload()
            for i, rule in enumerate(self.rules.get(path, [])):
                if "method" in rule and rule["method"] != method:
                    continue
                if "start" in rule and rule["start"] != start:
                    continue
                key = (path, i)
                n = self.seen.get(key, 0)
                self.seen[key] = n + 1
                skip = int(rule.get("skip", 0))
                times = int(rule.get("times", -1))
                if n < skip:
                    return None  # let it through, counted
                if times >= 0 and n - skip >= times:
                    continue  # exhausted: a later rule may apply
                return rule
            return None


class ETags:
    """Strong ETags (sha1 of the content), cached by (inode, mtime, size)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.cache = {}

    def get(self, fspath, st):
        key = (fspath, st.st_ino, st.st_mtime_ns, st.st_size)
        with self.lock:
            v = self.cache.get(key)
        if v:
            return v
        h = hashlib.sha1()
        with open(fspath, "rb") as f:
            while True:
                b = f.read(1 << 20)
                if not b:
                    break
                h.update(b)
        v = '"' + h.hexdigest() + '"'
        with self.lock:
            self.cache[key] = v
        return v


def parse_range(value, size):
    """(start, end) inclusive, "unsatisfiable", or None (ignore the header)."""
    if not value:
        return None
    value = value.strip()
    if not value.lower().startswith("bytes="):
        return None
    spec = value[6:].strip()
    if "," in spec:
        return None  # multiple ranges: answer 200 (allowed by RFC 9110)
    a, sep, b = spec.partition("-")
    if not sep:
        return None
    a, b = a.strip(), b.strip()
    try:
        if a == "":
            n = int(b)
            if n <= 0:
                return "unsatisfiable"
            return (max(0, size - n), size - 1) if size else "unsatisfiable"
        s = int(a)
        e = int(b) if b else size - 1
    except ValueError:
        return None
    if s > e and b:
        return None  # syntactically invalid: ignore
    if s >= size:
        return "unsatisfiable"
    return (s, min(e, size - 1))


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "faulty-origin/1"
    sys_version = ""

    def setup(self):
        super().setup()
        try:
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass

    def log_message(self, fmt, *args):  # keep stderr quiet
        pass

    # -- helpers -----------------------------------------------------------
    def _log(self, rng, status, fault):
        im = self.headers.get("If-Match", "") if self.headers else ""
        line = "%s %s %s %s %s if_match=%s t=%.3f\n" % (
            self.command, self.path.split("?", 1)[0], (rng or "-").replace(" ", ""),
            status, fault, im.replace(" ", ""), self.t_arrival)
        self.server.write_log(line)

    def _abort(self):
        """Reset the connection (RST) once the handler returns."""
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                       struct.pack("ii", 1, 0))
        except OSError:
            pass
        self.server.mark_abort(self.connection)
        self.close_connection = True

    def _simple(self, code, text, extra=()):
        body = (text + "\n").encode()
        self.send_response(code)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        for k, v in extra:
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _send_body(self, fd, start, length, flip=False):
        off = start
        end = start + length
        while off < end:
            chunk = os.pread(fd, min(256 * 1024, end - off), off)
            if not chunk:
                break
            if flip:
                chunk = chunk.translate(FLIP)
            self.wfile.write(chunk)
            off += len(chunk)

    # -- requests ----------------------------------------------------------
    def do_HEAD(self):
        self._serve()

    def do_GET(self):
        self._serve()

    def _serve(self):
        self.t_arrival = time.time()
        path = urllib.parse.unquote(self.path.split("?", 1)[0])
        rng_hdr = self.headers.get("Range")
        root = self.server.root
        fspath = os.path.realpath(os.path.join(root, path.lstrip("/")))
        if not (fspath == root or fspath.startswith(root + os.sep)) or \
                not os.path.isfile(fspath):
            self._simple(404, "not found")
            self._log(rng_hdr, 404, "none")
            return
        st = os.stat(fspath)
        size = st.st_size
        rng = parse_range(rng_hdr, size)
        start = rng[0] if isinstance(rng, tuple) else (0 if rng is None else None)
        rule = self.server.plan.pick(self.command, path, start)
        fault = rule["fault"] if rule else "none"

        if fault == "slow":
            time.sleep(float(rule.get("seconds", 1)))
        if fault == "status":
            code = int(rule.get("code", 503))
            extra = [("Retry-After", "0")] if code in (429, 503) else []
            self._simple(code, "injected fault: HTTP %d" % code, extra)
            self._log(rng_hdr, code, fault)
            return
        if fault == "reset":
            self._log(rng_hdr, 0, fault)
            self._abort()
            return

        etag = self.server.etags.get(fspath, st)
        im = self.headers.get("If-Match")
        if im is not None:
            tags = [t.strip() for t in im.split(",")]
            if "*" not in tags and etag not in tags:
                self._simple(412, "precondition failed", [("ETag", etag)])
                self._log(rng_hdr, 412, fault)
                return
        if rng == "unsatisfiable":
            self._simple(416, "range not satisfiable", [("Content-Range", "bytes */%d" % size)])
            self._log(rng_hdr, 416, fault)
            return

        if rng is None or fault == "ignore_range":
            status, s, length, cr = 200, 0, size, None
        else:
            s, e = rng
            status, length = 206, e - s + 1
            cr_s, cr_e, cr_t = s, e, size
            if fault == "wrong_range":
                if s + BLOCK_SHIFT + length <= size:
                    s += BLOCK_SHIFT
                elif s > 0:
                    s -= min(s, BLOCK_SHIFT)
                # else: the range is the whole object; nothing else to name
                cr_s, cr_e = s, s + length - 1
            elif fault == "wrong_total":
                cr_t = size + 1
            cr = "bytes %d-%d/%d" % (cr_s, cr_e, cr_t)

        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(length))
        self.send_header("ETag", etag)
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Last-Modified", self.date_time_string(int(st.st_mtime)))
        if cr:
            self.send_header("Content-Range", cr)
        self.end_headers()
        self._log(rng_hdr, status, fault)
        if self.command == "HEAD":
            return
        fd = os.open(fspath, os.O_RDONLY)
        try:
            if fault in ("reset_mid", "truncate", "stall"):
                self._send_body(fd, s, length // 2)
                if fault == "stall":
                    time.sleep(float(rule.get("seconds", 2)))
                if fault == "reset_mid":
                    self._abort()
                else:
                    self.close_connection = True
                return
            self._send_body(fd, s, length, flip=(fault == "wrong_bytes"))
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        finally:
            os.close(fd)


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(self, addr, root, plan, logpath):
        super().__init__(addr, Handler)
        self.root = os.path.realpath(root)
        self.plan = plan
        self.etags = ETags()
        self.log_lock = threading.Lock()
        self.logf = open(logpath, "a", buffering=1) if logpath else None
        self.aborts = set()
        self.abort_lock = threading.Lock()

    def write_log(self, line):
        if self.logf:
            with self.log_lock:
                self.logf.write(line)
                self.logf.flush()

    def mark_abort(self, sock):
        with self.abort_lock:
            self.aborts.add(id(sock))

    def shutdown_request(self, request):
        with self.abort_lock:
            abort = id(request) in self.aborts
            self.aborts.discard(id(request))
        if abort:
            # SO_LINGER 0 + close: RST, no FIN first
            self.close_request(request)
        else:
            super().shutdown_request(request)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--root", required=True)
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--rules")
    ap.add_argument("--log")
    ap.add_argument("--bind", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    a = ap.parse_args()
    srv = Server((a.bind, a.port), a.root, Plan(a.rules), a.log)
    tmp = a.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d\n" % srv.server_address[1])
    os.rename(tmp, a.port_file)
    try:
        srv.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
