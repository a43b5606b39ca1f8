"""When an article becomes searchable by its words: PostgreSQL's deferred indexing (the default) and inline indexing.

Deferred: the upsert queues the ids it wrote (migration 0006) and the storage workers' index loop computes their
search vectors after the commit. These tests run on the real PostgreSQL; SQLite always indexes in the upsert.
"""

from __future__ import annotations

import asyncio
import random

import pytest

from services.storage import app as storage_app
from services.storage.query import ArticleQuery
from services.storage.repository import Row, doc_hash, open_repository
from shared.contract import ClassifiedArticle, EnrichedArticle, utcnow
from shared.settings import Settings
from tests.integration.conftest import migrated


def article(id: str, title: str, text: str, **fields) -> ClassifiedArticle:
    return ClassifiedArticle(id=id, title=title, text=text, source="wire", language="en", content_hash=f"h-{id}", **fields)


async def store(repo, *articles: ClassifiedArticle) -> dict:
    at = utcnow()
    return await repo.upsert_many([Row(EnrichedArticle(**a.model_dump(), stored_at=at), doc_hash(a), "") for a in articles])


async def ids(repo, **query) -> list[str]:
    return sorted(item["id"] for item in (await repo.search(ArticleQuery(limit=500, **query))).items)


async def queued(repo) -> list[str]:
    async with repo._pool.acquire() as conn:
        return sorted(r[0] for r in await conn.fetch("SELECT article_id FROM search_queue"))


@pytest.fixture
async def pg_repo(pg_url):
    async with migrated(pg_url) as repo:
        yield repo


async def test_deferred_is_the_default_and_words_find_an_article_once_the_index_loop_ran(pg_repo):
    assert Settings().search_index == "deferred" and pg_repo.search_index == "deferred"
    await store(pg_repo, article("d1", "Floods in the north", "Rivers burst their banks near the dam.", keywords=["flood defences"]))
    # Stored and filterable at once; not yet by its words.
    assert await ids(pg_repo, source="wire") == ["d1"]
    assert await ids(pg_repo, q="rivers") == []
    assert await queued(pg_repo) == ["d1"]
    assert await pg_repo.index_pending() == 1
    assert await ids(pg_repo, q="rivers") == await ids(pg_repo, q="floods") == await ids(pg_repo, q='"flood defences"') == ["d1"]
    assert await queued(pg_repo) == [] and await pg_repo.index_pending() == 0


async def test_a_rewrite_stays_findable_by_its_old_words_until_indexed_again(pg_repo):
    await store(pg_repo, article("r1", "Floods in the north", "Rivers burst their banks."))
    await pg_repo.index_pending()
    assert await store(pg_repo, article("r1", "Drought in the south", "Rivers ran dry.")) == {"r1": "updated"}
    assert await ids(pg_repo, q="floods") == ["r1"] and await ids(pg_repo, q="drought") == []
    assert await pg_repo.index_pending() == 1
    assert await ids(pg_repo, q="floods") == [] and await ids(pg_repo, q="drought") == ["r1"]
    # An unchanged resubmission is not queued again.
    assert await store(pg_repo, article("r1", "Drought in the south", "Rivers ran dry.")) == {"r1": "unchanged"}
    assert await queued(pg_repo) == []


async def test_inline_indexing_makes_an_article_searchable_in_its_upsert(pg_url):
    async with migrated(pg_url, search_index="inline") as repo:
        await store(repo, article("i1", "Floods in the north", "Rivers burst their banks."))
        assert await ids(repo, q="rivers") == ["i1"]
        assert await queued(repo) == [] and await repo.index_pending() == 0

    # Switched from deferred to inline with articles still queued: the loop still runs (slowly) and drains them.
    async with migrated(pg_url) as deferred:
        await store(deferred, article("q1", "Queued before the switch", "Tides rose in the harbour."))
    async with migrated(pg_url, search_index="inline") as repo:
        [factory] = storage_app.background(repo, Settings(search_index="inline"))
        task = asyncio.create_task(factory())
        try:
            async def until_indexed() -> None:
                while await ids(repo, q="tides") != ["q1"]:
                    await asyncio.sleep(0.05)

            await asyncio.wait_for(until_indexed(), timeout=10)  # its first pass runs at once
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


def test_an_unknown_indexing_mode_is_refused():
    with pytest.raises(ValueError, match="search indexing"):
        open_repository("postgresql://127.0.0.1/x", search_index="later")


async def test_sqlite_always_indexes_in_the_upsert(tmp_path):
    async with migrated(f"sqlite:///{tmp_path / 'n.db'}") as repo:
        await store(repo, article("s1", "Floods in the north", "Rivers burst their banks."))
        assert await ids(repo, q="rivers") == ["s1"]
        assert await repo.index_pending() == 0 and await repo.search_backlog() == (0, 0.0)
        assert storage_app.background(repo, Settings()) == []  # no index loop to run


async def test_replicas_share_the_queue_and_index_every_article_once(pg_repo, pg_url):
    await store(pg_repo, *(article(f"m{n:03d}", f"Story {n}", f"Harbour story number {n} about tides.") for n in range(300)))
    other = open_repository(pg_url)
    await other.connect()
    try:
        counts = {"a": 0, "b": 0}

        async def drain(name: str, repo) -> None:
            while n := await repo.index_pending(17):
                counts[name] += n

        await asyncio.gather(drain("a", pg_repo), drain("b", other))
    finally:
        await other.close()
    assert counts["a"] + counts["b"] == 300 and min(counts.values()) > 0
    assert len(await ids(pg_repo, q="tides")) == 300 and await queued(pg_repo) == []


async def test_rewrites_racing_the_index_loop_never_deadlock_and_the_index_ends_on_the_last_text(pg_repo, pg_url):
    """Upserts lock articles then queue rows; the index loop locks queue rows then articles, skipping locked ones.
    With both running flat out on the same ids, no transaction may fail, and the vectors end on the last texts."""
    writer = open_repository(pg_url)
    await writer.connect()
    n_ids, rounds = 40, 15
    stop = asyncio.Event()

    async def index() -> None:
        while not stop.is_set():
            if not await pg_repo.index_pending(7):
                await asyncio.sleep(0.005)

    async def write() -> None:
        for r in range(rounds):
            batch = [article(f"x{n:02d}", f"Round {r}", f"Version word{r} of story {n}.") for n in range(n_ids)]
            random.shuffle(batch)
            await store(writer, *batch)
        stop.set()

    try:
        indexers = [asyncio.create_task(index()) for _ in range(2)]
        await asyncio.wait_for(write(), timeout=120)
        await asyncio.gather(*indexers)  # raises if a pass failed (a deadlock would)
        while await pg_repo.index_pending(100):
            pass
    finally:
        await writer.close()
    assert len(await ids(pg_repo, q=f"word{rounds - 1}")) == n_ids
    assert await ids(pg_repo, q=f"word{rounds - 2}") == []


async def test_retention_takes_queued_articles_out_of_the_queue(pg_repo):
    await store(pg_repo, article("old", "Old story", "Nothing new."))
    assert await queued(pg_repo) == ["old"]
    assert await pg_repo.delete_older_than(utcnow()) == 1
    assert await queued(pg_repo) == [] and await pg_repo.index_pending() == 0


class FlakyRepo:
    """index_pending fails twice (the database away), then indexes a full batch, then finds nothing."""

    search_index = "deferred"

    def __init__(self) -> None:
        self.calls = 0

    async def index_pending(self, limit: int = 200) -> int:
        self.calls += 1
        if self.calls <= 2:
            raise OSError("connection refused")
        return limit if self.calls == 3 else 0

    async def search_backlog(self) -> tuple[int, float]:
        return 7, 42.5


async def test_the_index_loop_outlives_a_database_outage_and_counts_what_it_indexed():
    repo = FlakyRepo()
    before = storage_app.SEARCH_INDEXED._value.get()
    [factory] = storage_app.background(repo, Settings())  # type: ignore[arg-type]
    task = asyncio.create_task(storage_app.index_loop(repo, batch=5, idle_s=0.01))  # type: ignore[arg-type]
    try:
        while repo.calls < 5:
            await asyncio.sleep(0.01)
        assert not task.done()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert storage_app.SEARCH_INDEXED._value.get() - before == 5
    assert storage_app.SEARCH_QUEUE._value.get() == 7 and storage_app.SEARCH_QUEUE_OLDEST._value.get() == 42.5
    assert factory is not None


async def test_the_backlog_is_what_waits_and_for_how_long(pg_repo):
    assert await pg_repo.search_backlog() == (0, 0.0)
    await store(pg_repo, *(article(f"b{n}", "Queued story", "It waits for its vector.") for n in range(3)))
    await asyncio.sleep(0.05)
    waiting, oldest_s = await pg_repo.search_backlog()
    assert waiting == 3 and 0.05 <= oldest_s < 60
    await pg_repo.index_pending()
    assert await pg_repo.search_backlog() == (0, 0.0)


async def test_a_huge_text_is_indexed_on_its_start_and_does_not_stop_the_queue(pg_repo):
    huge = " ".join(f"w{n}x{n * 7919 % 100003}" for n in range(200_000))  # about 2.6 MB of distinct words
    await store(pg_repo, article("huge", "Enormous filing", "Kestrels nest early. " + huge),
                article("small", "Small story", "Herons wade."))
    assert await pg_repo.index_pending() == 2
    assert await ids(pg_repo, q="kestrels") == ["huge"] and await ids(pg_repo, q="herons") == ["small"]


async def test_an_article_postgresql_refuses_to_index_leaves_the_queue_and_is_logged(pg_repo, monkeypatch):
    from structlog.testing import capture_logs

    from services.storage import postgres

    # A vector PostgreSQL refuses ("word is too long") for the ids starting with "bad" (made of the id, so the planner
    # cannot fold it into a constant and fail every row).
    refusing = postgres._INDEX.replace(
        "SET search_vector = ", "SET search_vector = CASE WHEN i.id LIKE 'bad%' THEN (repeat('x', 3000) || i.id)::tsvector ELSE ")
    refusing = refusing.replace("\nFROM unnest", " END\nFROM unnest")
    monkeypatch.setattr(postgres, "_INDEX", refusing)
    await store(pg_repo, article("good1", "Good", "Otters swim."), article("bad1", "Bad", "Otters dive."),
                article("good2", "Good too", "Otters rest."))
    with capture_logs() as logs:
        assert await pg_repo.index_pending() == 2
    assert [(e["event"], e["article_id"]) for e in logs] == [("search_index_refused", "bad1")]
    assert await ids(pg_repo, q="otters") == ["good1", "good2"]
    assert await queued(pg_repo) == []  # the refused one is not retried for ever
    assert await ids(pg_repo, source="wire") == ["bad1", "good1", "good2"]  # and still stored, filterable
