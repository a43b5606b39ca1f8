"""The FastStream app around a stage: a batch subscriber on the input group, plus the maintenance loop.

FastStream reads (XREADGROUP COUNT batch_size); we take the raw entries, so its own envelope never
touches the public streams, and we ack ourselves in the same MULTI/EXEC that publishes (AckPolicy.MANUAL).
"""

from __future__ import annotations

import asyncio
from typing import Any, Awaitable, Callable, Sequence

import redis.asyncio as aredis
from faststream import FastStream
from faststream.message import StreamMessage
from faststream.middlewares import AckPolicy
from faststream.redis import RedisBroker, StreamSub

from shared.logging import get_logger
from shared.settings import Settings

from .entries import Entry
from .reclaim import maintenance_loop
from .runner import StageRunner, StageSpec

log = get_logger("newsflow.app")


async def _raw_parser(msg: Any) -> StreamMessage[Any]:
    # The entries are kept as bytes: a body that is not UTF-8 or not JSON must reach the DLQ, not crash a parser.
    return StreamMessage(raw_message=msg, body=b"")


async def _raw_decoder(msg: StreamMessage[Any]) -> Any:
    return msg.raw_message


def redis_client(url: str) -> aredis.Redis:
    if url.startswith("unix://"):
        return aredis.Redis.from_url(url, socket_connect_timeout=5, health_check_interval=15)
    return aredis.Redis.from_url(url, socket_connect_timeout=5, socket_keepalive=True, health_check_interval=15)


def build_app(
    spec: StageSpec,
    settings: Settings,
    redis_url: str,
    *,
    on_startup: Callable[[], Any] | None = None,
    on_shutdown: Callable[[], Any] | None = None,
    description: str = "",
    background: Sequence[Callable[[], Awaitable[None]]] = (),
) -> tuple[FastStream, StageRunner]:
    """`background`: coroutine factories (e.g. the fetcher's scheduler) started after startup, cancelled at shutdown."""
    consumer = settings.consumer_name()
    runner = StageRunner(spec, settings, redis_client(redis_url), consumer)
    broker = RedisBroker(redis_url, logger=None, graceful_timeout=settings.shutdown_timeout_s)

    @broker.subscriber(
        stream=StreamSub(
            runner.input_stream,
            group=runner.group,
            consumer=consumer,
            batch=True,
            max_records=settings.batch_size,
            polling_interval=settings.block_ms,
        ),
        parser=_raw_parser,
        decoder=_raw_decoder,
        ack_policy=AckPolicy.MANUAL,
        title=f"{spec.name}:{spec.input}",
        description=description or f"The {spec.name} stage reads `{runner.input_stream}` in group `{runner.group}`.",
    )
    async def handle(raw: Any) -> None:
        entries = [Entry(i.decode(), f) for i, f in zip(raw["message_ids"], raw["data"])]
        try:
            await runner.handle_batch(entries)
        except Exception:
            # The batch stays pending and is reclaimed; say so, since FastStream's own logger is off.
            log.exception("batch_failed_left_pending", count=len(entries), first=entries[0].id if entries else None)

    tasks: list[asyncio.Task[None]] = []
    app = FastStream(broker, logger=None)

    @app.on_startup
    async def _start() -> None:
        if on_startup:
            result = on_startup()
            if asyncio.iscoroutine(result):
                await result
        await wait_until_up(runner.redis.ping, "waiting_for_redis")
        await runner.ensure_groups()

    @app.after_startup
    async def _maintain() -> None:
        tasks.append(asyncio.create_task(maintenance_loop(runner)))
        for factory in background:
            tasks.append(asyncio.create_task(factory()))
        log.info("worker_started", consumer=consumer, stream=runner.input_stream, group=runner.group)

    @app.on_shutdown
    async def _stop() -> None:
        # Runs before the broker stops: refuse new transient waits, so the in-flight batch ends quickly.
        runner.stopping.set()

    @app.after_shutdown
    async def _cleanup() -> None:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if on_shutdown:
            result = on_shutdown()
            if asyncio.iscoroutine(result):
                await result
        await runner.redis.aclose()
        log.info("worker_stopped", consumer=consumer, **runner.counters.__dict__)

    return app, runner


async def wait_until_up(call: Callable[[], Any], event: str, max_delay: float = 5.0) -> None:
    """Await `call` until it succeeds, backing off: a dependency that comes up after us is waited for, never a
    reason to crash-loop."""
    delay = 0.2
    while True:
        try:
            await call()
            return
        except Exception as exc:
            log.warning(event, error=f"{type(exc).__name__}: {exc}"[:200], retry_in_s=delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, max_delay)
