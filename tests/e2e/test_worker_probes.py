"""/healthz, /readyz and /metrics on real worker processes, each on a metrics port of its own: the counters move as
articles pass, readiness follows Redis (a test-owned redis-server, killed and restarted) and the database (behind
a TCP proxy that the test cuts), and `newsflow up` gives every stage its own port."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from tests.articles import raw_articles
from tests.conftest import ROOT, worker_env
from tests.helpers import RedisServer, Workers, free_port, proxied_database, push, stop_process, wait_until

pytestmark = pytest.mark.e2e

COUNTERS = ("newsflow_messages_in", "newsflow_messages_out", "newsflow_messages_failed", "newsflow_dead_letters")
HISTOGRAMS = ("newsflow_processing_seconds", "newsflow_batch_size", "newsflow_article_age_seconds")
GAUGES = ("newsflow_stream_length", "newsflow_group_pending", "newsflow_group_consumers", "newsflow_worker_ready")


def get(port: int, path: str) -> tuple[int | None, str]:
    """(status, body); status None while nothing answers on the port."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return None, ""


def status(port: int, path: str) -> int | None:
    return get(port, path)[0]


def samples(port: int) -> dict[tuple[str, frozenset], float]:
    code, text = get(port, "/metrics")
    assert code == 200, text
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def metric(port: int, name: str, **labels: str) -> float | None:
    return samples(port).get((name, frozenset(labels.items())))


def families(port: int) -> dict[str, str]:
    _, text = get(port, "/metrics")
    return {f.name: f.type for f in text_string_to_metric_families(text)}


def start(workers: Workers, stage: str, **extra: str) -> int:
    port = free_port()
    workers.start(stage, NEWSFLOW_METRICS_PORT=str(port), **extra)
    return port


def wait_ready(workers: Workers, port: int, what: str, timeout: float = 120) -> None:
    try:
        wait_until(lambda: status(port, "/readyz") == 200, timeout=timeout, what=f"{what} ready")
    except AssertionError:
        print(get(port, "/readyz"), workers.logs())
        raise


def test_probes_and_metrics_move_as_articles_pass(redis_url, prefix, r, tmp_path):
    w = Workers(worker_env(redis_url, prefix, f"sqlite:///{tmp_path / 'probes.db'}", tmp_path), tmp_path)
    try:
        ports = {stage: start(w, stage) for stage in ("cleaner", "classifier", "storage")}
        for stage, port in ports.items():
            wait_ready(w, port, stage)
            code, text = get(port, "/healthz")
            assert code == 200 and json.loads(text)["stage"] == stage
            code, text = get(port, "/readyz")
            checks = json.loads(text)["checks"]
            assert checks["redis"] == checks["consuming"] == "ok"
            assert (checks.get("database") == "ok") == (stage == "storage")
            kinds = families(port)
            for name in COUNTERS:
                assert kinds.get(name) == "counter", (stage, name)
            for name in HISTOGRAMS:
                assert kinds.get(name) == "histogram", (stage, name)
            for name in GAUGES:
                assert kinds.get(name) == "gauge", (stage, name)
            assert metric(port, "newsflow_messages_in_total", stage=stage) == 0
            assert metric(port, "newsflow_messages_failed_total", stage=stage, kind="transient") == 0
            assert metric(port, "newsflow_worker_ready", stage=stage) == 1
        cleaner, classifier, storage = ports["cleaner"], ports["classifier"], ports["storage"]

        articles = raw_articles(30, seed=61)
        push(r, f"{prefix}:raw", articles)
        r.xadd(f"{prefix}:raw", {"headline": "an entry with no body"})
        wait_until(lambda: r.xlen(f"{prefix}:enriched") >= 30 and r.xlen(f"{prefix}:dlq") >= 1, timeout=120,
                   what="articles through and the bad entry dead-lettered")
        wait_until(lambda: metric(storage, "newsflow_messages_out_total", stage="storage") == 30, timeout=30,
                   what="storage's counter")

        assert metric(cleaner, "newsflow_messages_in_total", stage="cleaner") == 31
        assert metric(cleaner, "newsflow_messages_out_total", stage="cleaner") == 30
        assert metric(cleaner, "newsflow_messages_failed_total", stage="cleaner", kind="permanent") == 1
        assert metric(cleaner, "newsflow_messages_failed_total", stage="cleaner", kind="transient") == 0
        assert metric(cleaner, "newsflow_dead_letters_total", stage="cleaner") == 1
        for stage in ("classifier", "storage"):
            port = ports[stage]
            assert metric(port, "newsflow_messages_in_total", stage=stage) == 30
            assert metric(port, "newsflow_messages_out_total", stage=stage) == 30
            assert metric(port, "newsflow_dead_letters_total", stage=stage) == 0
        for stage, port in ports.items():
            articles_in = 31 if stage == "cleaner" else 30
            assert metric(port, "newsflow_processing_seconds_count", stage=stage) == articles_in
            assert metric(port, "newsflow_batch_size_sum", stage=stage) == articles_in
            assert metric(port, "newsflow_article_age_seconds_count", stage=stage) == 30
            assert 0 < metric(port, "newsflow_article_age_seconds_sum", stage=stage) < 30 * 120

        # Stream gauges, read on scrape: the stage's input and output streams and the DLQ.
        assert metric(cleaner, "newsflow_stream_length", stream=f"{prefix}:dlq") == 1
        assert metric(storage, "newsflow_stream_length", stream=f"{prefix}:enriched") == 30
        group = {"stream": f"{prefix}:classified", "group": f"{prefix}:storage"}
        assert metric(storage, "newsflow_group_pending", **group) == 0
        assert metric(storage, "newsflow_group_consumers", **group) == 1
        assert metric(classifier, "newsflow_group_consumers", **group) == 1, "the feeding stage shows the group too"
        if "lag" in r.xinfo_groups(f"{prefix}:classified")[0]:
            assert metric(storage, "newsflow_group_lag", **group) == 0
        assert status(cleaner, "/no-such-path") == 404
    finally:
        w.stop()


def kill_redis(server: RedisServer) -> None:
    """SIGKILL, not SHUTDOWN: the way a crashed Redis goes away."""
    pid = int((server.folder / "redis.pid").read_text())
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: not server._ping(), timeout=20, what="redis to die")


def test_readiness_follows_redis_going_away_and_coming_back(tmp_path, prefix):
    server = RedisServer(tmp_path)
    server.start()
    r = redis.Redis.from_url(server.url)
    w = Workers(worker_env(server.url, prefix, f"sqlite:///{tmp_path / 'r.db'}", tmp_path), tmp_path)
    try:
        port = start(w, "cleaner")
        wait_ready(w, port, "cleaner")
        kill_redis(server)
        wait_until(lambda: status(port, "/readyz") == 503, timeout=60, what="not ready without Redis")
        code, text = get(port, "/readyz")
        body = json.loads(text)
        assert body["status"] == "unavailable" and body["checks"]["redis"] != "ok" and "redis" in body["reason"]
        assert status(port, "/healthz") == 200, "alive without Redis: a restart would not bring Redis back"
        assert metric(port, "newsflow_worker_ready", stage="cleaner") == 0
        assert metric(port, "newsflow_stream_length", stream=f"{prefix}:raw") is None, "no stale stream figures"

        server.start()
        wait_until(lambda: status(port, "/readyz") == 200, timeout=90, what="ready again once Redis is back")
        assert metric(port, "newsflow_worker_ready", stage="cleaner") == 1
        push(r, f"{prefix}:raw", raw_articles(3, seed=71))
        wait_until(lambda: r.xlen(f"{prefix}:cleaned") >= 3, timeout=60, what="consuming again")
        assert w.alive() == ["cleaner-0"]
    finally:
        w.stop()
        server.stop()


def test_storage_is_not_ready_while_the_database_is_unreachable(redis_url, prefix, r, tmp_path, pg_url):
    proxy, db_url = proxied_database(pg_url)
    w = Workers(worker_env(redis_url, prefix, db_url, tmp_path), tmp_path)
    try:
        port = start(w, "storage")
        wait_ready(w, port, "storage")
        proxy.kill()
        wait_until(lambda: status(port, "/readyz") == 503, timeout=60, what="not ready without the database")
        body = json.loads(get(port, "/readyz")[1])
        assert body["checks"]["database"] != "ok" and body["reason"].startswith("database:")
        assert body["checks"]["redis"] == "ok"
        assert status(port, "/healthz") == 200
        proxy.start()
        wait_until(lambda: status(port, "/readyz") == 200, timeout=60, what="ready once the database is back")
    finally:
        w.stop()
        proxy.kill()


def consecutive_free_ports(n: int) -> int:
    import socket

    for _ in range(50):
        base = free_port()
        if base + n > 65535:
            continue
        try:
            socks = []
            for port in range(base, base + n):
                s = socket.socket()
                socks.append(s)
                s.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise AssertionError(f"no {n} consecutive free ports")


def test_up_gives_each_stage_its_own_metrics_port(redis_url, prefix, r, tmp_path):
    base = consecutive_free_ports(2)
    env = worker_env(redis_url, prefix, f"sqlite:///{tmp_path / 'up.db'}", tmp_path, NEWSFLOW_METRICS_PORT=str(base))
    log = tmp_path / "up.log"
    up = subprocess.Popen([sys.executable, "-m", "services.cli", "up", "--stages", "cleaner,classifier"], env=env,
                          cwd=ROOT, stdout=open(log, "wb"), stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: status(base, "/readyz") == 200 and status(base + 1, "/readyz") == 200, timeout=120,
                   what="both stages ready on their ports")
        announced = dict(re.findall(r"newsflow: (\w+) serves /healthz, /readyz and /metrics on http://[\d.]+:(\d+)",
                                    Path(log).read_text()))
        assert announced == {"cleaner": str(base), "classifier": str(base + 1)}
        for stage, port in (("cleaner", base), ("classifier", base + 1)):
            assert json.loads(get(port, "/healthz")[1])["stage"] == stage
            assert metric(port, "newsflow_worker_ready", stage=stage) == 1
        push(r, f"{prefix}:raw", raw_articles(2, seed=81))
        wait_until(lambda: r.xlen(f"{prefix}:classified") >= 2, timeout=60, what="articles through `up`")
        assert metric(base + 1, "newsflow_messages_out_total", stage="classifier") == 2
    finally:
        stop_process(up)
