"""The one place that wires dependencies: settings -> Redis URL -> the stage's resources -> its FastStream app."""

from __future__ import annotations

import asyncio
import signal
from typing import Any, Awaitable, Callable

from faststream import FastStream

from shared import embedded
from shared.logging import get_logger
from shared.settings import Settings
from shared.topology import STAGES
from shared.transport.app import build_app, redis_client, wait_until_up
from shared.transport.runner import StageRunner

log = get_logger("newsflow.bootstrap")


def redis_url(settings: Settings, *, persistent: bool = True) -> str:
    """REDIS_URL, or the embedded server in the data directory, started if nobody has yet."""
    return settings.redis_url or embedded.ensure_running(settings.data_dir, persistent=persistent)


def build_worker(stage: str, settings: Settings, url: str) -> tuple[FastStream, StageRunner]:
    if stage == "fetcher":
        return build_fetcher(settings, url)
    if stage == "cleaner":
        from services.cleaner import app as cleaner
        from services.cleaner.dedup import ExactDuplicateIndex
        from services.cleaner.neardup import NearDuplicateIndex
        from services.cleaner.transform import clean
        from shared.contract import RawArticle

        # The first clean() builds place tables and loads the language model (~0.5 s): pay it before reading.
        clean(RawArticle(text="PARIS (AFP) -- A warm-up sentence for the cleaner."), article_id="warm-up")
        dedup_redis = redis_client(url, settings.redis_credentials())
        window, prefix = settings.dedup_window_s, settings.stream_prefix
        spec = cleaner.spec(
            ExactDuplicateIndex(dedup_redis, prefix, window),
            settings.max_body_bytes,
            NearDuplicateIndex(dedup_redis, prefix, window, settings.near_dup_threshold),
            store_raw=settings.store_raw,
        )
        return build_app(spec, settings, url, on_shutdown=dedup_redis.aclose)
    if stage == "classifier":
        from services.classifier import app as classifier
        from services.classifier.transform import load_resources

        return build_app(classifier.spec(load_resources(settings.classifier)), settings, url)
    if stage == "storage":
        from services.storage import app as storage
        from services.storage.repository import open_repository

        repo = open_repository(settings.effective_database_url(), settings.search_scope, settings.search_index)

        async def start() -> None:
            await wait_until_up(repo.connect, "waiting_for_database")
            applied = await repo.migrate()
            if applied:
                log.info("migrations_applied", migrations=applied)

        return build_app(storage.spec(repo, store_raw=settings.store_raw), settings, url, on_startup=start, on_shutdown=repo.close,
                         ready_checks={"database": repo.ping}, background=storage.background(repo, settings))
    if stage == "webhook":
        return build_webhook(settings, url)
    raise ValueError(f"unknown stage {stage!r}; choose one of {', '.join((*STAGES, 'webhook'))}")


def build_webhook(settings: Settings, url: str) -> tuple[FastStream, StageRunner]:
    """The webhook worker: a stage on `enriched` with no output (services/webhook). Refuses to start without
    URLs or a signing secret."""
    from services.webhook import app as webhook
    from services.webhook.delivery import Deliverer, WebhookConfig, WebhookConfigError, display
    from shared.topology import Topology

    try:
        config = WebhookConfig.from_settings(settings)
    except WebhookConfigError as exc:
        raise SystemExit(f"newsflow webhook: {exc}") from None
    log.info("webhook_targets", urls=[display(u) for u in config.urls])
    deliverer = Deliverer(config, Topology(settings.stream_prefix).enriched)
    return build_app(webhook.spec(deliverer), settings, url, on_shutdown=deliverer.aclose)


def build_fetcher(settings: Settings, url: str) -> tuple[FastStream, StageRunner]:
    from services.fetcher import app as fetcher
    from services.fetcher.http import FetchConfig, PoliteFetcher
    from services.fetcher.scheduler import Scheduler
    from services.fetcher.sources import load_sources
    from services.fetcher.urls import SeenUrls

    # Read the sources first: a broken sources file stops the worker at once, not at the first poll.
    sources = load_sources(settings.sources_file, settings.source_poll_s) if settings.sources_file else []
    fetch_redis = redis_client(url, settings.redis_credentials())
    http = PoliteFetcher(fetch_redis, settings.stream_prefix, FetchConfig.from_settings(settings))
    seen = SeenUrls(fetch_redis, settings.stream_prefix, settings.fetch_seen_ttl_s)
    background = []
    if sources:
        tick = min(1.0, min(s.interval_s for s in sources) / 2)
        background.append(Scheduler(fetch_redis, settings, sources, http, seen, tick_s=tick).run)

    async def close() -> None:
        await http.aclose()
        await fetch_redis.aclose()

    return build_app(fetcher.spec(http, seen, settings), settings, url, on_shutdown=close, background=background)


def run_gateway(settings: Settings, url: str) -> int:
    """The HTTP push gateway under uvicorn, until SIGTERM/SIGINT (see serve_http)."""
    from services.gateway.app import create_app
    from services.gateway.validation import GatewayConfigError

    redis = redis_client(url, settings.redis_credentials())
    try:
        app = create_app(settings, redis)
    except GatewayConfigError as exc:
        raise SystemExit(f"newsflow gateway: {exc}") from None
    return serve_http("gateway", app, settings.gateway_host, settings.gateway_port, settings, close=redis.aclose)


def run_api(settings: Settings, url: str) -> int:
    """The read-only HTTP query API under uvicorn, like the gateway; on shutdown it also ends every open event
    stream at once (they never end by themselves)."""
    from services.api.app import ApiConfigError, create_app
    from services.api.database import Database

    redis = redis_client(url, settings.redis_credentials())
    database = Database.open(settings.effective_database_url())
    try:
        app = create_app(settings, redis, database)
    except ApiConfigError as exc:
        raise SystemExit(f"newsflow api: {exc}") from None

    async def close() -> None:
        await database.close()
        await redis.aclose()

    return serve_http("api", app, settings.api_host, settings.api_port, settings, close=close,
                      stopping=app.state.stopping, warm_up=database.warm_up)


def serve_http(
    name: str,
    app: Any,
    host: str,
    port: int,
    settings: Settings,
    *,
    close: Callable[[], Awaitable[None]],
    stopping: asyncio.Event | None = None,
    warm_up: Callable[[], Awaitable[None]] | None = None,
) -> int:
    """Serve an ASGI app under uvicorn until SIGTERM/SIGINT: stop accepting, finish in-flight requests within
    NEWSFLOW_SHUTDOWN_TIMEOUT_S, then `close`. `stopping` is set as shutdown begins; `warm_up` runs beside the
    server. Exits 0 after a graceful stop."""
    import uvicorn

    class Server(uvicorn.Server):
        async def shutdown(self, sockets: Any = None) -> None:
            if stopping is not None:
                stopping.set()
            await super().shutdown(sockets)

    config = uvicorn.Config(
        app, host=host, port=port, log_config=None, access_log=False,
        server_header=False, timeout_graceful_shutdown=int(settings.shutdown_timeout_s), lifespan="off",
    )
    server = Server(config)
    log.info(f"{name}_starting", host=host, port=port, stream_prefix=settings.stream_prefix)

    # uvicorn re-raises the signal it stopped on once it has drained; let that find a handler that
    # does nothing, so a graceful stop exits 0 (and closes its connections) instead of dying of the signal.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: None)

    async def serve() -> None:
        task = asyncio.create_task(warm_up()) if warm_up else None
        try:
            await server.serve()
        finally:
            if task is not None:
                task.cancel()
            await close()

    asyncio.run(serve())
    log.info(f"{name}_stopped")
    return 0 if server.started else 1
