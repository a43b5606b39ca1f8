"""The reliability core against a real Redis: groups at 0, atomic publish+ack, reclaim, retries, DLQ, purge."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import pytest
import redis.asyncio as aredis
from pydantic import BaseModel

from shared import tracing
from shared.contract import RawArticle, parse_raw
from shared.errors import PermanentError
from shared.settings import Settings
from shared.topology import Topology
from shared.transport import Entry, Outcome, StageRunner, StageSpec
from shared.transport import admin
from shared.transport.reclaim import heartbeat, purge_dead_consumers, reclaim_once
from shared.transport.runner import each


class Echo(BaseModel):
    id: str
    text: str


def echo(entry: Entry, raw: BaseModel) -> Echo:
    assert isinstance(raw, RawArticle)
    if raw.text == "boom":
        raise RuntimeError("a bug in the stage")
    if raw.text == "never":
        raise PermanentError("cannot ever clean this")
    return Echo(id=raw.article_id(), text=raw.text.upper())


def make_runner(redis_url: str, prefix: str, consumer: str = "c1", process: Any = None, **overrides: Any) -> StageRunner:
    settings = Settings(stream_prefix=prefix, claim_idle_ms=overrides.pop("claim_idle_ms", 200), **overrides)
    spec = StageSpec("cleaner", "raw", "cleaned", decode=parse_raw, process=process or each(echo))
    return StageRunner(spec, settings, aredis.Redis.from_url(redis_url), consumer)


async def read_new(runner: StageRunner, count: int = 100) -> list[Entry]:
    reply = await runner.redis.xreadgroup(runner.group, runner.consumer, {runner.input_stream: ">"}, count=count)
    return [Entry(i.decode(), f) for _, entries in reply for i, f in entries]


def bodies(r, stream: str) -> list[dict]:
    return [json.loads(f[b"body"]) for _, f in r.xrange(stream)]


async def test_group_created_at_zero_sees_entries_pushed_before_start(redis_url, prefix, r):
    r.xadd(f"{prefix}:raw", {"body": json.dumps({"text": "early bird", "id": "a1"})})
    runner = make_runner(redis_url, prefix)
    await runner.ensure_groups()
    await runner.ensure_groups()  # idempotent
    entries = await read_new(runner)
    assert [json.loads(e.fields[b"body"])["id"] for e in entries] == ["a1"]
    await runner.handle_batch(entries)
    assert bodies(r, f"{prefix}:cleaned") == [{"id": "a1", "text": "EARLY BIRD"}]
    assert r.xpending(f"{prefix}:raw", f"{prefix}:cleaner")["pending"] == 0


async def test_metadata_fields_travel_and_correlation_id_defaults(redis_url, prefix, r):
    parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    r.xadd(f"{prefix}:raw", {"body": json.dumps({"text": "x", "id": "m1"}), "correlation_id": "corr-9", "traceparent": parent})
    r.xadd(f"{prefix}:raw", {"body": json.dumps({"text": "y", "id": "m2"})})
    runner = make_runner(redis_url, prefix)
    await runner.ensure_groups()
    await runner.handle_batch(await read_new(runner))
    out = [f for _, f in r.xrange(f"{prefix}:cleaned")]
    assert out[0][b"correlation_id"] == b"corr-9"
    # The same trace, this stage's own span id (shared/tracing.py); an entry without one starts a trace.
    traceparent = out[0][b"traceparent"].decode()
    assert traceparent[:36] == parent[:36] and traceparent[36:52] != parent[36:52] and traceparent[-3:] == "-01"
    assert out[1][b"correlation_id"] == b"m2"
    assert tracing.parse(out[1][b"traceparent"]) is not None
    assert b"__data__" not in out[0], "FastStream's envelope must not leak into public streams"


BAD = {
    "no body": {"text": "no body field"},
    "invalid JSON": {"body": "{not json"},
    "array": {"body": "[1, 2]"},
    "string": {"body": '"just a string"'},
    "null": {"body": "null"},
    "no text or html": {"body": json.dumps({"title": "only a title"})},
    "html not a string": {"body": json.dumps({"html": {"nested": True}})},
    "invalid UTF-8": {"body": b'{"text": "\xff\xfe bad"}'},
    "too deep": {"body": "[" * 100_000 + "]" * 100_000},
    "12 MB page": {"body": json.dumps({"html": "<p>" + "x" * (12 * 1024 * 1024) + "</p>"})},
}


async def test_bad_entries_are_dead_lettered_with_reason_and_good_ones_pass(redis_url, prefix, r):
    stream = f"{prefix}:raw"
    for i, (name, fields) in enumerate(BAD.items()):
        r.xadd(stream, {"body": json.dumps({"text": f"good {i}", "id": f"g{i}"})})
        r.xadd(stream, {**fields, "case": name})
    runner = make_runner(redis_url, prefix)
    await runner.ensure_groups()
    await runner.handle_batch(await read_new(runner, 1000))
    assert sorted(b["id"] for b in bodies(r, f"{prefix}:cleaned")) == sorted(f"g{i}" for i in range(len(BAD)))
    letters = {b["original"]["case"]: b for b in bodies(r, f"{prefix}:dlq")}
    assert set(letters) == set(BAD)
    assert "no 'body'" in letters["no body"]["error"]
    assert "not valid JSON" in letters["invalid JSON"]["error"]
    assert "JSON object" in letters["array"]["error"] and "JSON object" in letters["null"]["error"]
    assert "html" in letters["no text or html"]["error"] and "text" in letters["no text or html"]["error"]
    assert "html" in letters["html not a string"]["error"]
    assert "UTF-8" in letters["invalid UTF-8"]["error"]
    assert "nested too deeply" in letters["too deep"]["error"]
    assert "limit" in letters["12 MB page"]["error"]
    for letter in letters.values():
        assert letter["stage"] == "cleaner" and letter["attempts"] == 1 and letter["source_stream"] == stream
    utf = letters["invalid UTF-8"]
    assert utf["original_encoding"] == {"body": "base64"}
    assert base64.b64decode(utf["original"]["body"]) == b'{"text": "\xff\xfe bad"}'
    assert r.xpending(stream, f"{prefix}:cleaner")["pending"] == 0


async def test_lenient_fields_are_dropped_not_dead_lettered(redis_url, prefix, r):
    r.xadd(f"{prefix}:raw", {"body": json.dumps({"text": "kept", "id": "l1", "published_at": "not a date", "metadata": [1]})})
    runner = make_runner(redis_url, prefix)
    await runner.ensure_groups()
    await runner.handle_batch(await read_new(runner))
    assert [b["id"] for b in bodies(r, f"{prefix}:cleaned")] == ["l1"]
    assert r.xlen(f"{prefix}:dlq") == 0


async def test_permanent_error_in_stage_dead_letters_only_that_article(redis_url, prefix, r):
    for text in ("one", "never", "three"):
        r.xadd(f"{prefix}:raw", {"body": json.dumps({"text": text, "id": text})})
    runner = make_runner(redis_url, prefix)
    await runner.ensure_groups()
    await runner.handle_batch(await read_new(runner))
    assert [b["id"] for b in bodies(r, f"{prefix}:cleaned")] == ["one", "three"]
    assert [b["error"] for b in bodies(r, f"{prefix}:dlq")] == ["cannot ever clean this"]


async def test_failing_article_is_retried_then_dead_lettered_after_max_deliveries(redis_url, prefix, r):
    r.xadd(f"{prefix}:raw", {"body": json.dumps({"text": "fine", "id": "ok"})})
    r.xadd(f"{prefix}:raw", {"body": json.dumps({"text": "boom", "id": "bad"})})
    runner = make_runner(redis_url, prefix, max_deliveries=3, claim_idle_ms=10)
    await runner.ensure_groups()
    await runner.handle_batch(await read_new(runner))
    assert [b["id"] for b in bodies(r, f"{prefix}:cleaned")] == ["ok"]
    assert r.xpending(f"{prefix}:raw", f"{prefix}:cleaner")["pending"] == 1  # left for a retry
    for _ in range(5):
        await asyncio.sleep(0.05)
        await reclaim_once(runner)
    letters = bodies(r, f"{prefix}:dlq")
    assert len(letters) == 1
    assert letters[0]["attempts"] == 4 and letters[0]["permanent"] is False
    assert "gave up after 3 deliveries" in letters[0]["error"] and "RuntimeError: a bug in the stage" in letters[0]["error"]
    assert r.xpending(f"{prefix}:raw", f"{prefix}:cleaner")["pending"] == 0
    assert [b["id"] for b in bodies(r, f"{prefix}:cleaned")] == ["ok"]


async def test_dead_consumers_entries_are_reclaimed_by_a_new_consumer(redis_url, prefix, r):
    for i in range(30):
        r.xadd(f"{prefix}:raw", {"body": json.dumps({"text": f"t{i}", "id": f"r{i}"})})
    dead = make_runner(redis_url, prefix, consumer="old-pod")
    await dead.ensure_groups()
    assert len(await read_new(dead, 1000)) == 30  # read, then "killed" before processing
    fresh = make_runner(redis_url, prefix, consumer="new-pod", claim_idle_ms=100)
    assert await reclaim_once(fresh) == 0  # not idle long enough yet
    await asyncio.sleep(0.15)
    assert await reclaim_once(fresh) == 30
    assert sorted(b["id"] for b in bodies(r, f"{prefix}:cleaned")) == sorted(f"r{i}" for i in range(30))
    assert r.xpending(f"{prefix}:raw", f"{prefix}:cleaner")["pending"] == 0


async def test_heartbeat_keeps_live_work_from_being_reclaimed(redis_url, prefix, r):
    r.xadd(f"{prefix}:raw", {"body": json.dumps({"text": "slow", "id": "s1"})})
    busy = make_runner(redis_url, prefix, consumer="busy", claim_idle_ms=200)
    await busy.ensure_groups()
    entries = await read_new(busy)
    busy.in_flight.update(e.id for e in entries)
    thief = make_runner(redis_url, prefix, consumer="thief", claim_idle_ms=200)
    for _ in range(4):
        await asyncio.sleep(0.1)
        await heartbeat(busy)
        assert await reclaim_once(thief) == 0
    info = r.xpending_range(f"{prefix}:raw", f"{prefix}:cleaner", "-", "+", 10)
    assert info[0]["consumer"] == b"busy" and info[0]["times_delivered"] == 1


async def test_transient_dependency_errors_wait_without_burning_deliveries(redis_url, prefix, r):
    calls = {"n": 0}
    inner = each(echo)

    async def flaky(items):
        calls["n"] += 1
        if calls["n"] <= 3:
            raise ConnectionError("database is down")
        return await inner(items)

    r.xadd(f"{prefix}:raw", {"body": json.dumps({"text": "patient", "id": "p1"})})
    runner = make_runner(redis_url, prefix, process=flaky)
    await runner.ensure_groups()
    await runner.handle_batch(await read_new(runner))
    assert calls["n"] == 4
    assert [b["id"] for b in bodies(r, f"{prefix}:cleaned")] == ["p1"]
    assert r.xlen(f"{prefix}:dlq") == 0


async def test_idle_consumers_with_nothing_pending_are_purged(redis_url, prefix, r):
    runner = make_runner(redis_url, prefix, consumer="me", consumer_idle_purge_ms=1000)
    await runner.ensure_groups()
    r.xadd(f"{prefix}:raw", {"body": json.dumps({"text": "x", "id": "x"})})
    r.xreadgroup(f"{prefix}:cleaner", "gone-pod", {f"{prefix}:raw": ">"})  # owns one pending entry
    r.xgroup_createconsumer(f"{prefix}:raw", f"{prefix}:cleaner", "empty-pod")  # owns nothing
    await asyncio.sleep(1.1)
    assert await purge_dead_consumers(runner) == ["empty-pod"]
    names = {c["name"].decode() for c in r.xinfo_consumers(f"{prefix}:raw", f"{prefix}:cleaner")}
    assert names == {"gone-pod"}, "a consumer with pending entries is kept until they are reclaimed"


async def test_dlq_replay_republishes_original_fields_and_removes_the_letter(redis_url, prefix, r):
    r.xadd(f"{prefix}:raw", {"body": json.dumps({"text": "never", "id": "n1"}), "correlation_id": "c-1"})
    runner = make_runner(redis_url, prefix)
    await runner.ensure_groups()
    await runner.handle_batch(await read_new(runner))
    topo = Topology(prefix)
    [letter] = admin.dlq_list(r, topo)
    assert admin.dlq_show(r, topo, letter["id"])["error"] == "cannot ever clean this"
    assert admin.dlq_replay(r, topo, stage="classifier") == []  # filtered out
    assert admin.dlq_replay(r, topo, ids=[letter["id"]]) == [letter["id"]]
    assert r.xlen(topo.dlq) == 0
    _, fields = r.xrange(topo.raw)[-1]
    assert json.loads(fields[b"body"]) == {"text": "never", "id": "n1"} and fields[b"correlation_id"] == b"c-1"
    # The cause is fixed (here: a stage that accepts it), and the replayed entry flows through.
    fixed = make_runner(redis_url, prefix, process=each(lambda e, raw: Echo(id=raw.article_id(), text="fixed")))
    await fixed.handle_batch(await read_new(fixed))
    assert [b["id"] for b in bodies(r, topo.cleaned)] == ["n1"]


async def test_status_reports_lengths_pending_lag_and_oldest_age(redis_url, prefix, r):
    runner = make_runner(redis_url, prefix)
    await runner.ensure_groups()
    for i in range(3):
        r.xadd(f"{prefix}:raw", {"body": json.dumps({"text": "x", "id": f"s{i}"})})
    await read_new(runner, 2)
    info = admin.status(r, Topology(prefix))["streams"][f"{prefix}:raw"]
    assert info["length"] == 3
    [g] = info["groups"]
    assert g["pending"] == 2 and g["lag"] in (1, None) and g["oldest_pending_age_s"] is not None


async def test_trim_never_drops_entries_a_group_has_not_read_or_acked(redis_url, prefix, r):
    from shared.transport.reclaim import safe_trim_id

    runner = make_runner(redis_url, prefix, stream_retention_s=0)
    await runner.ensure_groups()
    stream = f"{prefix}:raw"
    for i in range(10):
        r.xadd(stream, {"body": json.dumps({"text": "x", "id": f"t{i}"})})
    r.xgroup_create(stream, "downstream-slow", id="0")  # another group that has read nothing
    entries = await read_new(runner, 6)
    await runner.handle_batch(entries[:3])  # 3 acked, 3 pending, 4 unread
    first = r.xrange(stream, count=1)[0][0].decode()
    assert _id(await safe_trim_id(runner.redis, stream, 0)) <= _id(first), "the slow group has read nothing"
    r.xgroup_destroy(stream, "downstream-slow")
    minid = await safe_trim_id(runner.redis, stream, 0)
    assert _id(minid) == _id(entries[3].id), "up to, and never past, our oldest pending entry"
    r.xtrim(stream, minid=minid, approximate=False)  # exact, so the check bites
    remaining = [e[0].decode() for e in r.xrange(stream)]
    assert [e.id for e in entries[3:]] == remaining[: 3] and len(remaining) == 7


def _id(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq)


async def test_an_output_that_cannot_be_serialised_dead_letters_only_its_entry(redis_url, prefix, r):
    deep: dict = {}
    node = deep
    for _ in range(400):
        node["k"] = {}
        node = node["k"]
    r.xadd(f"{prefix}:raw", {"body": json.dumps({"text": "fine", "id": "ok1"})})
    r.xadd(f"{prefix}:raw", {"body": json.dumps({"text": "deep", "id": "deep", "metadata": deep})})
    r.xadd(f"{prefix}:raw", {"body": json.dumps({"text": "fine", "id": "ok2"})})
    runner = make_runner(redis_url, prefix, process=each(lambda e, raw: raw))
    await runner.ensure_groups()
    outcomes = await runner.handle_batch(await read_new(runner))
    by_id = {o.article_id: o for o in outcomes}
    if by_id["deep"].dead_letter is None:
        pytest.skip("this pydantic serialises 400 levels; nothing to dead-letter")
    assert sorted(json.loads(f[b"body"])["id"] for _, f in r.xrange(f"{prefix}:cleaned")) == ["ok1", "ok2"]
    assert "could not be serialised" in bodies(r, f"{prefix}:dlq")[0]["error"]


async def test_reclaim_skips_entries_deleted_while_pending(redis_url, prefix, r):
    ids = [r.xadd(f"{prefix}:raw", {"body": json.dumps({"text": f"t{i}", "id": f"d{i}"})}).decode() for i in range(5)]
    dead = make_runner(redis_url, prefix, consumer="dead")
    await dead.ensure_groups()
    await read_new(dead)
    r.xdel(f"{prefix}:raw", ids[1], ids[3])
    fresh = make_runner(redis_url, prefix, consumer="fresh", claim_idle_ms=10)
    await asyncio.sleep(0.05)
    assert await reclaim_once(fresh) == 3
    assert sorted(b["id"] for b in bodies(r, f"{prefix}:cleaned")) == ["d0", "d2", "d4"]
    assert r.xpending(f"{prefix}:raw", f"{prefix}:cleaner")["pending"] == 0


async def test_delivery_counts_are_per_entry_even_among_our_own_pending_entries(redis_url, prefix, r):
    r.xadd(f"{prefix}:raw", {"body": json.dumps({"text": "boom", "id": "old"})})
    runner = make_runner(redis_url, prefix, consumer="me", max_deliveries=3, claim_idle_ms=10)
    await runner.ensure_groups()
    await read_new(runner)
    for _ in range(3):  # "old" is now delivered 4 times
        r.xclaim(f"{prefix}:raw", f"{prefix}:cleaner", "me", 0, [r.xrange(f"{prefix}:raw")[0][0]])
    for i in range(20):  # many fresh entries of ours, pending, in the same id range
        r.xadd(f"{prefix}:raw", {"body": json.dumps({"text": "fine", "id": f"n{i}"})})
    await read_new(runner)
    await asyncio.sleep(0.05)
    await reclaim_once(runner)
    letters = bodies(r, f"{prefix}:dlq")
    assert [json.loads(letter["original"]["body"])["id"] for letter in letters] == ["old"]
    assert letters[0]["attempts"] == 5


async def test_redis_out_of_memory_is_waited_out_not_dead_lettered(tmp_path, prefix):
    from tests.helpers import RedisServer

    server = RedisServer(tmp_path)
    server.start()
    r = __import__("redis").Redis.from_url(server.url)
    try:
        r.xadd(f"{prefix}:raw", {"body": json.dumps({"text": "hello", "id": "m1"})})
        runner = make_runner(server.url, prefix)
        await runner.ensure_groups()
        entries = await read_new(runner)
        r.config_set("maxmemory-policy", "noeviction")
        r.config_set("maxmemory", 1)
        task = asyncio.create_task(runner.handle_batch(entries))
        await asyncio.sleep(1.0)
        assert not task.done(), f"the commit waits while Redis refuses writes, not {task.exception()!r}"
        r.config_set("maxmemory", 0)
        await asyncio.wait_for(task, 30)
        assert [b["id"] for b in bodies(r, f"{prefix}:cleaned")] == ["m1"]
        assert r.xlen(f"{prefix}:dlq") == 0
    finally:
        server.stop()


async def test_a_worker_overtaken_by_a_reclaim_does_not_publish_a_second_copy(redis_url, prefix, r):
    r.xadd(f"{prefix}:raw", {"body": json.dumps({"text": "slow", "id": "s1"})})
    slow = make_runner(redis_url, prefix, consumer="slow")
    await slow.ensure_groups()
    entries = await read_new(slow)
    thief = make_runner(redis_url, prefix, consumer="thief", claim_idle_ms=10)
    await asyncio.sleep(0.05)  # the slow worker's heartbeat did not run in time
    assert await reclaim_once(thief) == 1
    await slow.handle_batch(entries)  # finishes late: it no longer owns the entry
    assert [b["id"] for b in bodies(r, f"{prefix}:cleaned")] == ["s1"]
    assert r.xpending(f"{prefix}:raw", f"{prefix}:cleaner")["pending"] == 0


async def test_a_retried_commit_publishes_once(redis_url, prefix, r):
    r.xadd(f"{prefix}:raw", {"body": json.dumps({"text": "once", "id": "o1"})})
    r.xadd(f"{prefix}:raw", {"text": "no body"})
    runner = make_runner(redis_url, prefix)
    await runner.ensure_groups()
    outcomes = await runner._decide(await read_new(runner))
    await runner._commit(outcomes)
    await runner._commit(outcomes)  # as after a lost reply
    assert len(bodies(r, f"{prefix}:cleaned")) == 1 and r.xlen(f"{prefix}:dlq") == 1


async def test_reclaimed_entries_stay_under_the_heartbeat_while_they_wait(redis_url, prefix, r):
    from shared.transport.reclaim import heartbeat

    for i in range(5):
        r.xadd(f"{prefix}:raw", {"body": json.dumps({"text": f"t{i}", "id": f"h{i}"})})
    dead = make_runner(redis_url, prefix, consumer="dead")
    await dead.ensure_groups()
    await read_new(dead)
    seen_in_flight: list[set[str]] = []

    async def slow(items):
        seen_in_flight.append(set(heir.in_flight))
        await heartbeat(heir)
        return await each(echo)(items)

    heir = make_runner(redis_url, prefix, consumer="heir", claim_idle_ms=10, process=slow)
    await asyncio.sleep(0.05)
    assert await reclaim_once(heir) == 5
    assert len(seen_in_flight[0]) == 5, "every claimed entry is heartbeated, not only the batch at hand"
    assert heir.in_flight == set()
    assert len(bodies(r, f"{prefix}:cleaned")) == 5


async def test_purge_never_deletes_a_consumer_that_just_read_entries(redis_url, prefix, r):
    from shared.transport.reclaim import PURGE_LUA

    runner = make_runner(redis_url, prefix)
    await runner.ensure_groups()
    r.xadd(f"{prefix}:raw", {"body": json.dumps({"text": "x", "id": "p1"})})
    r.xreadgroup(f"{prefix}:cleaner", "busy-pod", {f"{prefix}:raw": ">"})  # reads after a purge saw it empty
    purge = runner.redis.register_script(PURGE_LUA)
    assert await purge(keys=[f"{prefix}:raw"], args=[f"{prefix}:cleaner", "busy-pod"]) == -1
    assert r.xpending(f"{prefix}:raw", f"{prefix}:cleaner")["pending"] == 1


async def test_articles_picked_first_are_committed_before_the_rest_is_processed(redis_url, prefix, r):
    """The cleaner's plain text before its HTML pages: when the slow group starts, the quick group's outputs are
    already published and acked, and the batch's dead letter went with them."""
    seen_when_slow_started: list[list[str]] = []

    async def process(items):
        if any(m.text.startswith("page") for _, m in items):
            seen_when_slow_started.append([b["id"] for b in bodies(r, f"{prefix}:cleaned")])
            assert r.xlen(f"{prefix}:dlq") == 1
        return [Outcome(e, output=echo(e, m), article_id=m.id) for e, m in items]

    for i, text in enumerate(["page one", "short one", "page two", "short two"]):
        r.xadd(f"{prefix}:raw", {"body": json.dumps({"text": text, "id": f"f{i}"})})
    r.xadd(f"{prefix}:raw", {"body": "not json"})
    runner = make_runner(redis_url, prefix, process=process)
    runner.spec.first = lambda m: not m.text.startswith("page")
    await runner.ensure_groups()
    outcomes = await runner.handle_batch(await read_new(runner))
    assert seen_when_slow_started == [["f1", "f3"]]
    assert [b["id"] for b in bodies(r, f"{prefix}:cleaned")] == ["f1", "f3", "f0", "f2"]
    assert len(outcomes) == 5 and r.xpending(f"{prefix}:raw", f"{prefix}:cleaner")["pending"] == 0


async def test_an_offloaded_stage_leaves_the_event_loop_free(redis_url, prefix, r):
    """A CPU-bound article (a pure-Python loop, 0.5 s) in an offloaded stage: other tasks of the worker, such as
    the heartbeat, still run while it works; inline, the same loop would hold the event loop throughout."""
    import time

    def spin(entry: Entry, raw: BaseModel) -> Echo:
        end = time.perf_counter() + 0.5
        while time.perf_counter() < end:
            pass
        return echo(entry, raw)

    async def ticks_during(process) -> int:
        r.delete(f"{prefix}:raw", f"{prefix}:cleaned")
        r.xadd(f"{prefix}:raw", {"body": json.dumps({"text": "heavy", "id": "cpu1"})})
        runner = make_runner(redis_url, prefix, process=process)
        await runner.ensure_groups()
        entries = await read_new(runner)
        count = 0

        async def ticker() -> None:
            nonlocal count
            while True:
                await asyncio.sleep(0.01)
                count += 1

        task = asyncio.create_task(ticker())
        await asyncio.sleep(0)
        await runner.handle_batch(entries)
        task.cancel()
        await runner.redis.aclose()
        assert [b["id"] for b in bodies(r, f"{prefix}:cleaned")] == ["cpu1"]
        return count

    assert await ticks_during(each(spin)) <= 1
    assert await ticks_during(each(spin, offload=True)) >= 5


async def test_run_yielding_stays_on_the_main_thread_and_lets_the_loop_in_between_articles(redis_url, prefix, r):
    """The cleaner's way: its extraction time limit needs the main thread; the loop still runs between articles."""
    import threading

    from shared.transport.runner import run_yielding

    threads: list[bool] = []
    ticks = 0

    def work(entry: Entry, raw: BaseModel) -> Echo:
        threads.append(threading.current_thread() is threading.main_thread())
        return echo(entry, raw)

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0)
            ticks += 1

    for i in range(3):
        r.xadd(f"{prefix}:raw", {"body": json.dumps({"text": f"t{i}", "id": f"y{i}"})})
    runner = make_runner(redis_url, prefix, process=lambda items: run_yielding(work, items))
    await runner.ensure_groups()
    entries = await read_new(runner)
    task = asyncio.create_task(ticker())
    await asyncio.sleep(0)
    start = ticks
    await runner.handle_batch(entries)
    task.cancel()
    assert threads == [True, True, True] and ticks - start >= 3
    assert [b["id"] for b in bodies(r, f"{prefix}:cleaned")] == ["y0", "y1", "y2"]


async def test_a_short_article_arriving_during_the_pages_of_a_batch_is_committed_between_two_of_them(redis_url, prefix, r):
    """`first` with `peek` (the cleaner): while the batch's pages are processed, a plain-text newcomer is read and
    committed before the batch's last page; a page newcomer waits for the batch to end, in the same call."""
    import time

    from shared.transport.runner import PEEK_INTERVAL_S, run_yielding

    def work(entry: Entry, raw: BaseModel) -> Echo:
        assert isinstance(raw, RawArticle)
        if raw.text.startswith("page"):
            if raw.text == "page one":  # two articles arrive while the batch's first page is being extracted
                r.xadd(f"{prefix}:raw", {"body": json.dumps({"text": "late short", "id": "late1"})})
                r.xadd(f"{prefix}:raw", {"body": json.dumps({"text": "page late", "id": "late2"})})
            time.sleep(PEEK_INTERVAL_S * 2)  # extraction takes longer than the peek interval
        return echo(entry, raw)

    for i, text in enumerate(["page one", "page two", "page three", "short one"]):
        r.xadd(f"{prefix}:raw", {"body": json.dumps({"text": text, "id": f"b{i}"})})
    runner = make_runner(redis_url, prefix, process=lambda items: run_yielding(work, items))
    runner.spec.first = lambda m: not m.text.startswith("page")
    runner.spec.peek = True
    await runner.ensure_groups()
    outcomes = await runner.handle_batch(await read_new(runner))
    order = [b["id"] for b in bodies(r, f"{prefix}:cleaned")]
    assert order[0] == "b3"  # the batch's own short article first
    assert order.index("late1") < order.index("b2")  # the newcomer did not wait for the batch's last page
    assert order[-1] == "late2"  # a page newcomer after the batch, in the same call
    # Returned: the batch's outcomes and the deferred newcomer's; the one committed in between is counted.
    assert len({o.entry.id for o in outcomes}) == 5 and runner.in_flight == set() and runner._deferred == []
    assert r.xpending(f"{prefix}:raw", f"{prefix}:cleaner")["pending"] == 0
    assert runner.counters.processed == 6


async def test_without_peek_a_newcomer_waits_for_the_next_read(redis_url, prefix, r):
    from shared.transport.runner import run_yielding

    def work(entry: Entry, raw: BaseModel) -> Echo:
        if raw.text == "page one":
            r.xadd(f"{prefix}:raw", {"body": json.dumps({"text": "late short", "id": "late1"})})
        return echo(entry, raw)

    for i, text in enumerate(["page one", "page two"]):
        r.xadd(f"{prefix}:raw", {"body": json.dumps({"text": text, "id": f"n{i}"})})
    runner = make_runner(redis_url, prefix, process=lambda items: run_yielding(work, items))
    runner.spec.first = lambda m: not m.text.startswith("page")
    await runner.ensure_groups()
    await runner.handle_batch(await read_new(runner))
    assert [b["id"] for b in bodies(r, f"{prefix}:cleaned")] == ["n0", "n1"]
    assert r.xlen(f"{prefix}:raw") == 3 and r.xpending(f"{prefix}:raw", f"{prefix}:cleaner")["pending"] == 0


def _slow_pages(redis_url: str, prefix: str, r, count: int, tag: str) -> StageRunner:
    """`count` pages in the input, and a runner with batches of 3 that peeks between pages slower than the peek
    interval, as the cleaner does."""
    import time

    from shared.transport.runner import PEEK_INTERVAL_S, run_yielding

    def work(entry: Entry, raw: BaseModel) -> Echo:
        time.sleep(PEEK_INTERVAL_S * 1.5)
        return echo(entry, raw)

    for i in range(count):
        r.xadd(f"{prefix}:raw", {"body": json.dumps({"text": f"page {i}", "id": f"{tag}{i}"})})
    runner = make_runner(redis_url, prefix, process=lambda items: run_yielding(work, items), batch_size=3)
    runner.spec.first = lambda m: not m.text.startswith("page")
    runner.spec.peek = True
    return runner


async def test_peeks_hold_at_most_one_more_batch_in_flight(redis_url, prefix, r):
    """Under a backlog every peek would find a full batch: what peeks defer stays within one batch's worth, the
    deferred batches peek in turn until nothing is left, and handle_batch returns the outcomes of the batch and of
    the first batch deferred only, so that a call lasting as long as the load holds no more than two batches."""
    runner = _slow_pages(redis_url, prefix, r, 12, "q")
    held = []
    peek = runner._peek

    async def counting_peek() -> None:
        await peek()
        held.append(len(runner.in_flight))

    runner._peek = counting_peek
    await runner.ensure_groups()
    outcomes = await runner.handle_batch(await read_new(runner, 3))
    assert len(outcomes) == 6  # the batch and the first batch's worth read by peeks
    assert held and max(held) <= 6, "never more than two batches in flight"
    assert r.xpending(f"{prefix}:raw", f"{prefix}:cleaner")["pending"] == 0 and runner.in_flight == set()
    assert [b["id"] for b in bodies(r, f"{prefix}:cleaned")] == [f"q{i}" for i in range(12)]
    assert runner.counters.processed == 12


async def test_the_reclaim_loops_call_handles_what_peeks_defer_once_and_returns(redis_url, prefix, r):
    """drain=False (reclaim.py): the deferred entries are handled once, without peeking, so the call returns to
    the reclaim loop's other work under any load; the rest waits for the read loop."""
    runner = _slow_pages(redis_url, prefix, r, 12, "d")
    await runner.ensure_groups()
    outcomes = await runner.handle_batch(await read_new(runner, 3), drain=False)
    assert len(outcomes) == 6 and runner._deferred == [] and runner.in_flight == set()
    assert [b["id"] for b in bodies(r, f"{prefix}:cleaned")] == [f"d{i}" for i in range(6)]


async def test_a_deferred_batch_whose_commit_fails_is_not_kept_in_flight(redis_url, prefix, r):
    """Entries still in flight are claimed again by the heartbeat: a deferred batch that failed must leave the set,
    or reclaim would never see it."""
    runner = _slow_pages(redis_url, prefix, r, 6, "e")
    commit, calls = runner._commit, {"n": 0}

    async def failing_second_commit(outcomes):
        calls["n"] += bool(outcomes)  # a peek that found only pages commits nothing
        if outcomes and calls["n"] == 2:
            raise RuntimeError("Redis refused the commit")
        return await commit(outcomes)

    runner._commit = failing_second_commit
    await runner.ensure_groups()
    with pytest.raises(RuntimeError):
        await runner.handle_batch(await read_new(runner, 3))
    assert runner.in_flight == {e.id for e, _ in runner._deferred}  # only what a peek deferred meanwhile
    assert r.xpending(f"{prefix}:raw", f"{prefix}:cleaner")["pending"] == 3


async def test_a_failed_peek_is_logged_and_never_fails_the_batch_in_progress(redis_url, prefix, r):
    import time

    from structlog.testing import capture_logs

    from shared.transport.runner import PEEK_INTERVAL_S, run_yielding

    def work(entry: Entry, raw: BaseModel) -> Echo:
        time.sleep(PEEK_INTERVAL_S * 1.5)
        return echo(entry, raw)

    for i in range(3):
        r.xadd(f"{prefix}:raw", {"body": json.dumps({"text": f"page {i}", "id": f"f{i}"})})
    runner = make_runner(redis_url, prefix, process=lambda items: run_yielding(work, items))
    runner.spec.first = lambda m: not m.text.startswith("page")
    runner.spec.peek = True
    await runner.ensure_groups()
    entries = await read_new(runner)

    async def broken(*args, **kwargs):
        raise aredis.ConnectionError("Redis went away for a moment")

    runner.redis.xreadgroup = broken  # the peek's read fails; the batch's commit does not use it
    with capture_logs() as logs:
        outcomes = await runner.handle_batch(entries)
    assert [o.output is not None for o in outcomes] == [True, True, True]
    assert "peek_failed" in [e["event"] for e in logs]
    assert [b["id"] for b in bodies(r, f"{prefix}:cleaned")] == ["f0", "f1", "f2"]


async def test_an_offloaded_stage_peeks_between_two_articles_too(redis_url, prefix, r):
    """The classifier's case: long articles in a worker thread, one hop each while peeking; a brief that arrives
    meanwhile is committed before the last long article, and the stage's code never runs in two threads at once."""
    import threading
    import time

    from shared.transport.runner import PEEK_INTERVAL_S

    running = threading.Lock()

    def work(entry: Entry, raw: BaseModel) -> Echo:
        assert running.acquire(blocking=False), "two threads in the stage's code at once"
        try:
            if raw.text == "long one":
                r.xadd(f"{prefix}:raw", {"body": json.dumps({"text": "brief late", "id": "late1"})})
            if raw.text.startswith("long"):
                time.sleep(PEEK_INTERVAL_S * 2)
            return echo(entry, raw)
        finally:
            running.release()

    for i, text in enumerate(["long one", "long two", "long three"]):
        r.xadd(f"{prefix}:raw", {"body": json.dumps({"text": text, "id": f"t{i}"})})
    runner = make_runner(redis_url, prefix, process=each(work, offload=True))
    runner.spec.first = lambda m: not m.text.startswith("long")
    runner.spec.peek = True
    await runner.ensure_groups()
    await runner.handle_batch(await read_new(runner))
    order = [b["id"] for b in bodies(r, f"{prefix}:cleaned")]
    assert order.index("late1") < order.index("t2") and sorted(order) == ["late1", "t0", "t1", "t2"]
    assert r.xpending(f"{prefix}:raw", f"{prefix}:cleaner")["pending"] == 0 and runner.in_flight == set()
