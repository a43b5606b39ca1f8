"""The one place that wires dependencies: settings -> Redis URL -> the stage's resources -> its FastStream app."""

from __future__ import annotations

import asyncio

from faststream import FastStream

from shared import embedded
from shared.logging import get_logger
from shared.settings import Settings
from shared.transport.app import build_app, redis_client
from shared.transport.runner import StageRunner

log = get_logger("newsflow.bootstrap")

WORKER_STAGES = ("fetcher", "cleaner", "classifier", "storage")


def redis_url(settings: Settings, *, persistent: bool = True) -> str:
    """REDIS_URL, or the embedded server in the data directory, started if nobody has yet."""
    return settings.redis_url or embedded.ensure_running(settings.data_dir, persistent=persistent)


def build_worker(stage: str, settings: Settings, url: str) -> tuple[FastStream, StageRunner]:
    if stage == "fetcher":
        return build_fetcher(settings, url)
    if stage == "cleaner":
        from services.cleaner import app as cleaner
        from services.cleaner.dedup import ExactDuplicateIndex

        from services.cleaner.transform import clean
        from shared.contract import RawArticle

        # The first clean() builds place tables and loads the language model (~0.5 s): pay it before reading.
        clean(RawArticle(text="PARIS (AFP) -- A warm-up sentence for the cleaner."), article_id="warm-up")
        dedup_redis = redis_client(url)
        spec = cleaner.spec(ExactDuplicateIndex(dedup_redis, settings.stream_prefix), settings.max_body_bytes)
        return build_app(spec, settings, url, on_shutdown=dedup_redis.aclose)
    if stage == "classifier":
        from services.classifier import app as classifier
        from services.classifier.transform import load_resources

        return build_app(classifier.spec(load_resources(settings.classifier)), settings, url)
    if stage == "storage":
        from services.storage import app as storage
        from services.storage.repository import open_repository

        repo = open_repository(settings.effective_database_url())

        async def start() -> None:
            await connect_with_retry(repo)
            applied = await repo.migrate()
            if applied:
                log.info("migrations_applied", migrations=applied)

        return build_app(storage.spec(repo), settings, url, on_startup=start, on_shutdown=repo.close)
    raise ValueError(f"unknown stage {stage!r}; choose one of {', '.join(WORKER_STAGES)}")


def build_fetcher(settings: Settings, url: str) -> tuple[FastStream, StageRunner]:
    from services.fetcher import app as fetcher
    from services.fetcher.http import FetchConfig, PoliteFetcher
    from services.fetcher.scheduler import Scheduler
    from services.fetcher.sources import load_sources
    from services.fetcher.urls import SeenUrls

    # Read the sources first: a broken sources file stops the worker at once, not at the first poll.
    sources = load_sources(settings.sources_file, settings.source_poll_s) if settings.sources_file else []
    fetch_redis = redis_client(url)
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


async def connect_with_retry(repo: object, max_delay: float = 5.0) -> None:
    delay = 0.2
    while True:
        try:
            await repo.connect()  # type: ignore[attr-defined]
            return
        except Exception as exc:  # the database may come up after us: wait, never crash-loop
            log.warning("waiting_for_database", error=f"{type(exc).__name__}: {exc}"[:200], retry_in_s=delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, max_delay)
