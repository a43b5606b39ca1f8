"""The batch commit: one Lua script that publishes each finished entry's output (or dead letter) and acks it,
but only for entries this consumer still owns.

Why a script and not MULTI/EXEC: a worker whose claim was taken over (it was too slow, or its reply was lost and
it retries) must not publish a second copy. The script checks ownership in the PEL and publishes and acks in one
atomic step, so a retried or overtaken commit is a no-op for those entries. It is idempotent by construction.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# KEYS: input stream, output stream, dlq stream, errors hash
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
  if redis.call('EXISTS', KEYS[4]) == 1 then redis.call('HDEL', KEYS[4], unpack(acks)) end
end
return {#acks, skipped, retried, published, dead}
"""


@dataclass
class Record:
    entry_id: str
    kind: str  # out, dlq, done, retry
    fields: dict[str, Any]


def commit_args(group: str, consumer: str, maxlen: int, errors_ttl: int, records: list[Record]) -> list[Any]:
    args: list[Any] = [group, consumer, maxlen, errors_ttl]
    for r in records:
        args += [r.entry_id, r.kind, 2 * len(r.fields)]
        for name, value in r.fields.items():
            args += [name, value]
    return args
