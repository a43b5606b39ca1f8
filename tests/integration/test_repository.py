"""The repository on both backends: migrations, idempotent batch upserts, change detection, concurrency."""

from __future__ import annotations

import asyncio

import pytest

from shared.contract import ClassifiedArticle, EnrichedArticle, Place, Topic, utcnow
from services.storage.repository import Row, doc_hash, open_repository


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'repo.db'}"
    return request.getfixturevalue("pg_url")


def article(i: int, text: str = "Some text about things.") -> ClassifiedArticle:
    return ClassifiedArticle(
        id=f"a{i}", url=f"https://x.example/{i}", source="t", title=f"Title {i}", text=text, language="en",
        word_count=4, content_hash=f"h{i}", topics=[Topic(code="medtop:11000000", label="politics", score=0.9)],
        places=[Place(name="Seoul", kind="city", code="KR")],
    )


def rows(articles: list[ClassifiedArticle]) -> list[Row]:
    now = utcnow()
    return [Row(EnrichedArticle(**a.model_dump(), stored_at=now), doc_hash(a)) for a in articles]


async def test_migrate_from_empty_then_again_is_a_no_op(database_url):
    repo = open_repository(database_url)
    await repo.connect()
    try:
        assert await repo.migrate() == ["0001_articles.sql"]
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
