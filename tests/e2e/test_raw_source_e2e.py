"""NEWSFLOW_STORE_RAW through real cleaner, classifier and storage worker processes on the real Redis: the raw
HTML ends up in article_sources and nowhere in the enriched events or the `doc` column."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from tests.conftest import worker_env
from tests.helpers import Workers, push, read_bodies, wait_until

pytestmark = pytest.mark.e2e

HTML = (Path(__file__).resolve().parents[2] / "services" / "samples" / "storm-lisbon.html").read_text(encoding="utf-8")
# A marker that only the raw page holds: the cleaner's extraction drops the sidebar.
SIDEBAR = "Ten recipes for winter"
WIRE = "PARIS (AFP) -- The council met on Tuesday to discuss next year's budget, officials said on Wednesday."
MAX_BODY = 200_000  # the cleaner leaves 64 KB for the classifier: a 150 KB page's source does not fit


def articles() -> list[dict]:
    big = HTML.replace("<main>", "<main><!--" + "x" * 150_000 + "-->")
    return [
        {"id": "page", "html": HTML, "url": "https://coastal.example/storm", "source": "coastal"},
        {"id": "wire", "text": WIRE, "url": "https://wire.example/1", "source": "afp"},
        {"id": "big", "html": big, "url": "https://coastal.example/big", "source": "coastal"},
    ]


def run(tmp_path, redis_url, prefix, r, store_raw: str) -> tuple[Workers, list[dict], sqlite3.Connection]:
    db = tmp_path / "raw.db"
    env = worker_env(redis_url, prefix, f"sqlite:///{db}", tmp_path, NEWSFLOW_STORE_RAW=store_raw,
                     NEWSFLOW_MAX_BODY_BYTES=str(MAX_BODY), NEWSFLOW_CLASSIFIER="keywords")
    workers = Workers(env, tmp_path)
    for stage in ("cleaner", "classifier", "storage"):
        workers.start(stage)
    push(r, f"{prefix}:raw", articles())
    try:
        wait_until(lambda: len(read_bodies(r, f"{prefix}:enriched")) >= 3, timeout=120, what="3 enriched articles")
    except AssertionError:
        print(workers.logs())
        workers.stop()
        raise
    return workers, read_bodies(r, f"{prefix}:enriched"), sqlite3.connect(db)


def test_store_raw_on_keeps_the_raw_source_out_of_events_and_doc(tmp_path, redis_url, prefix, r):
    workers, events, db = run(tmp_path, redis_url, prefix, r, "1")
    try:
        assert sorted(e["id"] for e in events) == ["big", "page", "wire"]
        for event in events:
            assert "raw_source" not in event["metadata"] and SIDEBAR not in json.dumps(event)
        assert r.xlen(f"{prefix}:dlq") == 0
        sources = {row[0]: row[1:] for row in db.execute("SELECT article_id, url, html, text FROM article_sources")}
        assert sources == {"page": ("https://coastal.example/storm", HTML, None),
                           "wire": ("https://wire.example/1", None, WIRE)}
        # The oversized source was skipped and the article stored, with a note saying why.
        big = next(e for e in events if e["id"] == "big")
        assert big["metadata"]["raw_source_skipped"]["reason"] == "too_large" and big["text"]
        for article_id, doc in db.execute("SELECT id, doc FROM articles"):
            assert "raw_source" not in json.loads(doc)["metadata"] and SIDEBAR not in doc, article_id

        # A re-delivery of the page (a new raw entry, same content) keeps one row; a sentinel pushed after it
        # tells when the storage worker has been through it.
        push(r, f"{prefix}:raw", [articles()[0], {"id": "sentinel", "text": WIRE.replace("council", "senate")}])
        wait_until(lambda: any(e["id"] == "sentinel" for e in read_bodies(r, f"{prefix}:enriched")),
                   timeout=60, what="the sentinel")
        wait_until(lambda: r.xpending(f"{prefix}:classified", f"{prefix}:storage")["pending"] == 0,
                   timeout=60, what="storage to ack everything")
        assert db.execute("SELECT count(*) FROM article_sources WHERE article_id = 'page'").fetchone() == (1,)
        assert db.execute("SELECT html FROM article_sources WHERE article_id = 'page'").fetchone() == (HTML,)
        assert [e["id"] for e in read_bodies(r, f"{prefix}:enriched")].count("page") == 1  # unchanged: not announced
        assert r.xlen(f"{prefix}:dlq") == 0
    finally:
        db.close()
        workers.stop()


def test_store_raw_off_stores_no_source(tmp_path, redis_url, prefix, r):
    workers, events, db = run(tmp_path, redis_url, prefix, r, "0")
    try:
        assert sorted(e["id"] for e in events) == ["big", "page", "wire"]
        assert all("raw_source" not in e["metadata"] and "raw_source_skipped" not in e["metadata"] for e in events)
        assert db.execute("SELECT count(*) FROM article_sources").fetchone() == (0,)  # the table is there, empty
        assert db.execute("SELECT count(*) FROM articles").fetchone() == (3,)
    finally:
        db.close()
        workers.stop()
