"""Background duties of every worker: reclaim what dead consumers left, keep our own claims fresh, tidy the group."""

from __future__ import annotations

import asyncio
import time

from typing import Any

import redis.exceptions as redis_exceptions

from shared.logging import get_logger

from .entries import Entry, as_str, id_key
from .runner import StageRunner, _backoff, is_transient_redis

log = get_logger("newsflow.reclaim")


# XAUTOCLAIM, and when it took anything, a bump of the group's fence in the same step: a consumer whose fenced
# commit of those entries is under way then has its EXEC aborted (commit.py).
# KEYS: input stream, fence. ARGV: group, consumer, min idle ms, start id, count.
CLAIM_LUA = """
local r = redis.call('XAUTOCLAIM', KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[4], 'COUNT', ARGV[5])
if #r[2] > 0 then redis.call('INCR', KEYS[2]) end
return r
"""


async def reclaim_once(runner: StageRunner) -> int:
    """XAUTOCLAIM every entry idle past claim_idle_ms (ours or a dead consumer's) and handle it. Returns how many."""
    s = runner.settings
    start = "0-0"
    total = 0
    claim = runner.redis.register_script(CLAIM_LUA)
    while True:
        next_id, found, *_ = await claim(keys=[runner.input_stream, runner.target.fence],
                                         args=[runner.group, runner.consumer, s.claim_idle_ms, start, s.batch_size])
        # [id, [field, value, ...]] each; Redis 6.2 answers nil for an entry deleted while pending.
        claimed = [(e[0], dict(zip(e[1][::2], e[1][1::2]))) if e and e[1] is not None else (None, None) for e in found]
        if any(eid is None or fields is None for eid, fields in claimed):
            # Redis 6.2 answers nil for entries deleted while pending, without their ids: list what we now own.
            claimed = await _claimed_with_gaps(runner, start, as_str(next_id))
        entries = [Entry(as_str(eid), fields) for eid, fields in claimed if fields is not None]
        if entries:
            counts = await _delivery_counts(runner, entries)
            for e in entries:
                e.deliveries = counts.get(e.id, e.deliveries)
            log.info("reclaimed", count=len(entries), first=entries[0].id, max_deliveries_seen=max(e.deliveries for e in entries))
            # Every claimed entry is ours from now on: keep them all under the heartbeat while we work through them.
            runner.in_flight.update(e.id for e in entries)
            try:
                # A reclaim adds a delivery, so 2 is the normal case (a dead worker's batch). An entry delivered more
                # often may be what killed its workers: alone, it cannot take batch-mates with it.
                batch = [e for e in entries if e.deliveries <= 2]
                if batch:
                    await runner.handle_batch(batch, drain=False)
                for e in entries:
                    if e.deliveries > 2:
                        await runner.handle_batch([e], drain=False)
            finally:
                runner.in_flight.difference_update(e.id for e in entries)
            total += len(entries)
        start = as_str(next_id)
        if start == "0-0" or runner.stopping.is_set():
            return total


async def _claimed_with_gaps(runner: StageRunner, start: str, end: str) -> list[tuple[str, dict[bytes, bytes] | None]]:
    rows = await runner.redis.xpending_range(
        runner.input_stream, runner.group, min=start, max="+" if end == "0-0" else f"({end}",
        count=runner.settings.batch_size * 4, consumername=runner.consumer,
    )
    out: list[tuple[str, dict[bytes, bytes] | None]] = []
    gone = []
    for row in rows:
        eid = as_str(row["message_id"])
        found = await runner.redis.xrange(runner.input_stream, min=eid, max=eid)
        if found:
            out.append((eid, found[0][1]))
        else:
            gone.append(eid)
    if gone:  # trimmed or deleted while pending: nothing left to process
        await runner.redis.xack(runner.input_stream, runner.group, *gone)
    return out


async def _delivery_counts(runner: StageRunner, entries: list[Entry]) -> dict[str, int]:
    async with runner.redis.pipeline(transaction=False) as pipe:
        for e in entries:
            pipe.xpending_range(runner.input_stream, runner.group, min=e.id, max=e.id, count=1)
        replies = await pipe.execute()
    return {as_str(rows[0]["message_id"]): int(rows[0]["times_delivered"]) for rows in replies if rows}


async def heartbeat(runner: StageRunner) -> None:
    """Reset the idle time of entries we are still working on, so peers do not reclaim them from a live worker.

    XCLAIM ... JUSTID does not add a delivery, so a long wait for the database costs the entry nothing. It may take
    back an entry a peer reclaimed from us meanwhile, so it bumps the group's fence in the same transaction, as
    every claim does (commit.py).
    """
    ids = sorted(runner.in_flight)
    for i in range(0, len(ids), 500):
        async with runner.redis.pipeline(transaction=True) as pipe:
            pipe.xclaim(runner.input_stream, runner.group, runner.consumer, min_idle_time=0,
                        message_ids=ids[i : i + 500], justid=True)
            pipe.execute_command("INCR", runner.target.fence)  # INCR, not redis-py's incr (INCRBY): the ACL allows INCR
            await pipe.execute()


# Check and delete in one step: a consumer that reads between a separate check and DELCONSUMER would lose
# the entries it just read from the PEL, beyond the reach of reclaim.
PURGE_LUA = """
if #redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', 1, ARGV[2]) == 0 then
  return redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[2])
end
return -1
"""


async def purge_dead_consumers(runner: StageRunner) -> list[str]:
    """Remove consumers that have nothing pending and have not been seen for consumer_idle_purge_ms."""
    removed = []
    purge = runner.redis.register_script(PURGE_LUA)
    for c in await runner.redis.xinfo_consumers(runner.input_stream, runner.group):
        name = as_str(c["name"])
        if name != runner.consumer and int(c["pending"]) == 0 and int(c["idle"]) > runner.settings.consumer_idle_purge_ms:
            if await purge(keys=[runner.input_stream], args=[runner.group, name]) != -1:
                removed.append(name)
    if removed:
        log.info("purged_consumers", consumers=removed)
    return removed


async def safe_trim_id(redis: Any, stream: str, retention_ms: int) -> str | None:
    """The lowest id any group still needs (its oldest pending entry, or the entry after its read position),
    capped by the retention window. Entries below it have been read and acked by every group."""
    candidates = [(int(time.time() * 1000) - retention_ms, 0)]
    try:
        groups = await redis.xinfo_groups(stream)
    except redis_exceptions.ResponseError:
        return None  # no such stream yet
    for g in groups:
        summary = await redis.xpending(stream, g["name"])
        if summary["pending"]:
            candidates.append(id_key(as_str(summary["min"])))
        else:
            ms, seq = id_key(as_str(g["last-delivered-id"]))
            candidates.append((ms, seq + 1))
    ms, seq = min(candidates)
    return f"{ms}-{seq}"


async def trim(runner: StageRunner) -> None:
    """XTRIM MINID: drop only entries every group has read and acked, and older than the retention window.

    The input stream is trimmed by the stage that reads it; storage also trims `enriched`, whose readers are
    downstream groups: a slow downstream group holds trimming back, so it never loses entries it has not read.
    """
    streams = [runner.input_stream]
    if runner.spec.output == "enriched" and runner.output_stream:
        streams.append(runner.output_stream)
    for stream in streams:
        minid = await safe_trim_id(runner.redis, stream, runner.settings.stream_retention_s * 1000)
        if minid:
            await runner.redis.xtrim(stream, minid=minid, approximate=True)


async def heartbeat_loop(runner: StageRunner) -> None:
    """Its own task, so a reclaimed batch waiting on a dependency never starves the heartbeat; runs until cancelled,
    which the app does only after the graceful stop, so entries finishing during shutdown stay ours."""
    beat_every = max(0.05, runner.settings.claim_idle_ms / 4000)
    while True:
        await asyncio.sleep(beat_every)
        if not runner.in_flight:
            continue
        try:
            await heartbeat(runner)
        except Exception as exc:
            log.warning("heartbeat_failed", error=f"{type(exc).__name__}: {exc}"[:200])


async def maintenance_loop(runner: StageRunner) -> None:
    beat = asyncio.create_task(heartbeat_loop(runner))
    try:
        await _maintain(runner)
    finally:
        beat.cancel()
        await asyncio.gather(beat, return_exceptions=True)


async def _maintain(runner: StageRunner) -> None:
    s = runner.settings
    interval = s.claim_interval_ms / 1000
    purge_every = max(1.0, min(60.0, s.consumer_idle_purge_ms / 2000))
    last_purge = last_trim = 0.0
    attempt = 0
    while not runner.stopping.is_set():
        try:
            now = time.monotonic()
            if now - last_purge >= purge_every:
                await purge_dead_consumers(runner)
                last_purge = now
            await reclaim_once(runner)
            if now - last_trim >= s.trim_interval_s:
                await trim(runner)
                last_trim = now
            attempt = 0
            delay = interval
        except Exception as exc:
            delay = interval
            if is_transient_redis(exc):
                delay = _backoff(attempt)
                attempt += 1
                log.warning("maintenance_redis_unavailable", error=str(exc)[:200], retry_in_s=round(delay, 2))
            elif "NOGROUP" in str(exc):
                # The stream or group vanished (a Redis without persistence restarted): recreate and go on.
                log.error("group_missing_recreating", error=str(exc)[:200])
                try:
                    await runner.ensure_groups()
                except Exception:
                    log.exception("group_recreate_failed")
            else:
                log.exception("maintenance_failed")
        try:
            await asyncio.wait_for(runner.stopping.wait(), timeout=delay)
        except asyncio.TimeoutError:
            pass
