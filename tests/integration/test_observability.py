"""Metrics and probes in one process against a real Redis: what the runner counts, the stream gauges, readiness
reasons, and the probe server's answers when the event loop is stuck. (tests/e2e/test_worker_probes.py covers
the same endpoints on real worker processes.)"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import urllib.error
import urllib.request
import uuid
from typing import Any

import pytest
import redis.asyncio as aredis
from prometheus_client import REGISTRY

from shared.contract import parse_raw
from shared.settings import Settings
from shared.transport import StageRunner, StageSpec
from shared.transport.health import LOOP_TIMEOUT_S, Health, ProbeServer, ReadLoop
from shared.transport.metrics import StageMetrics, StreamGauges, refresh_or_forget
from shared.transport.reclaim import reclaim_once
from shared.transport.runner import each
from tests.integration.test_transport import echo, read_new


def value(name: str, **labels: str) -> float:
    got = REGISTRY.get_sample_value(name, labels)
    return 0.0 if got is None else got


def make_runner(redis_url: str, prefix: str, stage: str, consumer: str = "c1", **overrides: Any) -> StageRunner:
    """A stage of its own name, so this test's series start at zero in the process-wide registry."""
    settings = Settings(stream_prefix=prefix, claim_idle_ms=overrides.pop("claim_idle_ms", 10), **overrides)
    spec = StageSpec(stage, "raw", "cleaned", decode=parse_raw, process=each(echo))
    return StageRunner(spec, settings, aredis.Redis.from_url(redis_url), consumer)


def stage_name() -> str:
    return f"obs-{uuid.uuid4().hex[:8]}"


async def test_runner_counts_in_out_failures_dead_letters_and_histograms(redis_url, prefix, r):
    stage = stage_name()
    r.xadd(f"{prefix}:raw", {"body": json.dumps({"text": "one", "id": "a"})})
    r.xadd(f"{prefix}:raw", {"body": json.dumps({"text": "two", "id": "b"})})
    r.xadd(f"{prefix}:raw", {"nobody": "here"})  # dead-lettered at once: permanent
    r.xadd(f"{prefix}:raw", {"body": json.dumps({"text": "never", "id": "n"})})  # PermanentError: permanent
    r.xadd(f"{prefix}:raw", {"body": json.dumps({"text": "boom", "id": "x"})})  # a bug: transient, retried
    runner = make_runner(redis_url, prefix, stage, max_deliveries=2)
    await runner.ensure_groups()
    await runner.handle_batch(await read_new(runner))

    assert value("newsflow_messages_in_total", stage=stage) == 5
    assert value("newsflow_messages_out_total", stage=stage) == 2 == r.xlen(f"{prefix}:cleaned")
    assert value("newsflow_messages_failed_total", stage=stage, kind="permanent") == 2
    assert value("newsflow_messages_failed_total", stage=stage, kind="transient") == 1
    assert value("newsflow_dead_letters_total", stage=stage) == 2 == r.xlen(f"{prefix}:dlq")
    assert value("newsflow_batch_size_count", stage=stage) == 1
    assert value("newsflow_batch_size_sum", stage=stage) == 5
    assert value("newsflow_processing_seconds_count", stage=stage) == 5
    assert value("newsflow_processing_seconds_sum", stage=stage) > 0
    # Echo has no received_at: the age runs from the raw entry's id, which Redis stamped just now.
    assert value("newsflow_article_age_seconds_count", stage=stage) == 2
    assert 0 <= value("newsflow_article_age_seconds_sum", stage=stage) < 60

    # The failing article comes back through reclaim until it runs out of deliveries: every attempt is a transient
    # failure; giving up is a dead letter, not one more failure.
    for _ in range(4):
        await asyncio.sleep(0.03)
        await reclaim_once(runner)
    letters = [json.loads(f[b"body"]) for _, f in r.xrange(f"{prefix}:dlq")]
    assert [entry["permanent"] for entry in letters] == [True, True, False]
    assert value("newsflow_messages_failed_total", stage=stage, kind="transient") == 2
    assert value("newsflow_messages_failed_total", stage=stage, kind="permanent") == 2
    assert value("newsflow_dead_letters_total", stage=stage) == 3
    assert value("newsflow_messages_in_total", stage=stage) == 7  # 5 read, then 2 reclaimed deliveries
    assert value("newsflow_messages_out_total", stage=stage) == 2


async def test_outputs_of_entries_another_consumer_took_over_are_not_counted(redis_url, prefix, r):
    stage = stage_name()
    r.xadd(f"{prefix}:raw", {"body": json.dumps({"text": "slow", "id": "s"})})
    slow = make_runner(redis_url, prefix, stage, consumer="slow")
    await slow.ensure_groups()
    entries = await read_new(slow)
    # A peer reclaims the entry while `slow` works on it: the commit publishes nothing, so nothing is counted.
    r.xclaim(f"{prefix}:raw", f"{prefix}:{stage}", "peer", min_idle_time=0, message_ids=[entries[0].id])
    await slow.handle_batch(entries)
    assert r.xlen(f"{prefix}:cleaned") == 0
    assert value("newsflow_messages_in_total", stage=stage) == 1
    assert value("newsflow_messages_out_total", stage=stage) == 0
    assert value("newsflow_article_age_seconds_count", stage=stage) == 0


async def test_stream_gauges_from_xlen_and_xinfo_groups(redis_url, prefix, r):
    raw, cleaned, dlq = f"{prefix}:raw", f"{prefix}:cleaned", f"{prefix}:dlq"
    for i in range(5):
        r.xadd(raw, {"body": json.dumps({"text": f"t{i}", "id": f"t{i}"})})
    r.xgroup_create(raw, f"{prefix}:g1", id="0")
    r.xgroup_create(raw, f"{prefix}:g2", id="0")
    r.xreadgroup(f"{prefix}:g1", "reader", {raw: ">"}, count=2)  # 2 pending, 3 not yet delivered
    client = aredis.Redis.from_url(redis_url)
    gauges = StreamGauges(client, lengths=[raw, cleaned, dlq], groups_of=[raw, cleaned])  # cleaned does not exist
    await gauges.refresh()

    assert value("newsflow_stream_length", stream=raw) == 5
    assert value("newsflow_stream_length", stream=cleaned) == 0
    assert value("newsflow_group_pending", stream=raw, group=f"{prefix}:g1") == 2
    assert value("newsflow_group_consumers", stream=raw, group=f"{prefix}:g1") == 1
    assert value("newsflow_group_pending", stream=raw, group=f"{prefix}:g2") == 0
    has_lag = "lag" in r.xinfo_groups(raw)[0]  # Redis 7+; the embedded Redis 6.2 has none
    lag = REGISTRY.get_sample_value("newsflow_group_lag", {"stream": raw, "group": f"{prefix}:g1"})
    if has_lag:
        assert lag == 3
        assert REGISTRY.get_sample_value("newsflow_group_lag", {"stream": raw, "group": f"{prefix}:g2"}) == 5
    else:
        assert lag is None, "no lag series where Redis cannot tell the lag"

    # A group that is gone loses its series instead of showing its last figures for ever.
    r.xgroup_destroy(raw, f"{prefix}:g2")
    await gauges.refresh()
    assert REGISTRY.get_sample_value("newsflow_group_pending", {"stream": raw, "group": f"{prefix}:g2"}) is None
    assert value("newsflow_group_pending", stream=raw, group=f"{prefix}:g1") == 2

    # Redis unreachable: the stream series go away rather than go stale.
    gauges.redis = aredis.Redis(port=closed_port(), socket_connect_timeout=1)
    assert await refresh_or_forget(gauges, 2.0)
    assert REGISTRY.get_sample_value("newsflow_stream_length", {"stream": raw}) is None
    assert REGISTRY.get_sample_value("newsflow_group_pending", {"stream": raw, "group": f"{prefix}:g1"}) is None
    await client.aclose()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens there once the socket closes


class FakeSubscriber:
    """Stands in for FastStream's subscriber: `running`, and the read call ReadLoop wraps."""

    def __init__(self) -> None:
        self.running = False

    async def _xreadgroup(self, **_: Any) -> tuple:
        return ()


def health_for(redis: Any, stage: str, checks: dict | None = None) -> tuple[Health, ReadLoop, FakeSubscriber, asyncio.Event]:
    loop_probe = ReadLoop(stale_after_s=0.5)
    sub = FakeSubscriber()
    loop_probe.watch(sub)
    stopping = asyncio.Event()
    gauges = StreamGauges(redis, [], [])
    return Health(stage, redis, loop_probe, StageMetrics(stage), gauges, stopping, checks), loop_probe, sub, stopping


async def test_readiness_needs_redis_the_checks_and_a_live_read_loop(redis_url):
    stage = stage_name()
    client = aredis.Redis.from_url(redis_url)
    db_up = {"ok": True}

    async def database() -> None:
        if not db_up["ok"]:
            raise ConnectionRefusedError("connection refused")

    health, loop_probe, sub, stopping = health_for(client, stage, {"database": database})
    ready, body = await health.readiness()
    assert not ready and "subscriber is not running" in body["reason"]
    assert value("newsflow_worker_ready", stage=stage) == 0

    sub.running = True
    ready, body = await health.readiness()
    assert not ready and "no read from the stream yet" in body["checks"]["consuming"]
    await sub._xreadgroup(count=1)  # the wrapped read records the time it returned
    ready, body = await health.readiness()
    assert ready, body
    assert body["checks"] == {"redis": "ok", "database": "ok", "consuming": "ok"}
    assert value("newsflow_worker_ready", stage=stage) == 1

    db_up["ok"] = False
    ready, body = await health.readiness()
    assert not ready and body["checks"]["database"].startswith("ConnectionRefusedError")
    assert body["reason"].startswith("database:") and value("newsflow_worker_ready", stage=stage) == 0
    db_up["ok"] = True

    await asyncio.sleep(0.6)  # past stale_after_s with no read: the loop is stuck somewhere
    ready, body = await health.readiness()
    assert not ready and "last read from the stream returned" in body["checks"]["consuming"]
    with loop_probe.batch():  # ...unless it is handling a batch it read
        assert (await health.readiness())[0]
    assert (await health.readiness())[0], "a finished batch counts as a fresh read"

    stopping.set()
    ready, body = await health.readiness()
    assert not ready and "shutting down" in body["reason"]
    await client.aclose()


async def test_readiness_says_redis_when_redis_is_unreachable():
    stage = stage_name()
    client = aredis.Redis(port=closed_port(), socket_connect_timeout=1)
    health, _, sub, _ = health_for(client, stage)
    sub.running = True
    await sub._xreadgroup()
    ready, body = await health.readiness()
    assert not ready and body["checks"]["redis"] != "ok" and body["reason"].startswith("redis:")
    await client.aclose()


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=LOOP_TIMEOUT_S + 5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


@pytest.fixture
def loop_in_thread():
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield loop
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)
    loop.close()


def test_probe_server_answers_503_when_the_event_loop_is_stuck(redis_url, loop_in_thread):
    stage = stage_name()
    client = aredis.Redis.from_url(redis_url)
    health, _, sub, _ = health_for(client, stage)
    sub.running = True
    asyncio.run_coroutine_threadsafe(sub._xreadgroup(), loop_in_thread).result(5)
    server = ProbeServer(health, loop_in_thread)
    assert server.start("127.0.0.1", 0)
    base = f"http://127.0.0.1:{server.port}"
    try:
        assert get(f"{base}/healthz") == (200, json.dumps({"status": "ok", "stage": stage}))
        status, text = get(f"{base}/readyz")
        assert status == 200 and json.loads(text)["status"] == "ready"
        status, text = get(f"{base}/metrics")
        assert status == 200 and f'newsflow_worker_ready{{stage="{stage}"}} 1.0' in text
        assert get(f"{base}/nothing-here")[0] == 404

        # A runaway article blocks the loop: the probes say so instead of hanging, and /metrics still answers.
        release = threading.Event()
        loop_in_thread.call_soon_threadsafe(release.wait, 60)
        try:
            status, text = get(f"{base}/healthz")
            assert status == 503 and "did not answer" in json.loads(text)["reason"]
            status, text = get(f"{base}/readyz")
            assert status == 503 and "did not answer" in json.loads(text)["reason"]
            status, text = get(f"{base}/metrics")
            assert status == 200 and f'newsflow_worker_ready{{stage="{stage}"}} 0.0' in text
        finally:
            release.set()
        assert get(f"{base}/healthz")[0] == 200
    finally:
        server.stop()
        asyncio.run_coroutine_threadsafe(client.aclose(), loop_in_thread).result(5)


def test_a_taken_port_leaves_the_worker_without_probes_not_dead(loop_in_thread):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        health, _, _, _ = health_for(aredis.Redis(), stage_name())
        server = ProbeServer(health, loop_in_thread)
        assert server.start("127.0.0.1", taken.getsockname()[1]) is False
        assert server.port is None
        server.stop()  # a no-op, as the app's shutdown calls it


def test_observe_many_matches_repeated_observe():
    from prometheus_client import CollectorRegistry, Histogram

    from shared.transport.metrics import observe_many

    reg = CollectorRegistry()
    a = Histogram("a_seconds", "a", registry=reg, buckets=(0.001, 0.01, 0.1))
    b = Histogram("b_seconds", "b", registry=reg, buckets=(0.001, 0.01, 0.1))
    for value, times in ((0.005, 7), (0.5, 3), (0.0001, 2)):
        observe_many(a, value, times)
        for _ in range(times):
            b.observe(value)
    samples = lambda name: [(s.name.replace(name, ""), s.labels, round(s.value, 9)) for m in reg.collect()
                            if m.name == name for s in m.samples if not s.name.endswith("_created")]
    assert samples("a_seconds") == samples("b_seconds")


def test_observe_each_matches_one_observe_per_value():
    from prometheus_client import CollectorRegistry, Histogram

    from shared.transport.metrics import observe_each

    reg = CollectorRegistry()
    a = Histogram("a_seconds", "a", registry=reg, buckets=(0.001, 0.01, 0.1))
    b = Histogram("b_seconds", "b", registry=reg, buckets=(0.001, 0.01, 0.1))
    values = [0.0, 0.001, 0.0010001, 0.01, 0.05, 0.1, 0.5, 7.0, 0.0005]  # on and beside each bound, and over all
    observe_each(a, values)
    observe_each(a, [])
    for value in values:
        b.observe(value)
    samples = lambda name: [(s.name.replace(name, ""), s.labels, round(s.value, 9)) for m in reg.collect()
                            if m.name == name for s in m.samples if not s.name.endswith("_created")]
    assert samples("a_seconds") == samples("b_seconds")
