"""The commit script on a real Redis: fields survive byte for byte, entries with different numbers of fields are
walked right, and ownership is decided right even when the batch's id range holds many more of our pending entries than one XPENDING returns."""

from __future__ import annotations

import redis

import asyncio

from shared.transport.app import redis_client
from shared.transport.commit import COMMIT_LUA, Record, commit_args


def _setup(r: redis.Redis, prefix: str, n: int) -> tuple[str, str, str, str, list[str]]:
    src, dst, dlq, errors = f"{prefix}:in", f"{prefix}:out", f"{prefix}:dlq", f"{prefix}:errors"
    ids = [r.xadd(src, {"body": f'{{"n": {i}}}'}).decode() for i in range(n)]
    r.xgroup_create(src, "g", id="0")
    return src, dst, dlq, errors, ids


def _commit(r: redis.Redis, keys: list[str], consumer: str, records: list[Record]) -> list[int]:
    script = r.register_script(COMMIT_LUA)
    return script(keys=keys, args=commit_args("g", consumer, 1_000_000, 60, records))


def test_fields_round_trip_exactly(r, prefix):
    src, dst, dlq, errors, ids = _setup(r, prefix, 1)
    r.xreadgroup("g", "me", {src: ">"})
    fields = {"body": '{"t": "a:b 12:x ünïcødé — \\u0000"}', "correlation_id": "", "traceparent": "00-ab:cd"}
    assert _commit(r, [src, dst, dlq, errors, f"{src}:fence"], "me", [Record(ids[0], "out", fields)]) == [1, 0, 0, 1, 0]
    (_, got), = r.xrange(dst)
    assert {k.decode(): v.decode() for k, v in got.items()} == fields
    assert r.xpending(src, "g")["pending"] == 0


def test_entries_with_different_field_counts_in_one_batch(r, prefix, redis_url):
    """The script walks a variable number of arguments per entry; the workers' own client (hiredis packing)
    sends bytes, ints and text, and every field lands where it belongs."""
    src, dst, dlq, errors, ids = _setup(r, prefix, 4)
    r.xreadgroup("g", "me", {src: ">"}, count=4)
    records = [
        Record(ids[0], "done", {}),
        Record(ids[1], "out", {"body": b"\x00\xff raw", "n": 5, "text": "é"}),
        Record(ids[2], "retry", {"error": "boom"}),
        Record(ids[3], "dlq", {"body": "{}"}),
    ]

    async def commit() -> list[int]:
        client = redis_client(redis_url)
        try:
            return await client.register_script(COMMIT_LUA)(keys=[src, dst, dlq, errors, f"{src}:fence"],
                                                            args=commit_args("g", "me", 1_000_000, 60, records))
        finally:
            await client.aclose()

    assert asyncio.run(commit()) == [3, 0, 1, 1, 1]
    (_, got), = r.xrange(dst)
    assert got == {b"body": b"\x00\xff raw", b"n": b"5", b"text": "é".encode()}
    assert [f for _, f in r.xrange(dlq)] == [{b"body": b"{}"}]
    assert r.hget(errors, ids[2]) == b"boom"
    assert [p["message_id"].decode() for p in r.xpending_range(src, "g", "-", "+", 10)] == [ids[2]]


def test_ownership_when_the_range_holds_many_more_pending_entries(r, prefix):
    src, dst, dlq, errors, ids = _setup(r, prefix, 300)
    r.xreadgroup("g", "me", {src: ">"}, count=300)  # all 300 pending for "me"
    # Only the first and the last are committed: their range holds 300 of our entries, more than one XPENDING
    # reply of the script (4 x 2 + 16) returns, so the script must look the missing one up by itself.
    records = [Record(ids[0], "out", {"body": "first"}), Record(ids[-1], "out", {"body": "last"})]
    assert _commit(r, [src, dst, dlq, errors, f"{src}:fence"], "me", records) == [2, 0, 0, 2, 0]
    assert [f[b"body"] for _, f in r.xrange(dst)] == [b"first", b"last"]
    assert r.xpending(src, "g")["pending"] == 298


def test_entries_of_another_consumer_are_skipped_not_published(r, prefix):
    src, dst, dlq, errors, ids = _setup(r, prefix, 4)
    r.xreadgroup("g", "me", {src: ">"}, count=2)
    r.xreadgroup("g", "other", {src: ">"}, count=2)
    records = [Record(i, "out", {"body": i}) for i in ids]
    acked, skipped, _, published, _ = _commit(r, [src, dst, dlq, errors, f"{src}:fence"], "me", records)
    assert (acked, skipped, published) == (2, 2, 2)
    assert [f[b"body"].decode() for _, f in r.xrange(dst)] == ids[:2]
    # a retried commit of the same batch is a no-op
    assert _commit(r, [src, dst, dlq, errors, f"{src}:fence"], "me", records)[:2] == [0, 4]
    assert r.xlen(dst) == 2


def test_retry_records_note_the_error_and_keep_the_entry_pending(r, prefix):
    src, dst, dlq, errors, ids = _setup(r, prefix, 2)
    r.xreadgroup("g", "me", {src: ">"}, count=2)
    records = [Record(ids[0], "retry", {"error": "boom: 1:2"}), Record(ids[1], "dlq", {"body": "dead"})]
    assert _commit(r, [src, dst, dlq, errors, f"{src}:fence"], "me", records) == [1, 0, 1, 0, 1]
    assert r.hget(errors, ids[0]) == b"boom: 1:2"
    assert r.xpending(src, "g")["pending"] == 1
    assert [f[b"body"] for _, f in r.xrange(dlq)] == [b"dead"]
