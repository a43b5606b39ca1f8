"""storage: reads `{prefix}:classified`, upserts a batch in one transaction, then announces on `{prefix}:enriched`.

The announcement is published, and the input acked, only after the commit. An article stored unchanged is
announced again only when it comes from the same classified entry as last time: that entry's first
announcement may have been lost (a crash or a lost reply between commit and publish). A new entry with
unchanged content is stored in place and not announced.

With NEWSFLOW_STORE_RAW, the raw source the cleaner put under metadata["raw_source"] is taken out of the
article before anything else (so it is in neither the doc hash, the `doc` column nor the enriched event) and kept
in article_sources, in the same transaction as its article.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from datetime import timedelta
from typing import Any, Awaitable, Callable

from shared.contract import ClassifiedArticle, EnrichedArticle, utcnow
from shared.errors import TransientError
from shared.logging import get_logger
from shared.settings import Settings
from shared.transport import Outcome, StageSpec
from shared.transport.metrics import SEARCH_INDEXED, SEARCH_QUEUE, SEARCH_QUEUE_OLDEST
from shared.transport.runner import Item

from .repository import Repository, Row, doc_hash

log = get_logger("newsflow.storage")

RETENTION_INTERVAL_S = 3600.0
# The index loop: articles per transaction (about 0.2 s of PostgreSQL's time, so an upsert that must wait for one of
# its rows never waits long), and how often it looks at an empty queue.
INDEX_BATCH = 200
INDEX_IDLE_S = 0.5
INLINE_IDLE_S = 30.0
INDEX_MAX_PAUSE_S = 30.0
INDEX_BACKLOG_INTERVAL_S = 5.0  # how often the loop reads the queue's size and age for the gauges
# services.cleaner.transform.RAW_SOURCE_KEY, spelled out so storage does not import the cleaner (trafilatura...);
# tests/integration/test_raw_source.py checks that the two agree.
RAW_SOURCE_KEY = "raw_source"


def _decode(body: Any) -> tuple[ClassifiedArticle, list[str]]:
    return ClassifiedArticle.model_validate(body), []


def _transient_db_errors() -> tuple[type[BaseException], ...]:
    import asyncpg

    return (
        sqlite3.OperationalError,  # locked, or the file went away
        asyncpg.PostgresConnectionError,
        asyncpg.InterfaceError,
        asyncpg.CannotConnectNowError,
        asyncpg.TooManyConnectionsError,
        asyncpg.exceptions.AdminShutdownError,
        asyncpg.exceptions.CrashShutdownError,
        OSError,
    )


def take_raw_source(article: ClassifiedArticle) -> dict[str, str | None] | None:
    """Pop the reserved metadata key off `article` (in place); its {"url", "html", "text"} when well formed."""
    value = article.metadata.pop(RAW_SOURCE_KEY, None)
    if value is None:
        return None
    fields = ("url", "html", "text")
    if not isinstance(value, dict) or not all(isinstance(value.get(k), (str, type(None))) for k in fields):
        log.warning("raw_source_malformed", article_id=article.id, type=type(value).__name__)
        return None
    source = {k: value.get(k) for k in fields}
    return source if source["html"] or source["text"] else None


def spec(repo: Repository, store_raw: bool = False) -> StageSpec:
    async def process(items: list[Item]) -> list[Outcome]:
        now = utcnow()
        rows = []
        for entry, article in items:
            assert isinstance(article, ClassifiedArticle)
            # Off, metadata is left as it came (a producer's own "raw_source" key included).
            source = take_raw_source(article) if store_raw else None
            enriched = EnrichedArticle(**article.model_dump(), stored_at=now)
            rows.append(Row(enriched, doc_hash(article), entry.id, source))
        changes = await repo.upsert_many(rows)
        outcomes = []
        last = {row.article.id: i for i, row in enumerate(rows)}  # the same id twice in a batch: the last one stands
        for i, ((entry, _), row) in enumerate(zip(items, rows)):
            announce = changes.get(row.article.id) != "unchanged" and last[row.article.id] == i
            outcomes.append(Outcome(entry, output=row.article if announce else None, article_id=row.article.id))
        return outcomes

    return StageSpec(
        name="storage", input="classified", output="enriched", decode=_decode, process=process, model=ClassifiedArticle,
        transient=(TransientError, *_transient_db_errors()),
    )


async def retention_pass(repo: Repository, days: int) -> int:
    """Delete the articles stored more than `days` days ago; log and return how many."""
    cutoff = utcnow() - timedelta(days=days)
    deleted = await repo.delete_older_than(cutoff)
    log.info("retention_deleted", deleted=deleted, cutoff=cutoff.isoformat(), retention_days=days)
    return deleted


async def retention_loop(repo: Repository, days: int, interval_s: float = RETENTION_INTERVAL_S) -> None:
    """A pass at start and every `interval_s`. Every storage replica runs one: deleting is idempotent, and a
    failed pass (the database away) is logged and tried again at the next interval."""
    while True:
        try:
            await retention_pass(repo, days)
        except Exception as exc:  # noqa: BLE001 - the loop must outlive a database outage
            log.warning("retention_failed", error=f"{type(exc).__name__}: {exc}"[:200], retry_in_s=interval_s)
        await asyncio.sleep(interval_s)


async def index_loop(repo: Repository, batch: int = INDEX_BATCH, idle_s: float = INDEX_IDLE_S) -> None:
    """Deferred search indexing (NEWSFLOW_SEARCH_INDEX=deferred, PostgreSQL): index queued articles, a batch at a
    time, until none is left, then look again every `idle_s`. Every storage replica runs one and they share the queue.
    A failed pass (the database away) is logged and tried again with a growing pause; the queue keeps its rows."""
    failures, measured = 0, float("-inf")
    while True:
        if time.monotonic() - measured >= INDEX_BACKLOG_INTERVAL_S:
            measured = time.monotonic()
            try:  # on its own, so the gauges (and the lag alert) still move while indexing fails
                waiting, oldest_s = await repo.search_backlog()
                SEARCH_QUEUE.set(waiting)
                SEARCH_QUEUE_OLDEST.set(oldest_s)
            except Exception as exc:  # noqa: BLE001 - the database away: the pass below says so
                log.debug("search_backlog_failed", error=f"{type(exc).__name__}: {exc}"[:200])
        try:
            indexed = await repo.index_pending(batch)
        except Exception as exc:  # noqa: BLE001 - the loop must outlive a database outage
            failures += 1
            pause = min(INDEX_MAX_PAUSE_S, idle_s * 2 ** min(failures, 10))
            log.warning("search_index_failed", error=f"{type(exc).__name__}: {exc}"[:200], retry_in_s=pause)
            await asyncio.sleep(pause)
            continue
        failures = 0
        SEARCH_INDEXED.inc(indexed)
        # A short batch: the queue is empty, or its other rows are being written or indexed by a replica right now.
        await asyncio.sleep(idle_s if indexed < batch else 0)


def background(repo: Repository, settings: Settings) -> list[Callable[[], Awaitable[None]]]:
    """The stage's background tasks for `build_app(background=...)`: retention, when it is on, and on PostgreSQL
    the index loop."""
    tasks: list[Callable[[], Awaitable[None]]] = []
    if settings.retention_days > 0:
        tasks.append(lambda: retention_loop(repo, settings.retention_days))
    mode = getattr(repo, "search_index", None)  # PostgreSQL's; SQLite indexes in its upsert
    if mode == "deferred":
        tasks.append(lambda: index_loop(repo))
    elif mode == "inline":
        # Nothing new is queued, but what a deferred run left in the queue is still indexed, unhurried.
        tasks.append(lambda: index_loop(repo, idle_s=INLINE_IDLE_S))
    return tasks
