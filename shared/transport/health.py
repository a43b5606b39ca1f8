"""Liveness, readiness and /metrics of a stage worker, on NEWSFLOW_METRICS_HOST:NEWSFLOW_METRICS_PORT.

The HTTP server is the standard library's, in a daemon thread, with prometheus_client's MetricsHandler for
/metrics. Every answer that needs the worker's state is computed by a coroutine sent to the worker's event loop
with a deadline: a loop that does not answer in time (blocked by a runaway article, or dead) makes /healthz 503
instead of a hung probe, while /metrics still answers.

  /healthz  200 while the process and its event loop answer
  /readyz   200 only while Redis answers a PING, every extra check passes (storage: the database), the
            subscriber runs and its read loop is recent (or inside a batch); else 503 with {"reason": ...}
  /metrics  Prometheus text format; the stream gauges and newsflow_worker_ready are refreshed on each scrape
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import threading
import time
from contextlib import contextmanager
from http.server import ThreadingHTTPServer
from typing import Any, Awaitable, Callable, Iterator, Mapping
from urllib.parse import urlsplit

from prometheus_client import MetricsHandler

from shared.logging import get_logger

from .metrics import StageMetrics, StreamGauges, refresh_or_forget

log = get_logger("newsflow.health")

Check = Callable[[], Awaitable[Any]]

CHECK_TIMEOUT_S = 1.5  # one dependency check (a PING, a SELECT 1)
LOOP_TIMEOUT_S = 3.0  # the event loop must answer a probe within this; keep probes' timeoutSeconds above it


class ReadLoop:
    """Watches the FastStream subscriber's read loop: when its last XREADGROUP returned, and whether a batch it
    read is being handled right now."""

    def __init__(self, stale_after_s: float) -> None:
        self.stale_after_s = stale_after_s
        self.subscriber: Any = None
        self.last_read: float | None = None
        self.busy = 0
        self.watching = False

    def watch(self, subscriber: Any) -> None:
        self.subscriber = subscriber
        # FastStream (pinned in pyproject) has no public hook per read, so wrap the subscriber's own read call.
        original = getattr(subscriber, "_xreadgroup", None)
        if original is None:
            log.warning("read_loop_probe_unavailable", detail="readiness checks only that the subscriber runs")
            return

        async def timed_read(*args: Any, **kwargs: Any) -> Any:
            reply = await original(*args, **kwargs)
            self.last_read = time.monotonic()
            return reply

        subscriber._xreadgroup = timed_read
        self.watching = True

    @contextmanager
    def batch(self) -> Iterator[None]:
        self.busy += 1
        try:
            yield
        finally:
            self.busy -= 1
            self.last_read = time.monotonic()  # the loop goes straight back to reading

    def problem(self) -> str | None:
        if self.subscriber is None or not getattr(self.subscriber, "running", False):
            return "the stream subscriber is not running"
        if self.busy or not self.watching:
            return None
        if self.last_read is None:
            return "no read from the stream yet"
        age = time.monotonic() - self.last_read
        if age > self.stale_after_s:
            return f"the last read from the stream returned {age:.1f}s ago"
        return None


class Health:
    """The worker's answers, computed on its event loop."""

    def __init__(
        self,
        stage: str,
        redis: Any,
        read_loop: ReadLoop,
        metrics: StageMetrics,
        gauges: StreamGauges,
        stopping: asyncio.Event,
        checks: Mapping[str, Check] | None = None,
        dependency_ok: Callable[[], bool] = lambda: True,
    ) -> None:
        self.stage = stage
        self.read_loop = read_loop
        self.metrics = metrics
        self.gauges = gauges
        self.stopping = stopping
        self.checks: dict[str, Check] = {"redis": redis.ping, **(checks or {})}
        self.dependency_ok = dependency_ok

    async def alive(self) -> dict[str, Any]:
        return {"status": "ok", "stage": self.stage}

    async def readiness(self) -> tuple[bool, dict[str, Any]]:
        results = await asyncio.gather(*(_check(fn) for fn in self.checks.values()))
        checks = {name: error or "ok" for name, error in zip(self.checks, results)}
        consuming = self.read_loop.problem()
        if consuming is None and not self.dependency_ok():
            consuming = "the stage is waiting out a dependency failure (see the dependency_unavailable log lines)"
        checks["consuming"] = consuming or "ok"
        if self.stopping.is_set():
            checks["shutdown"] = "the worker is shutting down"
        reasons = [f"{name}: {state}" for name, state in checks.items() if state != "ok"]
        ready = not reasons
        self.metrics.ready.set(1 if ready else 0)
        body: dict[str, Any] = {"status": "ready" if ready else "unavailable", "stage": self.stage, "checks": checks}
        if reasons:
            body["reason"] = "; ".join(reasons)
        return ready, body

    async def before_scrape(self) -> None:
        await asyncio.gather(self.readiness(), refresh_or_forget(self.gauges, CHECK_TIMEOUT_S))


async def _check(fn: Check) -> str | None:
    try:
        await asyncio.wait_for(fn(), CHECK_TIMEOUT_S)
        return None
    except asyncio.TimeoutError:
        return f"no answer within {CHECK_TIMEOUT_S}s"
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"[:200]


class _Handler(MetricsHandler):
    server: _ProbeHTTPServer

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        try:
            if path == "/healthz":
                self._answer(*self.server.probes.healthz())
            elif path == "/readyz":
                self._answer(*self.server.probes.readyz())
            elif path == "/metrics":
                self.server.probes.before_scrape()
                super().do_GET()
            else:
                self._answer(404, {"error": f"no such path {path}; try /healthz, /readyz or /metrics"})
        except Exception as exc:  # a probe answers, whatever happened
            log.exception("probe_failed", path=path)
            self._answer(500, {"status": "error", "reason": f"{type(exc).__name__}: {exc}"[:200]})

    def _answer(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        """Probes every few seconds would drown the logs."""


class _ProbeHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    probes: ProbeServer


class ProbeServer:
    """The HTTP side: runs in its own thread, asks the event loop for each answer."""

    def __init__(self, health: Health, loop: asyncio.AbstractEventLoop) -> None:
        self.health = health
        self.loop = loop
        self.httpd: _ProbeHTTPServer | None = None
        self.thread: threading.Thread | None = None

    def start(self, host: str, port: int) -> bool:
        """Bind and serve; False (logged) when the port cannot be bound: the worker goes on without probes,
        as a second worker started by hand on the same machine would."""
        try:
            httpd = _ProbeHTTPServer((host, port), _Handler)
        except OSError as exc:
            log.warning("metrics_server_failed", host=host, port=port, error=f"{type(exc).__name__}: {exc}"[:200],
                      hint="set NEWSFLOW_METRICS_PORT to a free port (0 turns the server off)")
            return False
        httpd.probes = self
        self.httpd = httpd
        self.thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.2},
                                       name="newsflow-probes", daemon=True)
        self.thread.start()
        log.info("metrics_server_started", host=host, port=self.port, paths=["/healthz", "/readyz", "/metrics"])
        return True

    @property
    def port(self) -> int | None:
        return self.httpd.server_address[1] if self.httpd else None

    def stop(self) -> None:
        if self.httpd is None:
            return
        self.httpd.shutdown()
        self.httpd.server_close()
        self.httpd = None

    def _on_loop(self, make: Callable[[], Awaitable[Any]]) -> Any:
        future = asyncio.run_coroutine_threadsafe(make(), self.loop)
        try:
            return future.result(LOOP_TIMEOUT_S)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise

    def healthz(self) -> tuple[int, dict[str, Any]]:
        try:
            return 200, self._on_loop(self.health.alive)
        except (concurrent.futures.TimeoutError, RuntimeError) as exc:  # RuntimeError: the loop is closed
            return 503, {"status": "unavailable", "stage": self.health.stage, "reason": _loop_reason(exc)}

    def readyz(self) -> tuple[int, dict[str, Any]]:
        try:
            ready, body = self._on_loop(self.health.readiness)
        except (concurrent.futures.TimeoutError, RuntimeError) as exc:
            self.health.metrics.ready.set(0)
            return 503, {"status": "unavailable", "stage": self.health.stage, "reason": _loop_reason(exc)}
        return (200 if ready else 503), body

    def before_scrape(self) -> None:
        try:
            self._on_loop(self.health.before_scrape)
        except (concurrent.futures.TimeoutError, RuntimeError):
            self.health.metrics.ready.set(0)  # serve what we have: the counters are still right


def _loop_reason(exc: BaseException) -> str:
    if isinstance(exc, concurrent.futures.TimeoutError):
        return f"the event loop did not answer within {LOOP_TIMEOUT_S}s"
    return f"the event loop is not running: {exc}"[:200]
