"""The fenced commit (shared/transport/commit.py) on a real Redis: it publishes and acks what is ours in one
transaction, and writes nothing when an entry is not ours any more, or a claim or another commit of ours comes
between its check and EXEC; the runner then commits with the script, exactly once. Claims bump the group's fence,
commits the consumer's; a refused ACL falls back for good, having written nothing."""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest
import redis.asyncio as aredis
import redis.exceptions

from shared.transport import commit as commit_module
from shared.transport.app import redis_client
from shared.transport.commit import Record, Target, fence_key, fenced_commit
from shared.transport.reclaim import heartbeat, reclaim_once
from shared.transport.runner import StageRunner
from tests.integration.test_transport import bodies, make_runner, read_new


def _target(prefix: str, consumer: str = "me") -> Target:
    return Target(stream=f"{prefix}:in", group="g", consumer=consumer, output=f"{prefix}:out", dlq=f"{prefix}:dlq",
                  errors=f"{prefix}:errors", fence=fence_key(prefix, "test"), own_fence=fence_key(prefix, "test", consumer),
                  maxlen=1_000_000, errors_ttl=60)


def _setup(r, prefix: str, n: int) -> list[str]:
    ids = [r.xadd(f"{prefix}:in", {"body": f'{{"n": {i}}}'}).decode() for i in range(n)]
    r.xgroup_create(f"{prefix}:in", "g", id="0")
    return ids


async def _fenced(redis_url: str, target: Target, records: list[Record]) -> tuple[int, int] | None:
    client = redis_client(redis_url)
    try:
        result = await fenced_commit(client, target, records)
        await _assert_clean(client, target)
        return result
    finally:
        await client.aclose()


async def _assert_clean(client: aredis.Redis, target: Target) -> None:
    """The pool's connection came back with no WATCH, no MULTI and no reply unread: after both fences move, a
    transaction on it runs, and a plain command answers its own reply."""
    await client.incr(target.fence)
    await client.incr(target.own_fence)
    probe = f"{target.stream}:probe:{uuid.uuid4().hex}"
    async with client.pipeline(transaction=True) as pipe:
        pipe.incr(probe)
        assert await pipe.execute() == [1]
    assert await client.get(probe) == b"1"


def _claim_after_the_check(monkeypatch, r, stream: str, group: str, entry_id: str, fence: str) -> None:
    """Once the first commit's check has said "ours", a peer claims `entry_id`, bumping the group's fence as every
    newsflow claim does, before the commit's MULTI ... EXEC arrives."""
    original = commit_module.read_replies
    calls = {"n": 0}

    async def claim_after_the_check(conn, n):
        replies = await original(conn, n)
        calls["n"] += 1
        if calls["n"] == 1:
            with r.pipeline(transaction=True) as pipe:
                pipe.xclaim(stream, group, "peer", 0, [entry_id], justid=True)
                pipe.incr(fence)
                pipe.execute()
        return replies

    monkeypatch.setattr(commit_module, "read_replies", claim_after_the_check)


async def test_publishes_dead_letters_and_acks_in_one_transaction(r, prefix, redis_url):
    ids = _setup(r, prefix, 3)
    r.xreadgroup("g", "me", {f"{prefix}:in": ">"}, count=3)
    r.hset(f"{prefix}:errors", ids[0], "an earlier attempt's error")
    records = [Record(ids[0], "out", {"body": b"\x00\xff raw", "n": 5, "text": "é"}, redelivered=True),
               Record(ids[1], "dlq", {"body": "{}"}), Record(ids[2], "done", {})]
    assert await _fenced(redis_url, _target(prefix), records) == (1, 1)
    (_, got), = r.xrange(f"{prefix}:out")
    assert got == {b"body": b"\x00\xff raw", b"n": b"5", b"text": "é".encode()}
    assert [f for _, f in r.xrange(f"{prefix}:dlq")] == [{b"body": b"{}"}]
    assert r.xpending(f"{prefix}:in", "g")["pending"] == 0
    assert r.hget(f"{prefix}:errors", ids[0]) is None, "the ack takes the entry's error note with it"


async def test_an_entry_of_another_consumer_means_nothing_is_written(r, prefix, redis_url):
    ids = _setup(r, prefix, 2)
    r.xreadgroup("g", "me", {f"{prefix}:in": ">"}, count=1)
    r.xreadgroup("g", "other", {f"{prefix}:in": ">"}, count=1)
    records = [Record(i, "out", {"body": i}) for i in ids]
    assert await _fenced(redis_url, _target(prefix), records) is None
    assert r.xlen(f"{prefix}:out") == 0 and r.xpending(f"{prefix}:in", "g")["pending"] == 2


async def test_a_claim_between_the_check_and_exec_aborts_the_transaction(r, prefix, redis_url, monkeypatch):
    ids = _setup(r, prefix, 2)
    r.xreadgroup("g", "me", {f"{prefix}:in": ">"}, count=2)
    _claim_after_the_check(monkeypatch, r, f"{prefix}:in", "g", ids[1], fence_key(prefix, "test"))
    records = [Record(i, "out", {"body": i}) for i in ids]
    assert await _fenced(redis_url, _target(prefix), records) is None
    assert r.xlen(f"{prefix}:out") == 0, "EXEC aborted: nothing published, not even the entry still ours"
    assert r.xpending(f"{prefix}:in", "g")["pending"] == 2


async def test_a_batch_out_of_order_is_checked_over_its_whole_id_range(r, prefix, redis_url):
    # A reclaimed batch, or one a peek deferred, need not be in id order; ids of different lengths compare as
    # numbers ("9-0" < "10-0"), and one entry of another consumer in the middle of the range is seen.
    ids = [r.xadd(f"{prefix}:in", {"body": "x"}, id=i).decode() for i in ("9-5", "9-10", "10-0", "10-2")]
    r.xgroup_create(f"{prefix}:in", "g", id="0")
    r.xreadgroup("g", "me", {f"{prefix}:in": ">"}, count=4)
    order = [ids[2], ids[0], ids[3], ids[1]]
    assert commit_module.id_range(order) == ("9-5", "10-2")
    assert await _fenced(redis_url, _target(prefix), [Record(i, "out", {"body": i}) for i in order]) == (4, 0)
    assert r.xpending(f"{prefix}:in", "g")["pending"] == 0

    more = [r.xadd(f"{prefix}:in", {"body": "y"}, id=i).decode() for i in ("11-0", "11-1", "12-0")]
    r.xreadgroup("g", "me", {f"{prefix}:in": ">"}, count=1)
    r.xreadgroup("g", "other", {f"{prefix}:in": ">"}, count=1)
    r.xreadgroup("g", "me", {f"{prefix}:in": ">"}, count=1)
    assert await _fenced(redis_url, _target(prefix), [Record(more[2], "out", {"body": "b"}),
                                                      Record(more[0], "out", {"body": "a"})]) == (2, 0)
    assert await _fenced(redis_url, _target(prefix), [Record(more[1], "out", {"body": "c"})]) is None


async def test_a_check_that_comes_back_full_leaves_the_batch_to_the_script(r, prefix, redis_url):
    # XPENDING answers at most 4n+16 entries: with more of ours pending in the range, an id could be missing from
    # a full reply, so a full reply is no proof.
    ids = _setup(r, prefix, 30)
    r.xreadgroup("g", "me", {f"{prefix}:in": ">"}, count=30)
    assert await _fenced(redis_url, _target(prefix), [Record(ids[0], "out", {"body": "a"}),
                                                      Record(ids[-1], "out", {"body": "z"})]) is None
    assert r.xlen(f"{prefix}:out") == 0


async def test_a_batch_with_an_entry_to_retry_is_left_to_the_script(r, prefix, redis_url):
    ids = _setup(r, prefix, 2)
    r.xreadgroup("g", "me", {f"{prefix}:in": ">"}, count=2)
    records = [Record(ids[0], "out", {"body": "x"}), Record(ids[1], "retry", {"error": "boom"})]
    assert await _fenced(redis_url, _target(prefix), records) is None
    assert r.xlen(f"{prefix}:out") == 0


async def test_two_commits_of_one_consumer_that_overlap_publish_once(r, prefix, redis_url, monkeypatch):
    """The main loop and the reclaim loop of one worker may commit the same entry at once (a stall past
    claim_idle_ms, then XAUTOCLAIM to ourselves): both checks pass before either EXEC. The first EXEC bumps the
    consumer's fence, so the second aborts."""
    ids = _setup(r, prefix, 1)
    r.xreadgroup("g", "me", {f"{prefix}:in": ">"})
    original = commit_module.read_replies
    checked = {"n": 0}
    both_checked = asyncio.Event()

    async def check_then_wait(conn, n):
        replies = await original(conn, n)
        if n == 3:  # WATCH, check, MULTI: hold the EXEC until the other commit has checked too
            checked["n"] += 1
            if checked["n"] == 2:
                both_checked.set()
            await both_checked.wait()
        return replies

    monkeypatch.setattr(commit_module, "read_replies", check_then_wait)
    records = [Record(ids[0], "out", {"body": "x"})]
    results = await asyncio.gather(_fenced(redis_url, _target(prefix), records), _fenced(redis_url, _target(prefix), records))
    assert sorted(results, key=str) == [(1, 0), None]
    assert r.xlen(f"{prefix}:out") == 1


async def test_a_batch_with_dead_letters_first_is_still_fenced(r, prefix, redis_url):
    """The runner puts a batch's dead letters before its outputs, so its ids are not in order; the check finds the
    batch's range by itself."""
    r.xadd(f"{prefix}:raw", {"body": json.dumps({"text": "t0", "id": "a0"})})
    r.xadd(f"{prefix}:raw", {"body": "not json"})
    r.xadd(f"{prefix}:raw", {"body": json.dumps({"text": "t2", "id": "a2"})})
    runner = make_runner(redis_url, prefix)
    await runner.ensure_groups()
    await runner.handle_batch(await read_new(runner))
    assert (runner.counters.fenced_commits, runner.counters.script_commits) == (1, 0)
    assert [b["id"] for b in bodies(r, f"{prefix}:cleaned")] == ["a0", "a2"] and r.xlen(f"{prefix}:dlq") == 1


async def test_the_runner_commits_once_when_the_fence_trips(r, prefix, redis_url, monkeypatch):
    """A claim between the check and EXEC: the runner's script commit then publishes what is still ours, once,
    and skips the entry the peer took."""
    for i in range(3):
        r.xadd(f"{prefix}:raw", {"body": json.dumps({"text": f"t{i}", "id": f"a{i}"})})
    runner = make_runner(redis_url, prefix, consumer="me")
    await runner.ensure_groups()
    entries = await read_new(runner)
    _claim_after_the_check(monkeypatch, r, f"{prefix}:raw", f"{prefix}:cleaner", entries[2].id, runner.target.fence)
    await runner.handle_batch(entries)
    assert [b["id"] for b in bodies(r, f"{prefix}:cleaned")] == ["a0", "a1"]
    assert (runner.counters.fenced_commits, runner.counters.script_commits) == (0, 1)
    pending = r.xpending_range(f"{prefix}:raw", f"{prefix}:cleaner", "-", "+", 10)
    assert [(p["message_id"].decode(), p["consumer"]) for p in pending] == [(entries[2].id, b"peer")]


@pytest.mark.parametrize("refused", ["watch", "multi"])
async def test_a_refused_acl_turns_the_fenced_commit_off_and_the_script_commits(r, prefix, redis_url, refused):
    """A Redis user that may not WATCH, or may not open MULTI: the fenced commit writes nothing (a refused MULTI
    would otherwise run the XADDs one by one, outside any transaction), and the script commits, once."""
    r.xadd(f"{prefix}:raw", {"body": json.dumps({"text": "t", "id": "a"})})
    user = f"nftest-{uuid.uuid4().hex[:8]}"
    r.acl_setuser(user, enabled=True, nopass=True, commands=["+@all", f"-{refused}"], keys=["*"], channels=["*"])
    try:
        ready = make_runner(redis_url, prefix)
        await ready.ensure_groups()
        client = aredis.Redis.from_url(redis_url, username=user, password="")
        runner = StageRunner(ready.spec, ready.settings, client, "c1")
        script, replies = runner._script, []

        async def recording(**kwargs):
            replies.append(await script(**kwargs))
            return replies[-1]

        runner._script = recording
        await runner.handle_batch(await read_new(runner))
        assert not runner.fenced and (runner.counters.fenced_commits, runner.counters.script_commits) == (0, 1)
        # The script acked and published the entry itself: the refused fenced commit had written nothing.
        assert [list(map(int, reply)) for reply in replies] == [[1, 0, 0, 1, 0]]
        assert [b["id"] for b in bodies(r, f"{prefix}:cleaned")] == ["a"]
        assert r.xpending(f"{prefix}:raw", f"{prefix}:cleaner")["pending"] == 0
        await client.aclose()
    finally:
        r.acl_deluser(user)


async def test_the_setting_turns_the_fenced_commit_off(r, prefix, redis_url):
    r.xadd(f"{prefix}:raw", {"body": json.dumps({"text": "t", "id": "a"})})
    runner = make_runner(redis_url, prefix, fenced_commit=False)
    await runner.ensure_groups()
    await runner.handle_batch(await read_new(runner))
    assert (runner.counters.fenced_commits, runner.counters.script_commits) == (0, 1)


async def test_a_commit_retried_after_redis_went_away_goes_through_the_script(r, prefix, redis_url, monkeypatch):
    """The fenced attempt's reply was lost: it may have gone through, so the retry is the script's, which skips what
    was acked then. Here it went through: nothing is published twice."""
    r.xadd(f"{prefix}:raw", {"body": json.dumps({"text": "t", "id": "a"})})
    runner = make_runner(redis_url, prefix)
    await runner.ensure_groups()

    async def lost_reply(client, target, records):
        await fenced_commit(client, target, records)
        raise redis.exceptions.ConnectionError("Connection reset by peer")

    monkeypatch.setattr("shared.transport.runner.fenced_commit", lost_reply)
    await runner.handle_batch(await read_new(runner))
    assert [b["id"] for b in bodies(r, f"{prefix}:cleaned")] == ["a"]
    assert runner.counters.script_commits == 1 and r.xpending(f"{prefix}:raw", f"{prefix}:cleaner")["pending"] == 0


@pytest.mark.parametrize("claims", [0, 2])
async def test_reclaim_bumps_the_fence_only_when_it_claims(r, prefix, redis_url, claims):
    import asyncio

    for i in range(2):
        r.xadd(f"{prefix}:raw", {"body": json.dumps({"text": f"t{i}", "id": f"a{i}"})})
    dead = make_runner(redis_url, prefix, consumer="dead")
    await dead.ensure_groups()
    if claims:
        await read_new(dead)
        await asyncio.sleep(0.25)  # past claim_idle_ms
    fresh = make_runner(redis_url, prefix, consumer="fresh")
    assert await reclaim_once(fresh) == claims
    assert int(r.get(fresh.target.fence) or 0) == (1 if claims else 0)


async def test_the_heartbeat_bumps_the_fence(r, prefix, redis_url):
    r.xadd(f"{prefix}:raw", {"body": json.dumps({"text": "t", "id": "a"})})
    runner = make_runner(redis_url, prefix)
    await runner.ensure_groups()
    runner.in_flight.update(e.id for e in await read_new(runner))
    await heartbeat(runner)
    assert r.get(runner.target.fence) == b"1"
