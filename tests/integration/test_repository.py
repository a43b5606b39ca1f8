"""The repository on both backends: migrations, idempotent batch upserts, change detection, concurrency."""

from __future__ import annotations

import asyncio


from shared.contract import ClassifiedArticle, EnrichedArticle, Place, Topic, utcnow
from services.storage.repository import Row, doc_hash, open_repository


def article(i: int, text: str = "Some text about things.") -> ClassifiedArticle:
    return ClassifiedArticle(
        id=f"a{i}", url=f"https://x.example/{i}", source="t", title=f"Title {i}", text=text, language="en",
        word_count=4, content_hash=f"h{i}", topics=[Topic(code="medtop:11000000", label="politics", score=0.9)],
        places=[Place(name="Seoul", kind="city", code="KR")],
    )


def rows(articles: list[ClassifiedArticle], entry: str = "") -> list[Row]:
    now = utcnow()
    return [Row(EnrichedArticle(**a.model_dump(), stored_at=now), doc_hash(a), entry and f"{entry}-{a.id}") for a in articles]


async def test_migrate_from_empty_then_again_is_a_no_op(database_url):
    repo = open_repository(database_url)
    await repo.connect()
    try:
        assert await repo.migrate() == ["0001_articles.sql", "0002_source_entry.sql", "0003_search.sql",
                                        "0004_article_sources.sql", "0005_search_in_upsert.sql", "0006_search_queue.sql"]
        assert await repo.migrate() == []
    finally:
        await repo.close()


async def test_upsert_is_idempotent_and_reports_changes(database_url):
    repo = open_repository(database_url)
    await repo.connect()
    await repo.migrate()
    try:
        first = await repo.upsert_many(rows([article(i) for i in range(5)]))
        assert set(first.values()) == {"inserted"}
        again = await repo.upsert_many(rows([article(i) for i in range(5)]))
        assert set(again.values()) == {"unchanged"}
        changed = await repo.upsert_many(rows([article(1, "New text."), article(2)]))
        assert changed == {"a1": "updated", "a2": "unchanged"}
        assert await repo.count() == 5
        doc = await repo.get("a1")
        assert doc["text"] == "New text." and doc["topics"][0]["label"] == "politics" and doc["stored_at"]
        assert await repo.get("missing") is None
    finally:
        await repo.close()


async def test_concurrent_writers_leave_one_row_per_id(database_url):
    repos = [open_repository(database_url) for _ in range(2)]
    for repo in repos:
        await repo.connect()
    await repos[0].migrate()
    try:
        batches = [rows([article(i) for i in range(k, k + 200)]) for k in (0, 100)]  # 100 ids overlap
        await asyncio.gather(*(repo.upsert_many(b) for repo, b in zip(repos, batches)))
        assert await repos[0].count() == 300
        assert len(set(await repos[0].ids())) == 300
    finally:
        for repo in repos:
            await repo.close()


async def test_migrate_from_the_previous_version(database_url):
    """A database at version 1 (rows included) is brought to the current version without losing rows."""
    repo = open_repository(database_url)
    await repo.connect()
    try:
        assert await repo.migrate(target=1) == ["0001_articles.sql"]
        db_v1 = repo
        # Version 1 had no source_entry_id column: write a row the way version 1 did.
        await _insert_v1_row(db_v1, database_url)
        assert await repo.migrate() == ["0002_source_entry.sql", "0003_search.sql", "0004_article_sources.sql",
                                        "0005_search_in_upsert.sql", "0006_search_queue.sql"]
        assert await repo.count() == 1
        assert (await repo.upsert_many(rows([article(1)], entry="e1"))) == {"a1": "updated"}
        assert (await repo.get("a1"))["title"] == "Title 1"
    finally:
        await repo.close()


async def test_same_entry_again_is_redelivered_a_new_entry_with_same_content_is_unchanged(database_url):
    repo = open_repository(database_url)
    await repo.connect()
    await repo.migrate()
    try:
        assert await repo.upsert_many(rows([article(1)], entry="e1")) == {"a1": "inserted"}
        # The same stream entry once more: its announcement may have been lost, so it must be announced again.
        assert await repo.upsert_many(rows([article(1)], entry="e1")) == {"a1": "redelivered"}
        # A new entry carrying the same content (a resubmission): stored in place, not announced.
        assert await repo.upsert_many(rows([article(1)], entry="e2")) == {"a1": "unchanged"}
        received_later = article(1).model_copy(update={"received_at": utcnow()})
        assert await repo.upsert_many(rows([received_later], entry="e3")) == {"a1": "unchanged"}
    finally:
        await repo.close()


async def _insert_v1_row(repo, database_url: str) -> None:
    values = ("a1", "u", "t", "Title 1", "Some text about things.", "en", None, 4, None, "h1", "x", "{}", "2025-01-01T00:00:00+00:00", "2025-01-01T00:00:00+00:00")
    cols = "id, url, source, title, text, language, published_at, word_count, duplicate_of, content_hash, doc_hash, doc, stored_at, updated_at"
    if database_url.startswith("sqlite"):
        await repo._run(lambda: repo._db.execute(f"INSERT INTO articles ({cols}) VALUES ({','.join('?' * 14)})", values))
    else:
        from datetime import datetime

        v = list(values)
        v[12] = v[13] = datetime.fromisoformat(values[12])
        async with repo._pool.acquire() as conn:
            await conn.execute(f"INSERT INTO articles ({cols}) VALUES ({','.join(f'${i}' for i in range(1, 15))})", *v)


async def test_the_same_id_twice_in_a_batch_reports_the_last_change(database_url):
    repo = open_repository(database_url)
    await repo.connect()
    await repo.migrate()
    try:
        await repo.upsert_many(rows([article(1)], entry="e1"))
        mixed = rows([article(1)], entry="e2") + rows([article(1, "Newer text.")], entry="e3")
        assert await repo.upsert_many(mixed) == {"a1": "updated"}
        assert (await repo.get("a1"))["text"] == "Newer text."
    finally:
        await repo.close()


async def test_a_late_redelivery_of_an_older_entry_never_overwrites_newer_content(database_url):
    repo = open_repository(database_url)
    await repo.connect()
    await repo.migrate()
    now = utcnow()

    def row(text: str, entry_id: str) -> Row:
        a = article(1, text)
        return Row(EnrichedArticle(**a.model_dump(), stored_at=now), doc_hash(a), entry_id)

    try:
        assert await repo.upsert_many([row("Version one.", "1700000000000-0")]) == {"a1": "inserted"}
        assert await repo.upsert_many([row("Version two.", "1700000000500-3")]) == {"a1": "updated"}
        assert await repo.upsert_many([row("Version one.", "1700000000000-0")]) == {"a1": "unchanged"}
        assert (await repo.get("a1"))["text"] == "Version two."
    finally:
        await repo.close()
