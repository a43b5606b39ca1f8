"""The FastStream app around a stage: a batch subscriber on the input group, plus the maintenance loop.

FastStream reads (XREADGROUP COUNT batch_size); we take the raw entries, so its own envelope never
touches the public streams, and we ack ourselves in the commit script that publishes (AckPolicy.MANUAL).
Every worker also serves /healthz, /readyz and /metrics (health.py) on NEWSFLOW_METRICS_PORT.
"""

from __future__ import annotations

import asyncio
import gc
from typing import Any, Awaitable, Callable, Mapping, Sequence
from urllib.parse import urlsplit

import redis.asyncio as aredis
from faststream import FastStream
from faststream.message import StreamMessage
from faststream.middlewares import AckPolicy
from faststream.redis import RedisBroker, StreamSub

from shared.logging import get_logger
from shared.settings import Settings

from .entries import Entry
from .health import Check, Health, ProbeServer, ReadLoop
from .metrics import StreamGauges
from .packing import use_fast_packing
from .reclaim import maintenance_loop
from .runner import StageRunner, StageSpec

log = get_logger("newsflow.app")


class _Subscription(StreamSub):
    """FastStream's StreamSub without the deep copy FastStream makes of it on every read, to put the broker's
    prefix before the stream's name: newsflow's brokers have none (NEWSFLOW_STREAM_PREFIX is in the names). The
    copy was 2% of a relay stage's CPU."""

    def add_prefix(self, prefix: str) -> Any:
        return self if not prefix else super().add_prefix(prefix)


async def _raw_parser(msg: Any) -> StreamMessage[Any]:
    # The entries are kept as bytes: a body that is not UTF-8 or not JSON must reach the DLQ, not crash a parser.
    return StreamMessage(raw_message=msg, body=b"")


async def _raw_decoder(msg: StreamMessage[Any]) -> Any:
    return msg.raw_message


def with_credentials(url: str, credentials: Mapping[str, str] | None = None) -> tuple[str, dict[str, str]]:
    """The URL and the client keyword arguments to connect with `credentials` (Settings.redis_credentials(): a
    stage's own ACL user). Given, they replace the URL's user and password as a whole; since redis-py lets a
    URL's credentials win over keyword arguments, those are cut from the URL."""
    if not credentials:
        return url, {}
    netloc = urlsplit(url).netloc
    if "@" in netloc:
        url = url.replace(netloc, netloc.rpartition("@")[2], 1)
    return url, dict(credentials)


def redis_client(url: str, credentials: Mapping[str, str] | None = None) -> aredis.Redis:
    url, auth = with_credentials(url, credentials)
    if url.startswith("unix://"):
        client = aredis.Redis.from_url(url, socket_connect_timeout=5, health_check_interval=15, **auth)
    else:
        client = aredis.Redis.from_url(url, socket_connect_timeout=5, socket_keepalive=True, health_check_interval=15, **auth)
    return use_fast_packing(client)


def build_app(
    spec: StageSpec,
    settings: Settings,
    redis_url: str,
    *,
    on_startup: Callable[[], Any] | None = None,
    on_shutdown: Callable[[], Any] | None = None,
    description: str = "",
    background: Sequence[Callable[[], Awaitable[None]]] = (),
    ready_checks: Mapping[str, Check] | None = None,
) -> tuple[FastStream, StageRunner]:
    """`background`: coroutine factories (e.g. the fetcher's scheduler) started after startup, cancelled at shutdown.
    `ready_checks`: more dependencies /readyz must reach besides Redis, e.g. {"database": repo.ping}."""
    consumer = settings.consumer_name()
    credentials = settings.redis_credentials()
    runner = StageRunner(spec, settings, redis_client(redis_url, credentials), consumer)
    broker_url, auth = with_credentials(redis_url, credentials)
    broker = RedisBroker(broker_url, logger=None, graceful_timeout=settings.shutdown_timeout_s, **auth)  # type: ignore[arg-type]

    subscriber = broker.subscriber(
        stream=_Subscription(
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
    # A healthy read loop returns every block_ms; FastStream waits 5 s after a failed read before the next one.
    read_loop = ReadLoop(stale_after_s=max(10.0, 3 * settings.block_ms / 1000))
    read_loop.watch(subscriber)

    @subscriber
    async def handle(raw: Any) -> None:
        entries = [Entry(i.decode(), f) for i, f in zip(raw["message_ids"], raw["data"])]
        with read_loop.batch():
            try:
                await runner.handle_batch(entries)
            except Exception:
                # The batch stays pending and is reclaimed; say so, since FastStream's own logger is off.
                log.exception("batch_failed_left_pending", count=len(entries), first=entries[0].id if entries else None)

    topology = runner.topology
    gauges = StreamGauges(
        runner.redis,
        lengths=[s for s in (runner.input_stream, runner.output_stream, topology.dlq) if s],
        # The output's groups too (the next stage's, or downstream teams' on enriched): a stage that is down
        # everywhere exports nothing, so its lag must show from the stage that feeds it.
        groups_of=[s for s in (runner.input_stream, runner.output_stream) if s],
    )
    health = Health(spec.name, runner.redis, read_loop, runner.metrics, gauges, runner.stopping, ready_checks,
                    dependency_ok=lambda: runner.dependency_ok)
    probes: list[ProbeServer] = []

    tasks: list[asyncio.Task[None]] = []
    app = FastStream(broker, logger=None)

    @app.on_startup
    async def _start() -> None:
        # First, so /healthz answers (and /readyz says why not) while we wait for Redis or the database.
        if settings.metrics_port:
            server = ProbeServer(health, asyncio.get_running_loop())
            if server.start(settings.metrics_host, settings.metrics_port):
                probes.append(server)
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
        for server in probes:
            await asyncio.to_thread(server.stop)
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


def run_worker(app: FastStream) -> None:
    """Run a worker's app until it is stopped, with the garbage collector set for its steady state before it
    starts reading (the last start-up hook: FastStream runs them before the broker starts consuming)."""
    app.on_startup(settle_heap)
    asyncio.run(app.run())


# Young collections wait for this many new container objects instead of Python's 700: more than a batch of 100
# articles keeps alive at once, so a batch's objects die before any collection instead of being promoted and
# scanned again and again by full collections.
GC_YOUNG_THRESHOLD = 10_000


async def settle_heap() -> None:
    """What a worker has loaded by the time it starts reading (modules, models, the cleaner's tables: about 80,000 objects)
    lives as long as the process: it is frozen out of the collector's way, and young collections are made rarer
    (GC_YOUNG_THRESHOLD). Before, collections cost a relay stage 4 us an article, 7% of its CPU, mostly full
    collections of the whole heap, each a pause of about 50 ms (measured with gc.callbacks)."""
    gc.collect()  # what is garbage now is not frozen with the rest
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, middle, old)


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
