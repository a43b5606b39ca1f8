"""NEWSFLOW_STORE_RAW: the raw source goes from the cleaner, through the classifier, to article_sources, and never
into the `doc` column or the enriched events. Repository tests run on SQLite and the real PostgreSQL; the stage
tests run the real cleaner and storage stages on the real Redis."""

from __future__ import annotations

import json
import sqlite3
from datetime import timedelta
from pathlib import Path

import redis.asyncio as aredis

from services.classifier.transform import Resources, classify, load_resources
from services.cleaner import app as cleaner_app
from services.cleaner.dedup import ExactDuplicateIndex
from services.cleaner.transform import CLASSIFIER_HEADROOM_BYTES, RAW_SOURCE_KEY, RAW_SOURCE_SKIPPED_KEY, clean
from services.storage import app as storage_app
from services.storage.repository import Row, doc_hash, open_repository
from shared.contract import ClassifiedArticle, CleanArticle, EnrichedArticle, RawArticle, utcnow
from shared.settings import Settings
from shared.transport import Entry, StageRunner
from tests.storage_rows import insert_old_rows

HTML = (Path(__file__).resolve().parents[2] / "services" / "samples" / "storm-lisbon.html").read_text(encoding="utf-8")
URL = "https://coastal.example/storm"
WIRE = "PARIS (AFP) -- The council met on Tuesday to discuss next year's budget, officials said."


async def sql(database_url: str, query: str, *args):
    """A query straight against the database, not through the repository."""
    if database_url.startswith("sqlite"):
        conn = sqlite3.connect(database_url.split("sqlite:///", 1)[1])
        try:
            return conn.execute(query.replace("$1", "?"), args).fetchall()
        finally:
            conn.close()
    import asyncpg

    conn = await asyncpg.connect(database_url)  # its search_path parameter picks the test's schema
    try:
        return [tuple(r) for r in await conn.fetch(query, *args)]
    finally:
        await conn.close()


async def source_count(database_url: str) -> int:
    return (await sql(database_url, "SELECT count(*) FROM article_sources"))[0][0]


def article(id: str = "a1", text: str = "Some text about things.", **fields) -> ClassifiedArticle:
    return ClassifiedArticle(id=id, url=URL, source="t", title="Title", text=text, language="en", word_count=4,
                             content_hash=f"h-{id}-{text}", **fields)


def row(a: ClassifiedArticle, entry: str = "", source: dict | None = None, stored_at=None) -> Row:
    return Row(EnrichedArticle(**a.model_dump(), stored_at=stored_at or utcnow()), doc_hash(a), entry, source)


def src(html: str | None = "<p>raw</p>", text: str | None = None, url: str | None = URL) -> dict:
    return {"html": html, "text": text, "url": url}


# -- the cleaner's pure transform --

def test_the_cleaner_and_storage_agree_on_the_reserved_key():
    assert storage_app.RAW_SOURCE_KEY == RAW_SOURCE_KEY


def test_clean_keeps_the_raw_html_and_url_when_on():
    out = clean(RawArticle(html=HTML, url=URL), article_id="x", store_raw=True)
    assert out.metadata[RAW_SOURCE_KEY] == {"html": HTML, "text": None, "url": URL}
    assert "Firefighters rescued eleven people" in out.text and "<p>" not in out.text


def test_clean_keeps_the_raw_text_when_there_is_no_html():
    out = clean(RawArticle(text=WIRE, url=URL, html="  "), article_id="x", store_raw=True)
    assert out.metadata[RAW_SOURCE_KEY] == {"html": None, "text": WIRE, "url": URL}


def test_clean_adds_nothing_when_off_and_leaves_a_producers_metadata_alone():
    assert RAW_SOURCE_KEY not in clean(RawArticle(html=HTML, url=URL), article_id="x").metadata
    mine = {"raw_source": "my own value", "raw_source_skipped": 1}
    out = clean(RawArticle(text=WIRE, metadata=mine), article_id="x")
    assert out.metadata["raw_source"] == "my own value" and out.metadata["raw_source_skipped"] == 1


def test_clean_replaces_a_producers_value_under_the_reserved_key_when_on():
    out = clean(RawArticle(text=WIRE, metadata={"raw_source": {"html": "<p>forged</p>"}}), article_id="x", store_raw=True)
    assert out.metadata[RAW_SOURCE_KEY] == {"html": None, "text": WIRE, "url": None}


def test_clean_skips_a_raw_source_that_would_make_the_entry_too_large():
    limit = CLASSIFIER_HEADROOM_BYTES + 50_000
    html = HTML.replace("<main>", "<main><!--" + "x" * 60_000 + "-->")
    out = clean(RawArticle(html=html, url=URL), article_id="x", store_raw=True, max_body_bytes=limit)
    assert RAW_SOURCE_KEY not in out.metadata
    note = out.metadata[RAW_SOURCE_SKIPPED_KEY]
    assert note["reason"] == "too_large" and note["max_body_bytes"] == limit and note["entry_bytes"] > 60_000
    assert "Firefighters rescued eleven people" in out.text  # the article itself goes on
    # Just under the limit (with the classifier's headroom), it is kept.
    small = clean(RawArticle(html=HTML, url=URL), article_id="x", store_raw=True, max_body_bytes=limit)
    assert small.metadata[RAW_SOURCE_KEY]["html"] == HTML and RAW_SOURCE_SKIPPED_KEY not in small.metadata
    assert len(small.model_dump_json().encode()) + CLASSIFIER_HEADROOM_BYTES <= limit


def test_the_classifier_passes_the_raw_source_through_unchanged():
    cleaned = clean(RawArticle(html=HTML, url=URL), article_id="x", store_raw=True)
    classified = classify(cleaned, load_resources("keywords"))
    assert classified.metadata[RAW_SOURCE_KEY] == {"html": HTML, "text": None, "url": URL}
    assert classified.metadata == cleaned.metadata


# -- the repository, on both backends --

async def test_migrate_from_0003_adds_the_table_and_keeps_the_articles(database_url):
    repo = open_repository(database_url)
    await repo.connect()
    try:
        assert await repo.migrate(target=3) == ["0001_articles.sql", "0002_source_entry.sql", "0003_search.sql"]
        await insert_old_rows(repo, [row(article("old"))])  # written by version 3's schema
        assert await repo.migrate() == ["0004_article_sources.sql", "0005_search_in_upsert.sql", "0006_search_queue.sql"]
        assert await repo.migrate() == []
        assert await repo.count() == 1 and await repo.get_source("old") is None
        assert await repo.upsert_many([row(article("old"), "1-0", src())]) == {"old": "unchanged"}
        assert (await repo.get_source("old"))["html"] == "<p>raw</p>"
    finally:
        await repo.close()


async def test_a_source_is_kept_beside_its_article_and_never_in_its_doc(repo, database_url):
    a = article()
    assert await repo.upsert_many([row(a, "1-0", src(HTML))]) == {"a1": "inserted"}
    got = await repo.get_source("a1")
    assert {k: got[k] for k in ("article_id", "url", "html", "text")} == {"article_id": "a1", "url": URL, "html": HTML, "text": None}
    assert got["stored_at"]
    doc = (await sql(database_url, "SELECT doc FROM articles WHERE id = $1", "a1"))[0][0]
    doc = json.loads(doc) if isinstance(doc, str) else doc
    assert RAW_SOURCE_KEY not in doc["metadata"] and "Most read" not in json.dumps(doc)
    assert await repo.get_source("missing") is None


async def test_redelivery_keeps_one_row_and_a_new_source_updates_it(repo, database_url):
    a = article()
    await repo.upsert_many([row(a, "1-0", src(HTML))])
    first = await repo.get_source("a1")
    assert await repo.upsert_many([row(a, "1-0", src(HTML))]) == {"a1": "redelivered"}
    assert await repo.upsert_many([row(a, "2-0", src(HTML))]) == {"a1": "unchanged"}
    assert await source_count(database_url) == 1
    assert await repo.get_source("a1") == first  # an identical source is not rewritten
    # Same content, a different page (its source is not part of the doc hash): the source follows.
    assert await repo.upsert_many([row(a, "3-0", src("<p>v2</p>"))]) == {"a1": "unchanged"}
    assert (await repo.get_source("a1"))["html"] == "<p>v2</p>"
    # New content with a new source, twice in one batch: the last one stands.
    b1, b2 = article(text="Changed once."), article(text="Changed twice.")
    await repo.upsert_many([row(b1, "4-0", src("<p>v3</p>")), row(b2, "5-0", src(None, "plain v4"))])
    got = await repo.get_source("a1")
    assert (got["html"], got["text"]) == (None, "plain v4")
    assert await source_count(database_url) == 1


async def test_a_late_redelivery_never_overwrites_a_newer_source(repo):
    await repo.upsert_many([row(article(text="Newer text."), "2-0", src("<p>newer</p>"))])
    assert await repo.upsert_many([row(article(text="Older text."), "1-0", src("<p>older</p>"))]) == {"a1": "unchanged"}
    assert (await repo.get_source("a1"))["html"] == "<p>newer</p>"


async def test_rows_without_a_source_write_none(repo, database_url):
    await repo.upsert_many([row(article(f"n{i}")) for i in range(3)])
    assert await repo.count() == 3 and await source_count(database_url) == 0


async def test_retention_deletes_the_sources_too(repo, database_url):
    old = utcnow() - timedelta(days=30)
    await repo.upsert_many([row(article("old"), "1-0", src(), stored_at=old), row(article("new"), "2-0", src())])
    assert await source_count(database_url) == 2
    assert await repo.delete_older_than(utcnow() - timedelta(days=7)) == 1
    assert await repo.get_source("old") is None and (await repo.get_source("new"))["html"]
    assert await source_count(database_url) == 1


async def test_a_page_with_nul_and_lone_surrogates_does_not_fail_its_batch(repo, database_url):
    html = "<p>a\x00b \ud800 c</p>"
    assert await repo.upsert_many([row(article(), "1-0", src(html)), row(article("b2"), "1-1", src())]) == {
        "a1": "inserted", "b2": "inserted"}
    kept = (await repo.get_source("a1"))["html"]
    # Neither database holds a lone surrogate; PostgreSQL text holds no NUL either.
    assert kept == ("<p>a\x00b ? c</p>" if database_url.startswith("sqlite") else "<p>a\ufffdb ? c</p>")


# -- the stages on the real Redis --

def storage_runner(redis_url: str, prefix: str, repo, store_raw: bool) -> StageRunner:
    settings = Settings(stream_prefix=prefix, claim_idle_ms=200)
    return StageRunner(storage_app.spec(repo, store_raw=store_raw), settings, aredis.Redis.from_url(redis_url), "s1")


async def run_stage(runner: StageRunner, bodies: list) -> None:
    await runner.ensure_groups()
    for body in bodies:
        await runner.redis.xadd(runner.input_stream, {"body": body if isinstance(body, str) else json.dumps(body)})
    reply = await runner.redis.xreadgroup(runner.group, runner.consumer, {runner.input_stream: ">"}, count=100)
    await runner.handle_batch([Entry(i.decode(), f) for _, entries in reply for i, f in entries])


async def stream_bodies(r: aredis.Redis, stream: str) -> list[str]:
    return [f[b"body"].decode() for _, f in await r.xrange(stream)]


def classified_body(a: ClassifiedArticle, **metadata) -> str:
    return a.model_copy(update={"metadata": {**a.metadata, **metadata}}).model_dump_json()


async def test_storage_on_keeps_the_source_out_of_the_event_and_the_doc(redis_url, prefix, repo, database_url):
    runner = storage_runner(redis_url, prefix, repo, store_raw=True)
    a = article(metadata={"team": "x"})
    try:
        await run_stage(runner, [classified_body(a, raw_source=src(HTML))])
        [event] = await stream_bodies(runner.redis, f"{prefix}:enriched")
        assert "Most read" not in event and RAW_SOURCE_KEY not in json.loads(event)["metadata"]
        assert json.loads(event)["metadata"] == {"team": "x"}
        assert (await repo.get_source("a1"))["html"] == HTML
        doc = await repo.get("a1")
        assert doc["metadata"] == {"team": "x"} and "Most read" not in json.dumps(doc)
        # The hash is that of the article without its source, so a re-delivery is not a change.
        stored_hash = (await sql(database_url, "SELECT doc_hash FROM articles WHERE id = $1", "a1"))[0][0]
        assert stored_hash == doc_hash(a)
        await run_stage(runner, [classified_body(a, raw_source=src(HTML))])
        assert len(await stream_bodies(runner.redis, f"{prefix}:enriched")) == 1  # unchanged: not announced again
        assert await source_count(database_url) == 1 and await repo.count() == 1
        assert await runner.redis.xlen(f"{prefix}:dlq") == 0
    finally:
        await runner.redis.aclose()


async def test_storage_off_stores_no_source_and_changes_nothing(redis_url, prefix, repo, database_url):
    runner = storage_runner(redis_url, prefix, repo, store_raw=False)
    try:
        await run_stage(runner, [classified_body(article(), raw_source=src(HTML)), classified_body(article("b"))])
        events = [json.loads(b) for b in await stream_bodies(runner.redis, f"{prefix}:enriched")]
        assert len(events) == 2 and await repo.count() == 2
        assert await source_count(database_url) == 0
        # Off, metadata goes on as it came, whatever a producer put in it.
        assert events[0]["metadata"] == {RAW_SOURCE_KEY: src(HTML)}
    finally:
        await runner.redis.aclose()


async def test_storage_on_drops_a_malformed_source_and_stores_the_article(redis_url, prefix, repo, database_url):
    runner = storage_runner(redis_url, prefix, repo, store_raw=True)
    try:
        await run_stage(runner, [classified_body(article("m1"), raw_source="just a string"),
                                 classified_body(article("m2"), raw_source={"html": 42}),
                                 classified_body(article("m3"), raw_source={"html": None, "text": None, "url": URL})])
        events = [json.loads(b) for b in await stream_bodies(runner.redis, f"{prefix}:enriched")]
        assert sorted(e["id"] for e in events) == ["m1", "m2", "m3"]
        assert all(RAW_SOURCE_KEY not in e["metadata"] for e in events)
        assert await source_count(database_url) == 0 and await repo.count() == 3
    finally:
        await runner.redis.aclose()


async def test_cleaner_stage_skips_an_oversized_source_without_failing_the_article(redis_url, prefix, repo, database_url):
    """The real cleaner stage with a small NEWSFLOW_MAX_BODY_BYTES, then classify, then the real storage stage."""
    limit = CLASSIFIER_HEADROOM_BYTES + 50_000
    r = aredis.Redis.from_url(redis_url)
    settings = Settings(stream_prefix=prefix, claim_idle_ms=200, max_body_bytes=limit)
    cleaner = StageRunner(cleaner_app.spec(ExactDuplicateIndex(r, prefix), limit, store_raw=True), settings, r, "c1")
    big = HTML.replace("<main>", "<main><!--" + "x" * 60_000 + "-->")
    try:
        await run_stage(cleaner, [{"id": "big", "html": big, "url": URL}, {"id": "small", "html": HTML, "url": URL},
                                  {"id": "wire", "text": WIRE}])
        assert await r.xlen(f"{prefix}:dlq") == 0
        cleaned = {a.id: a for a in (CleanArticle.model_validate_json(b) for b in await stream_bodies(r, f"{prefix}:cleaned"))}
        assert set(cleaned) == {"big", "small", "wire"}
        assert RAW_SOURCE_KEY not in cleaned["big"].metadata and cleaned["big"].metadata[RAW_SOURCE_SKIPPED_KEY]
        assert cleaned["small"].metadata[RAW_SOURCE_KEY]["html"] == HTML
        res: Resources = load_resources("keywords")
        storage = storage_runner(redis_url, prefix, repo, store_raw=True)
        try:
            await run_stage(storage, [classify(a, res).model_dump_json() for a in cleaned.values()])
        finally:
            await storage.redis.aclose()
        events = {json.loads(b)["id"]: json.loads(b) for b in await stream_bodies(r, f"{prefix}:enriched")}
        assert set(events) == {"big", "small", "wire"} and await r.xlen(f"{prefix}:dlq") == 0
        assert all(RAW_SOURCE_KEY not in e["metadata"] for e in events.values())
        assert events["big"]["metadata"][RAW_SOURCE_SKIPPED_KEY]["reason"] == "too_large"
        assert await repo.get_source("big") is None
        assert (await repo.get_source("small"))["html"] == HTML
        assert (await repo.get_source("wire"))["text"] == WIRE
        assert await source_count(database_url) == 2
    finally:
        await r.aclose()
