"""Two storage replicas (`newsflow worker storage` processes) in one group, writing to PostgreSQL: 10,000 articles
leave 10,000 rows, 10,000 distinct ids, 10,000 enriched events, no dead letters and nothing pending.

To keep it fast, the articles are built with the contract models and pushed straight to `{prefix}:classified`
(the cleaner and classifier are covered by test_pipeline.py); storage sees exactly what the classifier writes.
"""

from __future__ import annotations

import asyncio
import json
import time
from datetime import datetime, timedelta, timezone

import pytest

from shared.contract import ClassifiedArticle, Dateline, Place, Topic, dump
from tests.conftest import worker_env
from tests.helpers import Workers, read_bodies, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

N = 10_000
TOPICS = [("medtop:11000000", "politics"), ("medtop:04000000", "economy, business and finance"),
          ("medtop:15000000", "sport"), ("medtop:13000000", "science and technology")]
PLACES = [("Paris", "city", "FR"), ("Germany", "country", "DE"), ("Tokyo", "city", "JP"), ("Kenya", "country", "KE")]


def classified(i: int) -> str:
    code, label = TOPICS[i % len(TOPICS)]
    name, kind, cc = PLACES[i % len(PLACES)]
    return dump(ClassifiedArticle(
        id=f"rep-{i}",
        url=f"https://news.example/replicas/{i}",
        source=f"wire-{i % 5}",
        title=f"Story {i} about {label}",
        text=f"{name.upper()} (AP) — Story {i}. A report about {label} in {name}.\n\nOfficials gave details of case {i}.",
        language="en",
        language_confidence=0.98,
        published_at=datetime(2025, 1, 1, tzinfo=timezone.utc) + timedelta(minutes=i),
        dateline=Dateline(city=name, agency="AP", raw=f"{name.upper()} (AP) —"),
        word_count=20,
        content_hash=f"h{i:08d}",
        topics=[Topic(code=code, label=label, score=0.8)],
        places=[Place(name=name, kind=kind, code=cc, in_dateline=True)],
        keywords=[label.split()[0], name.lower()],
        received_at=datetime.now(timezone.utc),
    ))


def db_figures(url: str) -> tuple[int, int, int]:
    import asyncpg

    async def run() -> tuple[int, int, int]:
        conn = await asyncpg.connect(url)
        try:
            rows, distinct = await conn.fetchrow("SELECT count(*), count(DISTINCT id) FROM articles")
            topics = await conn.fetchval("SELECT count(DISTINCT article_id) FROM article_topics")
            return rows, distinct, topics
        finally:
            await conn.close()

    return asyncio.run(run())


def search_backlog(url: str) -> tuple[int, int]:
    """Articles still in the deferred-indexing queue, and articles without a search vector."""
    import asyncpg

    async def run() -> tuple[int, int]:
        conn = await asyncpg.connect(url)
        try:
            return (await conn.fetchval("SELECT count(*) FROM search_queue"),
                    await conn.fetchval("SELECT count(*) FROM articles WHERE search_vector IS NULL"))
        finally:
            await conn.close()

    return asyncio.run(run())


def stopped_counters(log: str) -> dict:
    for line in reversed(log.splitlines()):
        if line.startswith("{") and json.loads(line).get("event") == "worker_stopped":
            return json.loads(line)
    raise AssertionError(f"no worker_stopped line in the log:\n{log[-3000:]}")


def test_two_storage_replicas_store_10000_articles_once_each(redis_url, prefix, r, tmp_path, pg_url):
    classified_stream, enriched_stream, group = f"{prefix}:classified", f"{prefix}:enriched", f"{prefix}:storage"
    # No probe server: two workers on one machine would want the same port.
    workers = Workers(worker_env(redis_url, prefix, pg_url, tmp_path, NEWSFLOW_METRICS_PORT="0"), tmp_path)
    try:
        for name in ("storage-a", "storage-b"):
            workers.start("storage", name)

        def both_started() -> bool:
            assert len(workers.alive()) == 2, f"a storage worker died:\n{workers.logs()}"
            return all('"worker_started"' in (tmp_path / f"{name}.log").read_text() for name in ("storage-a", "storage-b"))

        # Both are reading before anything is pushed, so they compete for the same entries from the start.
        wait_until(both_started, timeout=60, what="both storage workers to start")
        bodies = [classified(i) for i in range(N)]
        started = time.monotonic()
        for chunk in range(0, N, 1000):
            with r.pipeline(transaction=False) as pipe:
                for body in bodies[chunk:chunk + 1000]:
                    pipe.xadd(classified_stream, {"body": body})
                pipe.execute()

        def done() -> bool:
            assert len(workers.alive()) == 2, f"a storage worker died:\n{workers.logs()}"
            return r.xlen(enriched_stream) >= N and r.xpending(classified_stream, group)["pending"] == 0

        wait_until(done, timeout=120, interval=0.1, what=f"{N} enriched events")
        elapsed = time.monotonic() - started
        # Search is indexed after the commit (the default): the replicas' index loops drain the queue between them.
        wait_until(lambda: search_backlog(pg_url) == (0, 0), timeout=180, interval=0.5, what="the search queue to drain")
        indexed = time.monotonic() - started
    except AssertionError:
        print(workers.logs())
        raise
    finally:
        workers.stop()

    counters = {name: stopped_counters((tmp_path / f"{name}.log").read_text()) for name in ("storage-a", "storage-b")}
    rows, distinct, with_topics = db_figures(pg_url)
    events = [b["id"] for b in read_bodies(r, enriched_stream)]
    dlq = r.xlen(f"{prefix}:dlq")
    info = {g["name"].decode(): g for g in r.xinfo_groups(classified_stream)}[group]
    print(f"articles={N} replicas=2 seconds={elapsed:.1f} searchable_after={indexed:.1f} rows={rows} distinct_rows={distinct} rows_with_topics={with_topics} "
          f"enriched_events={len(events)} distinct_events={len(set(events))} dlq={dlq} pending={info['pending']} "
          + " ".join(f"{name}_processed={c['processed']}" for name, c in counters.items()))

    assert (rows, distinct, with_topics) == (N, N, N)
    assert len(events) == N and set(events) == {f"rep-{i}" for i in range(N)}
    assert dlq == 0
    assert info["pending"] == 0 and info["last-delivered-id"] == r.xinfo_stream(classified_stream)["last-generated-id"]
    # Both replicas did part of the work, and together all of it (a reclaim would only add redeliveries).
    assert all(c["processed"] > 0 for c in counters.values()), counters
    assert sum(c["processed"] for c in counters.values()) >= N
    assert all(c["dead_lettered"] == 0 for c in counters.values()), counters
