#!/usr/bin/env python3
"""A counting reverse proxy in front of an S3 endpoint, for bench/s3-requests.sh:
every request is forwarded unchanged (headers, body, signature) and counted by
method; GET /__count answers the counts as JSON and POST /__reset zeroes them.

usage: s3_count_proxy.py LISTEN_PORT UPSTREAM_HOST:PORT
"""
import collections
import http.client
import http.server
import json
import sys
import threading

COUNTS = collections.Counter()
LOCK = threading.Lock()
UPSTREAM = ("127.0.0.1", 0)


class Proxy(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def answer_json(self, value):
        body = json.dumps(value).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def forward(self):
        if self.path == "/__count":
            with LOCK:
                return self.answer_json(dict(COUNTS))
        if self.path == "/__reset":
            with LOCK:
                COUNTS.clear()
            return self.answer_json({})
        with LOCK:
            COUNTS[self.command] += 1
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        conn = http.client.HTTPConnection(*UPSTREAM, timeout=120)
        headers = {k: v for k, v in self.headers.items() if k.lower() != "connection"}
        conn.request(self.command, self.path, body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        self.send_response(resp.status, resp.reason)
        for key, value in resp.getheaders():
            if key.lower() not in ("transfer-encoding", "connection", "content-length"):
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
        conn.close()

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = forward


def main():
    global UPSTREAM
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    host, port = sys.argv[2].rsplit(":", 1)
    UPSTREAM = (host, int(port))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Proxy)
    server.serve_forever()


if __name__ == "__main__":
    main()
