"""Cleaner, classifier and storage as three separate OS processes; articles pushed with plain redis-py."""

from __future__ import annotations

import sqlite3

import pytest

from tests.articles import raw_articles
from tests.conftest import worker_env
from tests.helpers import Workers, push, read_bodies, wait_until

REQUIRED = {"id", "url", "source", "title", "text", "language", "published_at", "dateline", "topics", "places",
            "entities", "keywords", "word_count", "duplicate_of", "stored_at", "schema_version"}

pytestmark = pytest.mark.e2e


@pytest.fixture
def workers(redis_url, prefix, tmp_path):
    env = worker_env(redis_url, prefix, f"sqlite:///{tmp_path / 'e2e.db'}", tmp_path, NEWSFLOW_CLAIM_IDLE_MS="3000")
    w = Workers(env, tmp_path)
    yield w
    w.stop()


def test_500_articles_arrive_once_each(workers, r, prefix, tmp_path):
    for stage in ("cleaner", "classifier", "storage"):
        workers.start(stage)
    articles = raw_articles(500)
    push(r, f"{prefix}:raw", articles)

    def arrived():
        return len(read_bodies(r, f"{prefix}:enriched")) >= 500

    try:
        wait_until(arrived, timeout=180, what="500 enriched articles")
    except AssertionError:
        print(workers.logs())
        raise
    bodies = read_bodies(r, f"{prefix}:enriched")
    ids = [b["id"] for b in bodies]
    assert len(ids) == 500 and len(set(ids)) == 500, "each article exactly once in enriched"
    assert set(ids) == {a["id"] for a in articles}
    for body in bodies:
        missing = REQUIRED - body.keys()
        assert not missing, missing
        assert body["text"] and body["language"] == "en" and body["dateline"]["agency"]
        assert body["schema_version"] == 1
    assert r.xlen(f"{prefix}:dlq") == 0
    rows = sqlite3.connect(tmp_path / "e2e.db").execute("SELECT count(*), count(DISTINCT id) FROM articles").fetchone()
    assert rows == (500, 500)
    assert sorted(workers.alive()) == ["classifier-1", "cleaner-0", "storage-2"]
    # Nothing left pending in any group.
    for stream, group in ((f"{prefix}:raw", f"{prefix}:cleaner"), (f"{prefix}:cleaned", f"{prefix}:classifier"), (f"{prefix}:classified", f"{prefix}:storage")):
        assert r.xpending(stream, group)["pending"] == 0
