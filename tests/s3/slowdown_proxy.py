#!/usr/bin/env python3
"""An HTTP proxy in front of an S3 server that answers some requests with
503 SlowDown, as a throttled object store does.

    slowdown_proxy.py LISTEN_PORT UPSTREAM_PORT EVERY COUNT_FILE [die:TEXT|hold:TEXT]

Every EVERY-th request (counting from the first) gets a 503 with an S3
`SlowDown` error body instead of being forwarded; the others are forwarded
unchanged (same method, path, headers and body, so signatures still match).
The number of 503 answers is written to COUNT_FILE after each one. Prints
"ready" when it listens. EVERY 0 throttles nothing.

A gate stops the traffic at a point the caller chooses: once the proxy has
answered a PUT whose path contains TEXT, `die:` exits at once (every
connection reset, the port closed: the endpoint vanishes) and `hold:` never
answers another request (the clients hang mid-run) and writes "held" to
COUNT_FILE.
"""

import http.client
import os
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LISTEN, UPSTREAM, EVERY, COUNT_FILE = (
    int(sys.argv[1]),
    int(sys.argv[2]),
    int(sys.argv[3]),
    sys.argv[4],
)
GATE, _, GATE_TEXT = (sys.argv[5] if len(sys.argv) > 5 else "").partition(":")
held = threading.Event()
lock = threading.Lock()
seen = 0
refused = 0

SLOWDOWN = (
    b'<?xml version="1.0" encoding="UTF-8"?>'
    b"<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>"
)


class Proxy(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def handle_any(self):
        global seen, refused
        if held.is_set():
            threading.Event().wait()
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        with lock:
            seen += 1
            throttle = seen % EVERY == 1 if EVERY > 1 else False
            if throttle:
                refused += 1
                with open(COUNT_FILE, "w") as f:
                    f.write(str(refused))
        if throttle:
            self.send_response(503, "Slow Down")
            self.send_header("Content-Type", "application/xml")
            self.send_header("Content-Length", str(len(SLOWDOWN)))
            self.end_headers()
            self.wfile.write(SLOWDOWN)
            return
        conn = http.client.HTTPConnection("127.0.0.1", UPSTREAM, timeout=60)
        headers = {k: v for k, v in self.headers.items()}
        conn.request(self.command, self.path, body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        self.send_response(resp.status, resp.reason)
        for k, v in resp.getheaders():
            if k.lower() in ("transfer-encoding", "connection"):
                continue
            if k.lower() == "content-length" and self.command != "HEAD":
                continue
            self.send_header(k, v)
        if self.command != "HEAD":
            self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
        conn.close()
        if (
            GATE_TEXT
            and self.command == "PUT"
            and GATE_TEXT in self.path
            and resp.status < 300
        ):
            self.wfile.flush()
            if GATE == "die":
                os._exit(0)
            held.set()
            with open(COUNT_FILE, "w") as f:
                f.write("held")

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = handle_any


server = ThreadingHTTPServer(("127.0.0.1", LISTEN), Proxy)
server.daemon_threads = True
print("ready", flush=True)
server.serve_forever()
