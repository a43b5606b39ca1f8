"""Stage workers as real OS processes, and polling helpers (deadlines only, never timed assertions)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, AsyncIterator, Callable

import redis

ROOT = Path(__file__).resolve().parents[1]

# The "billion laughs" prologue: &lol9; expands to 10**9 "lol"s. The document itself follows it.
LAUGHS_PROLOGUE = """<?xml version="1.0"?>
<!DOCTYPE rss [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
"""


class Workers:
    def __init__(self, env: dict[str, str], logdir: Path) -> None:
        self.env = env
        self.logdir = logdir
        self.procs: list[tuple[str, str, subprocess.Popen[bytes]]] = []

    def start(self, stage: str, consumer: str | None = None, **extra: str) -> subprocess.Popen[bytes]:
        consumer = consumer or f"{stage}-{len(self.procs)}"
        env = {**self.env, "NEWSFLOW_CONSUMER": consumer, **extra}
        log = open(self.logdir / f"{consumer}.log", "ab")
        proc = subprocess.Popen([sys.executable, "-m", "services.cli", "worker", stage], env=env, stdout=log, stderr=log)
        self.procs.append((stage, consumer, proc))
        return proc

    def alive(self) -> list[str]:
        return [c for _, c, p in self.procs if p.poll() is None]

    def stop(self, timeout: float = 30) -> None:
        for _, _, p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for _, _, p in self.procs:
            try:
                p.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

    def logs(self) -> str:
        return "\n".join(f"--- {f.name}\n{f.read_text(errors='replace')[-4000:]}" for f in sorted(self.logdir.glob("*.log")))


def wait_until(predicate: Callable[[], Any], timeout: float, interval: float = 0.2, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what} after {timeout}s")
        time.sleep(interval)


def start_http_worker(workers: Workers, stage: str, base: str, what: str) -> subprocess.Popen[bytes]:
    """Start `stage` and wait until its /readyz at `base` answers 200 (failing at once if the process dies)."""
    import httpx

    proc = workers.start(stage)

    def ready() -> bool:
        assert proc.poll() is None, workers.logs()
        try:
            return httpx.get(f"{base}/readyz", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    wait_until(ready, timeout=60, what=what)
    return proc


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    """SIGTERM `proc` and wait for it; kill it if it is still running after `timeout` seconds."""
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def read_bodies(r: redis.Redis, stream: str) -> list[dict[str, Any]]:
    out = []
    last = "-"
    while True:
        batch = r.xrange(stream, min=last, count=1000)
        if last != "-":
            batch = batch[1:]
        if not batch:
            return out
        for entry_id, fields in batch:
            out.append(json.loads(fields[b"body"]))
        last = batch[-1][0].decode()


def push(r: redis.Redis, stream: str, bodies: list[Any]) -> None:
    with r.pipeline(transaction=False) as pipe:
        for b in bodies:
            pipe.xadd(stream, {"body": b if isinstance(b, (str, bytes)) else json.dumps(b)})
        pipe.execute()


def everything_in_redis(r: redis.Redis, prefix: str) -> str:
    """Every value under the test's prefix, as one string: streams, hashes, strings."""
    out = []
    for key in r.scan_iter(match=f"{prefix}:*", count=1000):
        kind = r.type(key)
        if kind == b"stream":
            out += [repr(fields) for _, fields in r.xrange(key)]
        elif kind == b"hash":
            out.append(repr(r.hgetall(key)))
        elif kind == b"string":
            out.append(repr(r.get(key)))
    return "\n".join(out)


@asynccontextmanager
async def polite_fetcher(redis_url: str, prefix: str, **config: Any) -> AsyncIterator[Any]:
    """A PoliteFetcher with FetchConfig(**config) on a Redis client of its own, both closed afterwards."""
    import redis.asyncio as aredis

    from services.fetcher.http import FetchConfig, PoliteFetcher

    client = aredis.Redis.from_url(redis_url)
    f = PoliteFetcher(client, prefix, FetchConfig(**config))
    try:
        yield f
    finally:
        await f.aclose()
        await client.aclose()


def acl_tool() -> Any:
    """deploy/redis/acl.py, loaded as a module."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("newsflow_acl_tool", ROOT / "deploy" / "redis" / "acl.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Proxy:
    def __init__(self, target_port: int, target_host: str = "127.0.0.1") -> None:
        self.port = free_port()
        self.target = (target_host, target_port)
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        script = Path(__file__).with_name("tcp_proxy.py")
        self.proc = subprocess.Popen([sys.executable, str(script), str(self.port), self.target[0], str(self.target[1])], stdout=subprocess.PIPE)
        assert self.proc.stdout is not None
        self.proc.stdout.readline()

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def pg_value(url: str, sql: str) -> Any:
    """The first value of the first row of `sql`, over a connection of its own to the PostgreSQL at `url`."""
    import asyncio

    import asyncpg

    async def run() -> Any:
        conn = await asyncpg.connect(url)
        try:
            return await conn.fetchval(sql)
        finally:
            await conn.close()

    return asyncio.run(run())


def proxied_database(pg_url: str) -> tuple[Proxy, str]:
    """A started TCP proxy to the local PostgreSQL, and `pg_url` pointed through it (kill the proxy to cut it)."""
    proxy = Proxy(5432)
    proxy.start()
    return proxy, pg_url.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")


class RedisServer:
    """A redis-server of the test's own, with AOF, that the test can stop and start again on the same port."""

    def __init__(self, folder: Path) -> None:
        import shutil

        from shared.embedded import server_binary

        self.binary = shutil.which("redis-server") or server_binary()
        self.folder = folder
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        for _ in range(5):
            subprocess.run([self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.folder),
                            "--appendonly", "yes", "--appendfsync", "always", "--save", "", "--daemonize", "yes",
                            "--pidfile", str(self.folder / "redis.pid"), "--logfile", str(self.folder / "redis.log")], check=True)
            try:
                wait_until(self._ours, timeout=10, what="redis to start")
                return
            except AssertionError:
                # The port was taken between choosing and binding it: try another one.
                self.port = free_port()
                self.url = f"redis://127.0.0.1:{self.port}/0"
        raise AssertionError(f"could not start redis-server; see {self.folder / 'redis.log'}")

    def _ours(self) -> bool:
        """Answering, and really our server (its dir is our folder), not something else on a reused port."""
        try:
            got = redis.Redis(port=self.port, socket_timeout=1).config_get("dir").get("dir")
            return got == str(self.folder)
        except (redis.RedisError, OSError):
            return False

    def _ping(self) -> bool:
        try:
            return bool(redis.Redis(port=self.port, socket_timeout=1).ping())
        except (redis.RedisError, OSError):
            return False

    def stop(self) -> None:
        try:
            redis.Redis(port=self.port).shutdown()
        except (redis.ConnectionError, redis.ResponseError):
            pass
        wait_until(lambda: not self._ping(), timeout=20, what="redis to stop")
