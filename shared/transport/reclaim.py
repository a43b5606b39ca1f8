"""Background duties of every worker: reclaim what dead consumers left, keep our own claims fresh, tidy the group."""

from __future__ import annotations

import asyncio
import time

from typing import Any

import redis.exceptions
import redis.exceptions as redis_exceptions

from shared.logging import get_logger

from .entries import Entry
from .runner import TRANSIENT, StageRunner, _backoff

log = get_logger("newsflow.reclaim")


async def reclaim_once(runner: StageRunner) -> int:
    """XAUTOCLAIM every entry idle past claim_idle_ms (ours or a dead consumer's) and handle it. Returns how many."""
    s = runner.settings
    start = "0-0"
    total = 0
    while True:
        next_id, claimed, *_ = await runner.redis.xautoclaim(
            runner.input_stream, runner.group, runner.consumer, min_idle_time=s.claim_idle_ms, start_id=start, count=s.batch_size
        )
        entries = [Entry(_s(eid), fields) for eid, fields in claimed if fields is not None]
        gone = [_s(eid) for eid, fields in claimed if fields is None]
        if gone:  # trimmed while pending (Redis 6.2 still lists them): nothing left to process
            await runner.redis.xack(runner.input_stream, runner.group, *gone)
        if entries:
            counts = await _delivery_counts(runner, entries)
            for e in entries:
                e.deliveries = counts.get(e.id, e.deliveries)
            log.info("reclaimed", count=len(entries), first=entries[0].id, max_deliveries_seen=max(e.deliveries for e in entries))
            await runner.handle_batch(entries)
            total += len(entries)
        start = _s(next_id)
        if start == "0-0" or runner.stopping.is_set():
            return total


async def _delivery_counts(runner: StageRunner, entries: list[Entry]) -> dict[str, int]:
    rows = await runner.redis.xpending_range(
        runner.input_stream, runner.group, min=entries[0].id, max=entries[-1].id, count=len(entries) * 2, consumername=runner.consumer
    )
    return {_s(r["message_id"]): int(r["times_delivered"]) for r in rows}


async def heartbeat(runner: StageRunner) -> None:
    """Reset the idle time of entries we are still working on, so peers do not reclaim them from a live worker.

    XCLAIM ... JUSTID does not add a delivery, so a long wait for the database costs the entry nothing.
    """
    ids = sorted(runner.in_flight)
    for i in range(0, len(ids), 500):
        await runner.redis.xclaim(
            runner.input_stream, runner.group, runner.consumer, min_idle_time=0, message_ids=ids[i : i + 500], justid=True
        )


async def purge_dead_consumers(runner: StageRunner) -> list[str]:
    """Remove consumers that have nothing pending and have not been seen for consumer_idle_purge_ms."""
    removed = []
    for c in await runner.redis.xinfo_consumers(runner.input_stream, runner.group):
        name = _s(c["name"])
        if name != runner.consumer and int(c["pending"]) == 0 and int(c["idle"]) > runner.settings.consumer_idle_purge_ms:
            # DELCONSUMER returns the pending count it dropped; a race that gave it entries just now is re-checked.
            dropped = await runner.redis.xgroup_delconsumer(runner.input_stream, runner.group, name)
            if dropped:
                log.error("purged_consumer_had_pending", consumer=name, pending=dropped)
            removed.append(name)
    if removed:
        log.info("purged_consumers", consumers=removed)
    return removed


async def safe_trim_id(redis: Any, stream: str, retention_ms: int) -> str | None:
    """The lowest id any group still needs (its oldest pending entry, or its read position), capped by retention."""
    floor = int(time.time() * 1000) - retention_ms
    candidates = [floor]
    try:
        groups = await redis.xinfo_groups(stream)
    except redis_exceptions.ResponseError:
        return None  # no such stream yet
    for g in groups:
        summary = await redis.xpending(stream, g["name"])
        position = _s(summary["min"]) if summary["pending"] else _s(g["last-delivered-id"])
        candidates.append(_ms(position))
    return f"{min(candidates)}-0"


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


async def maintenance_loop(runner: StageRunner) -> None:
    s = runner.settings
    interval = s.claim_interval_ms / 1000
    beat_every = max(0.05, s.claim_idle_ms / 3000)
    purge_every = max(1.0, min(60.0, s.consumer_idle_purge_ms / 2000))
    last_beat = last_purge = last_trim = 0.0
    attempt = 0
    while not runner.stopping.is_set():
        try:
            now = time.monotonic()
            if runner.in_flight and now - last_beat >= beat_every:
                await heartbeat(runner)
                last_beat = now
            if now - last_purge >= purge_every:
                await purge_dead_consumers(runner)
                last_purge = now
            await reclaim_once(runner)
            if now - last_trim >= s.trim_interval_s:
                await trim(runner)
                last_trim = now
            attempt = 0
            delay = interval
        except TRANSIENT as exc:
            delay = _backoff(attempt)
            attempt += 1
            log.warning("maintenance_redis_unavailable", error=str(exc)[:200], retry_in_s=round(delay, 2))
        except redis.exceptions.ResponseError as exc:
            if "NOGROUP" in str(exc):
                # The stream or group vanished (a Redis without persistence restarted): recreate and go on.
                log.error("group_missing_recreating", error=str(exc)[:200])
                await runner.ensure_groups()
            else:
                log.exception("maintenance_failed")
            delay = interval
        except Exception:
            log.exception("maintenance_failed")
            delay = interval
        try:
            await asyncio.wait_for(runner.stopping.wait(), timeout=min(delay, beat_every))
        except asyncio.TimeoutError:
            pass


def _ms(entry_id: str) -> int:
    return int(entry_id.split("-", 1)[0])


def _s(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
