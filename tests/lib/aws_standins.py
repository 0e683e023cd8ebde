#!/usr/bin/env python3
"""Loopback stand-ins for the AWS pieces lfsfs talks to, for unit tests.

usage:
  aws_standins.py sign SPEC.json
      Sign each request in SPEC.json (a JSON array) with botocore's SigV4Auth
      (S3SigV4Auth when service is "s3") and print a JSON array of results.
      Exit 77 when botocore cannot be imported.  Each request:
        {"method": "GET", "scheme": "https", "host": "b.s3.amazonaws.com",
         "raw_path": "/key with space", "params": [["k", "v"], ...],
         "headers": {"Range": "bytes=0-9"}, "service": "s3",
         "region": "us-east-1", "access_key": "...", "secret_key": "...",
         "token": "" , "amz_date": "20150830T123600Z",
         "unsigned_payload": false}
      raw_path and params are unencoded; botocore's own percent-encoding
      makes the wire path and query.  Each result:
        {"path": encoded path, "query": encoded query (in the given order),
         "headers": {lower-case name: value} of every header botocore set}

  aws_standins.py serve --port-file FILE [--control FILE] [--log FILE]
      One HTTP server on 127.0.0.1 (free port written to FILE) playing:
        IMDSv2  PUT /latest/api/token (needs X-aws-ec2-metadata-token-ttl-seconds),
                GET /latest/meta-data/iam/security-credentials/[ROLE]
                (needs X-aws-ec2-metadata-token with an issued token, else 401)
        ECS     GET /ecs/<anything>: needs "Authorization: <ecs_token>" when
                ecs_token is set in the control file
        STS     POST / or /sts (form) or GET ?Action=...: AssumeRoleWithWebIdentity;
                WebIdentityToken must equal sts_token (control file), RoleArn set
      The control file (JSON, read at every request, may be absent) may set:
        imds_expire, ecs_expire, sts_expire: credential lifetime in seconds
                                             (default 3600)
        ecs_token   (default "ecs-secret-token"), sts_token (default "web-id-token")
        imds_role   (default "lfsfs-test-role"; "" = no role attached)
        imds_v1     true: no token needed
      Access key ids count the credentials served: ASIAIMDS000001, ASIAECS000001,
      ASIASTS000001, ... so a test can see a refetch.  --log appends one line
      per request: "METHOD PATH STATUS".
"""
import datetime
import http.server
import json
import os
import secrets
import socketserver
import sys
import threading
import urllib.parse


def cmd_sign(argv):
    try:
        import botocore.auth
        from botocore.auth import S3SigV4Auth, SigV4Auth
        from botocore.awsrequest import AWSRequest
        from botocore.credentials import Credentials
        from botocore.utils import percent_encode, percent_encode_sequence
    except Exception as e:  # noqa: BLE001
        print(f"botocore unavailable: {e}", file=sys.stderr)
        return 77
    with open(argv[0], encoding="utf-8") as f:
        spec = json.load(f)
    results = []
    for r in spec:
        when = datetime.datetime.strptime(r["amz_date"], "%Y%m%dT%H%M%SZ")
        # botocore reads the clock through this module-level helper.
        botocore.auth.get_current_datetime = lambda when=when: when
        path = percent_encode(r["raw_path"], safe="/~")
        query = percent_encode_sequence([tuple(p) for p in r.get("params", [])])
        url = f"{r.get('scheme', 'https')}://{r['host']}{path}"
        if query:
            url += "?" + query
        req = AWSRequest(method=r["method"], url=url, headers=dict(r.get("headers", {})),
                         data=r.get("body", "").encode())
        if r.get("unsigned_payload"):
            from botocore.config import Config
            req.context["client_config"] = Config(s3={"payload_signing_enabled": False})
            req.context["payload_signing_enabled"] = False
        creds = Credentials(r["access_key"], r["secret_key"], r.get("token") or None)
        cls = S3SigV4Auth if r["service"] == "s3" else SigV4Auth
        cls(creds, r["service"], r["region"]).add_auth(req)
        results.append({"path": path, "query": query,
                        "headers": {k.lower(): v for k, v in req.headers.items()}})
    json.dump(results, sys.stdout)
    print()
    return 0


def iso(t):
    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%SZ")


class State:
    def __init__(self, control, log):
        self.control = control
        self.log = log
        self.lock = threading.Lock()
        self.counters = {}
        self.tokens = set()

    def ctl(self):
        if not self.control:
            return {}
        try:
            with open(self.control, encoding="utf-8") as f:
                return json.load(f)
        except (OSError, ValueError):
            return {}

    def creds(self, kind, expire):
        import time
        with self.lock:
            n = self.counters.get(kind, 0) + 1
            self.counters[kind] = n
        return {
            "AccessKeyId": f"ASIA{kind.upper()}{n:06d}",
            "SecretAccessKey": f"{kind}-secret-{n}-" + secrets.token_hex(8),
            "Token": f"{kind}-session-token-{n}",
            "Expiration": iso(time.time() + expire),
        }


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    state = None  # set by cmd_serve

    def log_message(self, *args):  # quiet
        pass

    def send(self, code, body, ctype="text/plain"):
        data = body.encode() if isinstance(body, str) else body
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
        st = self.state
        if st.log:
            with st.lock, open(st.log, "a", encoding="utf-8") as f:
                f.write(f"{self.command} {self.path} {code}\n")

    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n).decode() if n else ""

    # ---- IMDSv2 ----
    def imds(self):
        st, ctl = self.state, self.state.ctl()
        path = urllib.parse.urlsplit(self.path).path
        if path == "/latest/api/token":
            if self.command != "PUT":
                return self.send(405, "method not allowed")
            ttl = self.headers.get("X-aws-ec2-metadata-token-ttl-seconds")
            if not ttl or not ttl.isdigit() or not 0 < int(ttl) <= 21600:
                return self.send(400, "missing or bad ttl")
            tok = "imds-token-" + secrets.token_hex(8)
            with st.lock:
                st.tokens.add(tok)
            return self.send(200, tok)
        if not ctl.get("imds_v1"):
            if self.headers.get("X-aws-ec2-metadata-token") not in st.tokens:
                return self.send(401, "unauthorized")
        base = "/latest/meta-data/iam/security-credentials/"
        role = ctl.get("imds_role", "lfsfs-test-role")
        if path == base:
            return self.send(200, role + "\n") if role else self.send(404, "not found")
        if role and path == base + role:
            c = st.creds("imds", ctl.get("imds_expire", 3600))
            c.update({"Code": "Success", "Type": "AWS-HMAC",
                      "LastUpdated": iso(0)})
            return self.send(200, json.dumps(c), "application/json")
        return self.send(404, "not found")

    # ---- ECS / container ----
    def ecs(self):
        st, ctl = self.state, self.state.ctl()
        want = ctl.get("ecs_token", "ecs-secret-token")
        if want and self.headers.get("Authorization") != want:
            return self.send(401, json.dumps({"message": "bad authorization"}))
        return self.send(200, json.dumps(st.creds("ecs", ctl.get("ecs_expire", 3600))),
                         "application/json")

    # ---- STS ----
    def sts(self, params):
        st, ctl = self.state, self.state.ctl()

        def err(code, typ, msg):
            return self.send(code, (
                '<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">'
                f"<Error><Type>Sender</Type><Code>{typ}</Code><Message>{msg}</Message>"
                "</Error><RequestId>1</RequestId></ErrorResponse>"), "text/xml")

        if params.get("Action") != "AssumeRoleWithWebIdentity":
            return err(400, "InvalidAction", "unknown action")
        if not params.get("RoleArn") or not params.get("RoleSessionName"):
            return err(400, "ValidationError", "RoleArn and RoleSessionName are required")
        if params.get("WebIdentityToken") != ctl.get("sts_token", "web-id-token"):
            return err(400, "InvalidIdentityToken", "The token is not valid")
        c = st.creds("sts", ctl.get("sts_expire", 3600))
        xml = (
            '<AssumeRoleWithWebIdentityResponse '
            'xmlns="https://sts.amazonaws.com/doc/2011-06-15/">\n'
            "  <AssumeRoleWithWebIdentityResult>\n"
            "    <SubjectFromWebIdentityToken>system:sa</SubjectFromWebIdentityToken>\n"
            "    <AssumedRoleUser>\n"
            f"      <Arn>{params['RoleArn']}/{params['RoleSessionName']}</Arn>\n"
            "      <AssumedRoleId>AROAEXAMPLE:s</AssumedRoleId>\n"
            "    </AssumedRoleUser>\n"
            "    <Credentials>\n"
            f"      <SessionToken>{c['Token']}&amp;x</SessionToken>\n"
            f"      <SecretAccessKey>{c['SecretAccessKey']}</SecretAccessKey>\n"
            f"      <Expiration>{c['Expiration']}</Expiration>\n"
            f"      <AccessKeyId>{c['AccessKeyId']}</AccessKeyId>\n"
            "    </Credentials>\n"
            "  </AssumeRoleWithWebIdentityResult>\n"
            "  <ResponseMetadata><RequestId>1</RequestId></ResponseMetadata>\n"
            "</AssumeRoleWithWebIdentityResponse>\n")
        return self.send(200, xml, "text/xml")

    def route(self):
        parts = urllib.parse.urlsplit(self.path)
        body = self.body() if self.command in ("POST", "PUT") else ""
        if parts.path.startswith("/latest/"):
            return self.imds()
        if parts.path.startswith("/ecs/"):
            return self.ecs() if self.command == "GET" else self.send(405, "no")
        if parts.path in ("/", "/sts", "/sts/"):
            q = parts.query if self.command == "GET" else body
            params = dict(urllib.parse.parse_qsl(q, keep_blank_values=True))
            return self.sts(params)
        return self.send(404, "not found")

    do_GET = do_PUT = do_POST = route


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def cmd_serve(argv):
    import argparse
    ap = argparse.ArgumentParser(prog="aws_standins.py serve")
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--control")
    ap.add_argument("--log")
    a = ap.parse_args(argv)
    Handler.state = State(a.control, a.log)
    srv = Server(("127.0.0.1", 0), Handler)
    tmp = a.port_file + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(f"{srv.server_address[1]}\n")
    os.rename(tmp, a.port_file)
    parent = os.getppid()

    def orphan_watch():
        # the test that started us died without stopping us: go too
        import time
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(0)

    threading.Thread(target=orphan_watch, daemon=True).start()
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


def main():
    if len(sys.argv) < 2 or sys.argv[1] not in ("sign", "serve"):
        print(__doc__, file=sys.stderr)
        return 2
    if sys.argv[1] == "sign":
        return cmd_sign(sys.argv[2:])
    return cmd_serve(sys.argv[2:])


if __name__ == "__main__":
    sys.exit(main())
