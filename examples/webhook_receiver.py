#!/usr/bin/env python3
"""A receiver for newsflow's webhooks, with nothing but the standard library (no newsflow import).

    WEBHOOK_SECRET=the-shared-secret python examples/webhook_receiver.py --port 8090

Point `newsflow worker webhook` at it (NEWSFLOW_WEBHOOK_URLS=http://127.0.0.1:8090/newsflow, the same secret in
NEWSFLOW_WEBHOOK_SECRET). Each request is one enriched article, the JSON body as storage announced it, with:

- `X-Newsflow-Signature: t=<unix time>,v1=<hex>`: HMAC-SHA256 over `"<t>.<body>"` with the shared secret (one
  `v1=` per secret newsflow signs with, while secrets are being rotated). `verify_signature` below checks it and
  refuses a request signed more than `--tolerance-s` ago, so a captured request cannot be replayed later.
- `Idempotency-Key`: the same on every retry of one announcement. Delivery is at least once (a receiver that
  timed out, a worker that crashed after your 200), so drop a key you have seen.
- `X-Newsflow-Article-Id`: the article's id. An article whose content changes is announced again under the same
  id (with a new Idempotency-Key): keep one copy per id (upsert).

It answers 200 to an article it took (or had already taken), 401 to a bad or stale signature and 400 to a body
that is not an article: newsflow retries 408, 429 and 5xx answers (and timeouts) with backoff, and dead-letters
the article on any other 4xx. It prints one JSON line per new article on stdout. Keep the handler fast: newsflow
waits for your answer (NEWSFLOW_WEBHOOK_TIMEOUT_S), so queue slow work and answer first.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import sys
import threading
import time
from collections import OrderedDict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MAX_BODY = 16 * 1024 * 1024


def verify_signature(secret: str, header: str | None, body: bytes, tolerance_s: float = 300, now: float | None = None) -> bool:
    """True when `header` (X-Newsflow-Signature) signs `body` with `secret` at a time within `tolerance_s` of now."""
    if not header:
        return False
    timestamp, signatures = None, []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t":
            timestamp = value
        elif key == "v1":
            signatures.append(value)
    if timestamp is None or not timestamp.isdigit() or not signatures:
        return False
    if abs((time.time() if now is None else now) - int(timestamp)) > tolerance_s:
        return False  # too old (a replay) or from a clock far off
    expected = hmac.new(secret.encode("utf-8"), f"{timestamp}.".encode("ascii") + body, hashlib.sha256).hexdigest()
    return any(hmac.compare_digest(expected, s) for s in signatures)


class Seen:
    """The Idempotency-Keys already taken, the newest `size` of them (in production: a unique key in your database)."""

    def __init__(self, size: int = 100_000) -> None:
        self.keys: OrderedDict[str, None] = OrderedDict()
        self.size = size
        self.lock = threading.Lock()

    def add(self, key: str) -> bool:
        """Record `key`; False when it was there already."""
        with self.lock:
            if key in self.keys:
                return False
            self.keys[key] = None
            if len(self.keys) > self.size:
                self.keys.popitem(last=False)
            return True


def handle(article: dict) -> None:
    """Your work goes here. This one prints the article as one JSON line."""
    print(json.dumps({"id": article["id"], "title": article.get("title"), "topics": [t.get("label") for t in article.get("topics") or []]}), flush=True)


def make_handler(secret: str, tolerance_s: float, seen: Seen) -> type[BaseHTTPRequestHandler]:
    class Receiver(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *_args: object) -> None:
            pass

        def answer(self, status: int, text: str) -> None:
            data = (text + "\n").encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:  # noqa: N802
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                self.close_connection = True
                return self.answer(413, "too large")
            body = self.rfile.read(length)
            if not verify_signature(secret, self.headers.get("X-Newsflow-Signature"), body, tolerance_s):
                return self.answer(401, "bad or stale signature")
            try:
                article = json.loads(body)
                assert isinstance(article, dict) and isinstance(article.get("id"), str)
            except (ValueError, AssertionError):
                return self.answer(400, "not an article")
            key = self.headers.get("Idempotency-Key") or article["id"]
            if seen.add(key):
                handle(article)
            self.answer(200, "ok")

    return Receiver


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8090)
    p.add_argument("--tolerance-s", type=float, default=300, help="refuse signatures older (or newer) than this")
    args = p.parse_args(argv)
    secret = os.environ.get("WEBHOOK_SECRET", "")
    if not secret:
        print("set WEBHOOK_SECRET to the secret newsflow signs with (NEWSFLOW_WEBHOOK_SECRET)", file=sys.stderr)
        return 2
    server = ThreadingHTTPServer((args.host, args.port), make_handler(secret, args.tolerance_s, Seen()))
    print(json.dumps({"event": "listening", "port": server.server_address[1]}), file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
