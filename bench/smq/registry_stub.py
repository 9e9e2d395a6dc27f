#!/usr/bin/env python3
"""An empty Confluent-style schema registry, for `weed mq.kafka.gateway -schema-registry-url=...`.

    registry_stub.py --listen 127.0.0.1:PORT

The gateway requires -schema-registry-url. When nothing answers there, it retries its health check
(GET /subjects) on every produced record and every fetch, one refused TCP connection each time. This stub
passes the health check and knows no subject (404, which the gateway caches), so the gateway runs as it
would next to a real, empty registry. Standard library only.
"""

import argparse
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def answer(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/vnd.schemaregistry.v1+json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        path = self.path.split("?", 1)[0].rstrip("/")
        if path in ("", "/subjects", "/schemas/types"):
            self.answer(200, [] if path != "/schemas/types" else ["AVRO", "JSON", "PROTOBUF"])
        elif path == "/config":
            self.answer(200, {"compatibilityLevel": "BACKWARD"})
        else:
            self.answer(404, {"error_code": 40401, "message": "Subject not found."})

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        self.answer(404, {"error_code": 40401, "message": "Subject not found."})

    def log_message(self, fmt, *args):
        pass


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--listen", required=True, help="host:port")
    args = ap.parse_args()
    host, port = args.listen.rsplit(":", 1)
    server = ThreadingHTTPServer((host, int(port)), Handler)
    print(f"registry_stub: listening on {args.listen}", file=sys.stderr, flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
