"""Read-only views and operator actions on the streams: status, DLQ listing, replay and purge."""

from __future__ import annotations

import json
import time
from typing import Any

import redis

from shared.topology import STAGES, Topology


def _s(v: Any) -> Any:
    return v.decode("utf-8", "replace") if isinstance(v, bytes) else v


def status(r: redis.Redis, topology: Topology) -> dict[str, Any]:
    """Each stream's length, and per group: consumers, pending, lag and the age of the oldest pending entry."""
    out: dict[str, Any] = {"streams": {}}
    now_ms = int(time.time() * 1000)
    for stream in topology.all_streams():
        info: dict[str, Any] = {"length": r.xlen(stream), "groups": []}
        try:
            groups = r.xinfo_groups(stream)
        except redis.ResponseError:
            groups = []
        for g in groups:
            name = _s(g["name"])
            summary = r.xpending(stream, name)
            oldest_age_s = None
            if summary["pending"]:
                oldest = _s(summary["min"])
                oldest_age_s = round((now_ms - int(oldest.split("-")[0])) / 1000, 1)
            info["groups"].append(
                {
                    "group": name,
                    "consumers": int(g["consumers"]),
                    "pending": int(g["pending"]),
                    "lag": g.get("lag"),
                    "oldest_pending_age_s": oldest_age_s,
                    "last_delivered_id": _s(g["last-delivered-id"]),
                }
            )
        out["streams"][stream] = info
    out["sources"] = source_states(r, topology.prefix)
    return out


def source_states(r: redis.Redis, prefix: str) -> dict[str, dict[str, Any]]:
    """The fetcher's per-source state hashes, `{prefix}:sources:<name>`: last_ok, failures, next_poll, last_error..."""
    out: dict[str, dict[str, Any]] = {}
    for key in r.scan_iter(match=f"{prefix}:sources:*", count=500):
        name = _s(key).split(":sources:", 1)[1]
        out[name] = {_s(k): _s(v) for k, v in r.hgetall(key).items()}
    return dict(sorted(out.items()))


def dlq_list(r: redis.Redis, topology: Topology, count: int = 50, stage: str | None = None) -> list[dict[str, Any]]:
    rows = []
    for entry_id, fields in r.xrevrange(topology.dlq, count=count * 4 if stage else count):
        body = json.loads(fields.get(b"body", b"{}"))
        if stage and body.get("stage") != stage:
            continue
        rows.append({"id": _s(entry_id), **body})
        if len(rows) >= count:
            break
    return rows


def dlq_show(r: redis.Redis, topology: Topology, entry_id: str) -> dict[str, Any] | None:
    found = r.xrange(topology.dlq, min=entry_id, max=entry_id)
    if not found:
        return None
    eid, fields = found[0]
    return {"id": _s(eid), **json.loads(fields.get(b"body", b"{}"))}


def _original_fields(letter: dict[str, Any]) -> dict[str, bytes]:
    import base64

    encoded = letter.get("original_encoding") or {}
    out = {}
    for name, value in letter["original"].items():
        out[name] = base64.b64decode(value) if encoded.get(name) == "base64" else value.encode("utf-8")
    return out


def dlq_replay(r: redis.Redis, topology: Topology, *, ids: list[str] | None = None, stage: str | None = None) -> list[str]:
    """Re-publish dead letters to the stream they came from, then delete them from the DLQ, one transaction each."""
    replayed = []
    for entry_id, fields in r.xrange(topology.dlq):
        eid = _s(entry_id)
        if ids is not None and eid not in ids:
            continue
        letter = json.loads(fields.get(b"body", b"{}"))
        if stage and letter.get("stage") != stage:
            continue
        target = letter.get("source_stream") or topology.input_of(letter["stage"])
        if letter.get("stage") in STAGES and target != topology.input_of(letter["stage"]):
            continue  # a letter from another prefix: never write outside our topology
        with r.pipeline(transaction=True) as pipe:
            pipe.xadd(target, _original_fields(letter))
            pipe.xdel(topology.dlq, eid)
            pipe.execute()
        replayed.append(eid)
    return replayed


def dlq_purge(r: redis.Redis, topology: Topology, *, ids: list[str] | None = None, stage: str | None = None) -> int:
    if ids is None and stage is None:
        n = r.xlen(topology.dlq)
        r.delete(topology.dlq)
        return n
    doomed = [row["id"] for row in dlq_list(r, topology, count=10**9, stage=stage) if ids is None or row["id"] in ids]
    return r.xdel(topology.dlq, *doomed) if doomed else 0
