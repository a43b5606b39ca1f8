"""Unhappy paths with real processes: SIGKILLed workers, a Redis restart, the database going away, garbage input."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import time

import pytest
import redis

from tests.articles import raw_articles
from tests.conftest import worker_env
from tests.helpers import RedisServer, Workers, pg_value, proxied_database, push, read_bodies, wait_until

pytestmark = pytest.mark.e2e

FAST = {"NEWSFLOW_CLAIM_IDLE_MS": "1500", "NEWSFLOW_CLAIM_INTERVAL_MS": "300", "NEWSFLOW_SHUTDOWN_TIMEOUT_S": "5"}
CHAOS_ARTICLES = int(os.environ.get("NEWSFLOW_CHAOS_ARTICLES", "3000"))


def kill_holding_work(r: redis.Redis, proc, stream: str, group: str, consumer: str) -> int:
    """SIGKILL a worker at a moment it holds entries (read, not acked); return how many it held."""
    for _ in range(500):
        proc.send_signal(signal.SIGSTOP)
        held = [c["pending"] for c in r.xinfo_consumers(stream, group) if c["name"].decode() == consumer]
        if held and held[0] > 0:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            return held[0]
        proc.send_signal(signal.SIGCONT)
        time.sleep(0.01)
    raise AssertionError(f"{consumer} never held work")


def enriched_ids(r: redis.Redis, prefix: str) -> list[str]:
    return [b["id"] for b in read_bodies(r, f"{prefix}:enriched")]


def db_counts(path) -> tuple[int, int]:
    with sqlite3.connect(path) as db:
        return db.execute("SELECT count(*), count(DISTINCT id) FROM articles").fetchone()


def test_chaos_sigkill_workers_mid_stream_loses_nothing(redis_url, prefix, r, tmp_path):
    db = tmp_path / "chaos.db"
    w = Workers(worker_env(redis_url, prefix, f"sqlite:///{db}", tmp_path, **FAST), tmp_path)
    try:
        cleaner = w.start("cleaner", "cleaner-a")
        classifier = w.start("classifier", "classifier-a")
        w.start("storage", "storage-a")
        w.start("cleaner", "cleaner-b")
        articles = raw_articles(CHAOS_ARTICLES, seed=11)
        half = len(articles) // 2
        push(r, f"{prefix}:raw", articles[:half])
        wait_until(lambda: r.xlen(f"{prefix}:cleaned") > 100, timeout=120, what="work in flight")
        held = kill_holding_work(r, cleaner, f"{prefix}:raw", f"{prefix}:cleaner", "cleaner-a")
        push(r, f"{prefix}:raw", articles[half:])
        wait_until(lambda: r.xlen(f"{prefix}:classified") > 100, timeout=120, what="classifier in flight")
        held += kill_holding_work(r, classifier, f"{prefix}:cleaned", f"{prefix}:classifier", "classifier-a")
        kills = 2
        # New pods: new consumer names, so only reclaim can hand them the dead ones' entries.
        w.start("cleaner", "cleaner-c")
        w.start("classifier", "classifier-c")
        wanted = {a["id"] for a in articles}
        try:
            wait_until(lambda: wanted <= set(enriched_ids(r, prefix)), timeout=300, interval=0.5, what="every article enriched")
            wait_until(lambda: db_counts(db)[0] >= len(wanted), timeout=60, what="every row stored")
        except AssertionError:
            print(w.logs())
            raise
        ids = enriched_ids(r, prefix)
        rows, distinct = db_counts(db)
        print(f"\nchaos: articles={len(wanted)} kills={kills} held_by_killed={held} rows={rows} distinct_rows={distinct} "
              f"enriched_events={len(ids)} duplicate_events={len(ids) - len(set(ids))}")
        assert rows == distinct == len(wanted)
        assert set(ids) == wanted
        assert len(ids) == len(wanted), "publish and ack share a transaction: the kills left no duplicate events"
        assert r.xlen(f"{prefix}:dlq") == 0
        assert sorted(w.alive()) == ["classifier-c", "cleaner-b", "cleaner-c", "storage-a"]
    finally:
        w.stop()


def test_redis_restart_mid_run_every_accepted_article_arrives(tmp_path, prefix):
    server = RedisServer(tmp_path)
    server.start()
    r = redis.Redis.from_url(server.url)
    db = tmp_path / "restart.db"
    w = Workers(worker_env(server.url, prefix, f"sqlite:///{db}", tmp_path, **FAST), tmp_path)
    try:
        for stage in ("cleaner", "classifier", "storage"):
            w.start(stage)
        articles = raw_articles(1200, seed=21)
        push(r, f"{prefix}:raw", articles[:600])
        wait_until(lambda: r.xlen(f"{prefix}:enriched") > 50, timeout=120, what="pipeline running")
        server.stop()
        time.sleep(2)  # the workers see Redis gone
        server.start()
        push(r, f"{prefix}:raw", articles[600:])
        wanted = {a["id"] for a in articles}
        try:
            wait_until(lambda: wanted <= set(enriched_ids(r, prefix)), timeout=240, interval=0.5, what="every article after restart")
        except AssertionError:
            print(w.logs())
            raise
        assert db_counts(db) == (1200, 1200)
        assert sorted(w.alive()) == ["classifier-1", "cleaner-0", "storage-2"], "no worker died of the restart"
        assert r.xlen(f"{prefix}:dlq") == 0
    finally:
        w.stop()
        server.stop()


def test_database_down_keeps_entries_pending_then_stores_them_all(redis_url, prefix, r, tmp_path, pg_url):
    proxy, db_url = proxied_database(pg_url)
    w = Workers(worker_env(redis_url, prefix, db_url, tmp_path, **FAST), tmp_path)
    try:
        for stage in ("cleaner", "classifier", "storage", "storage"):  # two storage replicas
            w.start(stage)
        articles = raw_articles(400, seed=31)
        push(r, f"{prefix}:raw", articles[:100])
        wait_until(lambda: r.xlen(f"{prefix}:enriched") >= 100, timeout=120, what="first articles stored")
        proxy.kill()
        push(r, f"{prefix}:raw", articles[100:])
        wait_until(lambda: r.xlen(f"{prefix}:classified") >= 400, timeout=120, what="classified while the DB is down")
        time.sleep(4)  # well past the claim idle time (1.5 s)
        assert r.xlen(f"{prefix}:enriched") == 100
        assert r.xlen(f"{prefix}:dlq") == 0
        waiting = r.xpending_range(f"{prefix}:classified", f"{prefix}:storage", "-", "+", 1000)
        assert waiting, "storage holds the entries while the database is away"
        # Heartbeats keep each live replica's claim: nobody reclaimed them, no delivery was burnt.
        assert {row["times_delivered"] for row in waiting} == {1}
        proxy.start()
        try:
            wait_until(lambda: len(set(enriched_ids(r, prefix))) >= 400, timeout=120, interval=0.5, what="stored after the DB came back")
        except AssertionError:
            print(w.logs())
            raise
        ids = enriched_ids(r, prefix)
        assert len(ids) == len(set(ids)) == 400, "one announcement per article"
        assert r.xlen(f"{prefix}:dlq") == 0
        assert {"storage-2", "storage-3"} <= set(w.alive())
        assert pg_value(pg_url, "SELECT count(DISTINCT id) FROM articles") == 400
    finally:
        w.stop()
        proxy.kill()


def test_garbage_input_is_dead_lettered_and_workers_survive(redis_url, prefix, r, tmp_path):
    from tests.integration.test_transport import BAD

    w = Workers(worker_env(redis_url, prefix, f"sqlite:///{tmp_path / 'bad.db'}", tmp_path, **FAST), tmp_path)
    try:
        for stage in ("cleaner", "classifier", "storage"):
            w.start(stage)
        good = raw_articles(40, seed=41)
        stream = f"{prefix}:raw"
        for i, (name, fields) in enumerate(BAD.items()):
            r.xadd(stream, {"body": json.dumps(good[i])})
            r.xadd(stream, {**fields, "case": name})
        push(r, stream, good[len(BAD):])
        # Straight into a later stage too: a classified entry that breaks the contract.
        r.xadd(f"{prefix}:cleaned", {"body": json.dumps({"id": "x", "text": 5}), "case": "bad cleaned"})
        wait_until(lambda: len(set(enriched_ids(r, prefix))) >= 40, timeout=120, what="good articles")
        wait_until(lambda: r.xlen(f"{prefix}:dlq") >= len(BAD) + 1, timeout=60, what="dead letters")
        letters = {b["original"]["case"]: b for b in read_bodies(r, f"{prefix}:dlq")}
        assert set(letters) == set(BAD) | {"bad cleaned"}
        assert letters["bad cleaned"]["stage"] == "classifier"
        assert all(letter["error"] for letter in letters.values())
        assert len(w.alive()) == 3
    finally:
        w.stop()


def test_sigterm_is_graceful_and_acks_what_was_finished(redis_url, prefix, r, tmp_path):
    w = Workers(worker_env(redis_url, prefix, f"sqlite:///{tmp_path / 'g.db'}", tmp_path, **FAST), tmp_path)
    try:
        proc = w.start("cleaner")
        push(r, f"{prefix}:raw", raw_articles(300, seed=51))
        wait_until(lambda: r.xlen(f"{prefix}:cleaned") > 0, timeout=60, what="cleaner working")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        assert "worker_stopped" in (tmp_path / "cleaner-0.log").read_text()
        w.start("cleaner", "cleaner-next")
        wait_until(lambda: r.xlen(f"{prefix}:cleaned") >= 300, timeout=120, what="the rest cleaned by the next worker")
        ids = [b["id"] for b in read_bodies(r, f"{prefix}:cleaned")]
        # Publish and ack share one MULTI/EXEC, so a graceful stop leaves no duplicates behind.
        assert len(ids) == len(set(ids)) == 300
        wait_until(lambda: r.xpending(f"{prefix}:raw", f"{prefix}:cleaner")["pending"] == 0, timeout=30, what="nothing pending")
    finally:
        w.stop()
