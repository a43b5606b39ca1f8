"""The batch commit: publish each finished entry's output (or dead letter) and ack it, but only for entries this
consumer still owns. Two ways, one outcome:

- The fenced transaction (fenced_commit), tried first. One round trip sets WATCH on two fence keys, checks that
  every entry of the batch is still pending for this consumer (one XPENDING over the batch's id range, for this
  consumer) and opens MULTI; a second sends the
  XADDs, one XACK, a bump of the consumer's own fence, and EXEC. Whatever takes entries from a consumer (reclaim's
  XAUTOCLAIM, the heartbeat's XCLAIM) bumps the group's fence in the same atomic step, and every commit that acks
  bumps the consumer's fence (two commits of one consumer can overlap: its main loop and its reclaim loop), so a
  claim or another commit of ours between the check and EXEC aborts the transaction: EXEC answers nil and nothing
  is written. Redis runs MULTI's XADDs for about half the CPU the same XADDs cost inside a script, whose arguments
  are copied into Lua and back (bench/transport.py: Redis CPU per article and stage 22-23 -> 14-17 us).
- The commit script (COMMIT_LUA): ownership checked entry by entry, and only owned entries published and acked, in
  one atomic step. It runs when the fenced check finds an entry that is not ours any more or the fence tripped,
  for a retried commit (whose first attempt may have gone through: the script makes it a no-op), for batches with
  an entry to retry, for a Redis user whose ACL does not allow WATCH and MULTI, and always when
  NEWSFLOW_FENCED_COMMIT is off (a rolling upgrade from workers whose claims do not bump the fence).

Why not a plain MULTI/EXEC: a worker whose claim was taken over (it was too slow, or its reply was lost and it
retries) must not publish a second copy. An operator's XCLAIM by hand does not bump the fence: an entry taken that
way from a live worker in the middle of its commit may be published twice (at least once, as always).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import redis.asyncio as aredis
import redis.exceptions

from .entries import id_key
from .packing import append_bulk, bulk_strings, pack, pack_into, read_replies

# KEYS: input stream, output stream, dlq stream, errors hash, this consumer's fence
# ARGV: group, consumer, maxlen, errors_ttl, then per entry: id, kind, n, and the entry's n field arguments
#   (name, value, name, value...), which XADD takes as they are: no copy or split in Lua; the workers' client
#   packs the whole command in one pass (packing.py).
# kind: "out" (publish to output), "dlq" (publish a dead letter), "done" (ack only), "retry" (record the error, no ack)
# Ownership: one XPENDING over the batch's id range for this consumer; only when that reply is full (the range holds
# more of our pending entries than it returned) are the missing ids asked one by one.
# Returns {acked, skipped (not ours any more), retried, published, dead-lettered}; the last two feed the metrics.
COMMIT_LUA = """
local group, consumer, maxlen, ttl = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local acks, skipped, retried, published, dead = {}, 0, 0, 0, 0

local ids, i = {}, 5
while i <= #ARGV do
  ids[#ids + 1] = ARGV[i]
  i = i + 3 + tonumber(ARGV[i + 2])
end
local owned, limit = {}, #ids * 4 + 16
if #ids > 0 then
  -- the batch's smallest and largest ids (a reclaimed batch need not be in order)
  local first, last, fms, fseq, lms, lseq = nil, nil, 0, 0, 0, 0
  for _, id in ipairs(ids) do
    local ms, seq = string.match(id, '^(%d+)-(%d+)$')
    ms, seq = tonumber(ms), tonumber(seq)
    if first == nil or ms < fms or (ms == fms and seq < fseq) then first, fms, fseq = id, ms, seq end
    if last == nil or ms > lms or (ms == lms and seq > lseq) then last, lms, lseq = id, ms, seq end
  end
  local p = redis.call('XPENDING', KEYS[1], group, first, last, limit, consumer)
  for _, e in ipairs(p) do owned[e[1]] = true end
  if #p >= limit then
    for _, id in ipairs(ids) do
      if not owned[id] then
        local one = redis.call('XPENDING', KEYS[1], group, id, id, 1)
        if #one == 1 and one[1][2] == consumer then owned[id] = true end
      end
    end
  end
end

i = 5
while i <= #ARGV do
  local id, kind, n = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2])
  local from, to = i + 3, i + 2 + n
  i = to + 1
  if owned[id] then
    if kind == 'out' then
      redis.call('XADD', KEYS[2], 'MAXLEN', '~', maxlen, '*', unpack(ARGV, from, to))
      published = published + 1
    elseif kind == 'dlq' then
      redis.call('XADD', KEYS[3], '*', unpack(ARGV, from, to))
      dead = dead + 1
    end
    if kind == 'retry' then
      redis.call('HSET', KEYS[4], id, ARGV[from + 1])
      redis.call('EXPIRE', KEYS[4], ttl)
      retried = retried + 1
    else
      acks[#acks + 1] = id
    end
  else
    skipped = skipped + 1
  end
end
if #acks > 0 then
  redis.call('XACK', KEYS[1], group, unpack(acks))
  redis.call('INCR', KEYS[5])  -- a fenced commit of ours under way must not publish what this one acked
  redis.call('EXPIRE', KEYS[5], ttl)
  if redis.call('EXISTS', KEYS[4]) == 1 then redis.call('HDEL', KEYS[4], unpack(acks)) end
end
return {#acks, skipped, retried, published, dead}
"""


@dataclass
class Record:
    entry_id: str
    kind: str  # out, dlq, done, retry
    fields: dict[str, Any]
    redelivered: bool = False  # an earlier delivery may have left an error note to delete with the ack


def commit_args(group: str, consumer: str, maxlen: int, errors_ttl: int, records: list[Record]) -> list[Any]:
    args: list[Any] = [group, consumer, maxlen, errors_ttl]
    for r in records:
        args += [r.entry_id, r.kind, 2 * len(r.fields)]
        for name, value in r.fields.items():
            args += [name, value]
    return args


@dataclass(frozen=True)
class Target:
    """Where one stage's commits go: its input stream and group, this consumer, the output, the DLQ, the error notes
    of entries to retry, and the group's fence."""

    stream: str
    group: str
    consumer: str
    output: str  # the output stream, or the DLQ for a stage without one
    dlq: str
    errors: str
    fence: str  # the group's: every claim bumps it
    own_fence: str  # this consumer's: every commit that acks bumps it
    maxlen: int
    errors_ttl: int

    def script_keys(self) -> list[str]:
        return [self.stream, self.output, self.dlq, self.errors, self.own_fence]

    def script_args(self, records: list[Record]) -> list[Any]:
        return commit_args(self.group, self.consumer, self.maxlen, self.errors_ttl, records)


def fence_key(prefix: str, stage: str, consumer: str | None = None) -> str:
    """The key every claim on `stage`'s group bumps, or with `consumer` the one its commits bump (see the module's
    docstring). A consumer's key expires a week after its last commit (errors_ttl)."""
    return f"{prefix}:fence:{stage}" if consumer is None else f"{prefix}:fence:{stage}:{consumer}"


async def fenced_commit(client: aredis.Redis, target: Target, records: list[Record]) -> tuple[int, int] | None:
    """Publish and ack `records` in a fenced transaction. Returns (published, dead-lettered), or None when the
    transaction did not run (an entry is not ours any more, a fence moved, an entry is to be retried, a field is
    of a type the packer leaves to redis-py): the caller then commits with the script. Error replies are raised,
    NoPermissionError among them when the user's ACL refuses WATCH, MULTI or the check; nothing is written then."""
    transaction = _transaction(target, records) if records else None
    if transaction is None:
        return None
    commands, queued, published, dead = transaction
    ids = [r.entry_id for r in records]
    # The check is a plain XPENDING, read here: in a Lua script, turning its 100 replies into Lua tables cost Redis
    # 350 us a batch, seven times the XPENDING itself. When the range holds more of our pending entries than
    # `limit`, the reply stops short of the batch's last id, which then looks not ours: the script decides.
    first, last = id_range(ids)
    limit = len(ids) * 4 + 16
    opening = b"".join(p for p in (pack(("WATCH", target.fence, target.own_fence)),
                                   pack(("XPENDING", target.stream, target.group, first, last, limit, target.consumer)),
                                   pack(("MULTI",))) if p is not None)
    pool = client.connection_pool
    conn = await pool.get_connection()
    clean = False  # whether the connection is back to no WATCH, no MULTI and no reply unread; else it is dropped
    try:
        await conn.send_packed_command([opening])
        watched, pending, multi = await read_replies(conn, 3)
        for reply in (watched, pending, multi):
            _raise(reply)  # the connection may be left watching or in MULTI: it is dropped
        if not _all_pending(ids, pending):
            await conn.send_packed_command([_DISCARD], check_health=False)  # ends MULTI and WATCH
            _raise((await read_replies(conn, 1))[0])
            clean = True
            return None
        # No health check here: a check that reconnected would lose the WATCH and the MULTI.
        await conn.send_packed_command([commands], check_health=False)
        answers = await read_replies(conn, queued + 1)
        result = answers[-1]
        # EXEC ran (a list), aborted on a moved fence (nil) or on a command refused while queued (EXECABORT): the
        # connection is out of MULTI and WATCH. EXEC itself refused (BUSY, NOPERM) leaves it in MULTI.
        clean = result is None or isinstance(result, (list, redis.exceptions.ExecAbortError))
        for answer in answers[:-1]:
            _raise(answer)  # refused while queued (OOM, NOPERM...): EXEC then answers EXECABORT, nothing ran
        _raise(result)
        if result is None:
            return None
        for answer in result:
            _raise(answer)
        return published, dead
    finally:
        if not clean:
            await conn.disconnect()
        await pool.release(conn)


def id_range(ids: list[str]) -> tuple[str, str]:
    """The smallest and the largest of stream entry ids, compared as numbers. A batch is usually in order, but
    need not be (a reclaimed one, a peek's)."""
    return min(ids, key=id_key), max(ids, key=id_key)


def _all_pending(ids: list[str], pending: list[Any]) -> bool:
    """Whether XPENDING's reply (entries [id, consumer, idle, deliveries] of this consumer) holds every id."""
    mine = {e[0] for e in pending}
    return all(i.encode() in mine for i in ids)


_DISCARD = b"*1\r\n$7\r\nDISCARD\r\n"


def _transaction(target: Target, records: list[Record]) -> tuple[bytes, int, int, int] | None:
    """The commands of the transaction for `records` and its EXEC, packed (MULTI goes with the check): (the bytes,
    how many commands are queued, outputs, dead letters); None when a record is to be retried (its error note is
    the script's job) or a field is not bytes, str or int.
    The XADDs are packed here, not by pack(): their fixed part and the field names are encoded once, and this loop
    was the largest part of a relay stage's Python."""
    out: list[bytes] = []
    append = out.append
    queued = 0
    acks: list[str] = []
    noted: list[str] = []
    published = dead = 0
    heads = {"out": (6, _head(("XADD", target.output, "MAXLEN", "~", target.maxlen, "*"))),
             "dlq": (3, _head(("XADD", target.dlq, "*")))}
    for r in records:
        kind = r.kind
        if kind == "out" or kind == "dlq":
            if kind == "out":
                published += 1
            else:
                dead += 1
            fixed, head = heads[kind]
            fields = r.fields
            append(b"*%d\r\n" % (fixed + 2 * len(fields)))
            append(head)
            for name, value in fields.items():
                append(_name(name))
                if not append_bulk(append, value):
                    return None  # float, memoryview...: redis-py's packer converts those, in the script commit
            queued += 1
        elif kind != "done":
            return None
        acks.append(r.entry_id)
        if r.redelivered:
            noted.append(r.entry_id)
    pack_into(out, ["XACK", target.stream, target.group, *acks])
    if noted:  # error notes of earlier attempts go with the ack, as in the script
        pack_into(out, ["HDEL", target.errors, *noted])
        queued += 1
    # Another commit of ours whose check came before this EXEC must not publish what this one acks.
    pack_into(out, ["INCR", target.own_fence])
    pack_into(out, ["EXPIRE", target.own_fence, target.errors_ttl])
    append(b"*1\r\n$4\r\nEXEC\r\n")
    return b"".join(out), queued + 3, published, dead


@lru_cache(maxsize=64)
def _name(name: Any) -> bytes:
    """A field name as a bulk string (body, correlation_id, traceparent...); TypeError for a name that is not
    str, bytes or int: a bug, not an entry's fault."""
    return bulk_strings((name,))


@lru_cache(maxsize=32)
def _head(args: tuple[Any, ...]) -> bytes:
    return bulk_strings(args)


def _raise(reply: Any) -> None:
    if isinstance(reply, Exception):
        raise reply
