"""A local HTTP server for fetcher tests: stdlib only, on 127.0.0.1, routes set by the test, every request logged."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

Response = tuple[int, dict[str, str], bytes]
Handler = Callable[["Request"], Response]


@dataclass
class Request:
    path: str
    headers: dict[str, str]
    at: float = field(default_factory=time.monotonic)
    status: int = 0


def page(body: str | bytes, status: int = 200, content_type: str = "text/html; charset=utf-8", **headers: str) -> Handler:
    data = body.encode("utf-8") if isinstance(body, str) else body

    def handle(_req: Request) -> Response:
        return status, {"Content-Type": content_type, **{k.replace("_", "-"): v for k, v in headers.items()}}, data

    return handle


def conditional(body: str | bytes, etag: str, last_modified: str = "Wed, 01 Jan 2025 00:00:00 GMT",
                content_type: str = "text/html; charset=utf-8") -> Handler:
    """200 with validators, or 304 when the request carries a matching If-None-Match or If-Modified-Since."""
    data = body.encode("utf-8") if isinstance(body, str) else body

    def handle(req: Request) -> Response:
        if req.headers.get("if-none-match") == etag or req.headers.get("if-modified-since") == last_modified:
            return 304, {"ETag": etag}, b""
        return 200, {"Content-Type": content_type, "ETag": etag, "Last-Modified": last_modified}, data

    return handle


def sequence(*handlers: Handler) -> Handler:
    """The first request gets the first handler, and so on; the last one answers every request after."""
    calls = {"n": 0}
    lock = threading.Lock()

    def handle(req: Request) -> Response:
        with lock:
            i = min(calls["n"], len(handlers) - 1)
            calls["n"] += 1
        return handlers[i](req)

    return handle


class LocalServer:
    def __init__(self) -> None:
        self.routes: dict[str, Handler] = {}
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        outer = self

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_args: Any) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802
                req = Request(self.path, {k.lower(): v for k, v in self.headers.items()})
                handler = outer.routes.get(self.path) or outer.routes.get(self.path.split("?", 1)[0])
                status, headers, body = handler(req) if handler else (404, {"Content-Type": "text/plain"}, b"not found")
                req.status = status
                with outer._lock:
                    outer.requests.append(req)
                self.send_response(status)
                stream = headers.pop("X-No-Length", None)
                for k, v in headers.items():
                    self.send_header(k, v)
                if stream:  # no Content-Length: the body ends when the connection closes
                    self.send_header("Connection", "close")
                    self.end_headers()
                    self.wfile.write(body)
                    self.close_connection = True
                    return
                if status not in (204, 304):
                    self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if status not in (204, 304):
                    self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def hits(self, path: str) -> list[Request]:
        with self._lock:
            return [r for r in self.requests if r.path == path]

    def __enter__(self) -> "LocalServer":
        self.thread.start()
        return self

    def __exit__(self, *_exc: Any) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
