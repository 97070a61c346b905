#!/usr/bin/env python3
"""A routing REST service for the lab: answers POST /route (JSON: ruri, from, callid) with the SIP
URI to send the call to (text/plain), and remembers what it was asked.

    python3 lab/rest_router.py --bind 198.18.0.1 --port 18080 --route sip:203.0.113.200:5087
"""

import argparse
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlparse


class RestRouter:
    """In-process server for tests: `with RestRouter(bind, port, route) as r: ... r.queries`."""

    def __init__(self, bind, port, route):
        self.route, self.queries = route, []
        router = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's naming
                url = urlparse(self.path)
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    asked = json.loads(raw)
                except ValueError:
                    asked = {"unparsed": raw.decode(errors="replace")}
                router.queries.append({"path": url.path, **asked})
                body = router.route.encode() if url.path == "/route" else b"not found"
                self.send_response(200 if url.path == "/route" else 404)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, fmt, *args):
                print("rest_router: " + fmt % args, file=sys.stderr)

        self.server = ThreadingHTTPServer((bind, port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--bind", required=True)
    p.add_argument("--port", type=int, default=18080)
    p.add_argument("--route", required=True)
    a = p.parse_args()
    with RestRouter(a.bind, a.port, a.route) as router:
        try:
            router.thread.join()
        except KeyboardInterrupt:
            print(json.dumps(router.queries))


if __name__ == "__main__":
    main()
