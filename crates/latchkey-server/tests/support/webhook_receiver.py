"""A webhook receiver for the tests: an HTTP server that checks each delivery's
signature with the `standardwebhooks` package (an implementation independent of
Latchkey's) against the secrets listed in a file (one a line, re-read at every
request), answers 204 when one verifies and 400 when none does (or 503 for the first
--fail-first deliveries, to make the sender retry), and appends one JSON line per
delivery to --log. Prints "READY <port>" once listening."""

import argparse
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

parser = argparse.ArgumentParser()
parser.add_argument("--port", type=int, default=0)
parser.add_argument("--secrets", required=True)
parser.add_argument("--log", required=True)
parser.add_argument("--fail-first", type=int, default=0)
args = parser.parse_args()

lock = threading.Lock()
failures_left = [args.fail_first]


def secrets():
    try:
        with open(args.secrets) as f:
            return [line.strip() for line in f if line.strip()]
    except FileNotFoundError:
        return []


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        headers = {k.lower(): v for k, v in self.headers.items()}
        verified_with = None
        for index, secret in enumerate(secrets()):
            try:
                Webhook(secret).verify(body, headers)
                verified_with = index
                break
            except WebhookVerificationError:
                continue
        with lock:
            if failures_left[0] > 0:
                failures_left[0] -= 1
                status = 503
            else:
                status = 204 if verified_with is not None else 400
            entry = {
                "path": self.path,
                "id": headers.get("webhook-id"),
                "timestamp": headers.get("webhook-timestamp"),
                "signatures": len(headers.get("webhook-signature", "").split()),
                "verified": verified_with is not None,
                "verified_with": verified_with,
                "status": status,
                "body": json.loads(body) if body else None,
            }
            with open(args.log, "a") as log:
                log.write(json.dumps(entry) + "\n")
        self.send_response(status)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *_):
        pass


server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
print(f"READY {server.server_address[1]}", flush=True)
server.serve_forever()
