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
# ARGV: group, consumer, maxlen, errors_ttl, then per entry: id, kind, field count, field, value, ...
# kind: "out" (publish to output), "dlq" (publish a dead letter), "done" (ack only), "retry" (record the error, no ack)
# Returns {acked, skipped (not ours any more), retried, published, dead-lettered}; the last two feed the metrics.
COMMIT_LUA = """
local group, consumer, maxlen, ttl = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local acks, skipped, retried, published, dead = {}, 0, 0, 0, 0
local i = 5
while i <= #ARGV do
  local id, kind, n = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2])
  local fields = {}
  for j = 1, n * 2 do fields[j] = ARGV[i + 2 + j] end
  i = i + 3 + n * 2
  local p = redis.call('XPENDING', KEYS[1], group, id, id, 1)
  if #p == 1 and p[1][2] == consumer then
    if kind == 'out' then
      redis.call('XADD', KEYS[2], 'MAXLEN', '~', maxlen, '*', unpack(fields))
      published = published + 1
    elseif kind == 'dlq' then
      redis.call('XADD', KEYS[3], '*', unpack(fields))
      dead = dead + 1
    end
    if kind == 'retry' then
      redis.call('HSET', KEYS[4], id, fields[2])
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
        args += [r.entry_id, r.kind, len(r.fields)]
        for name, value in r.fields.items():
            args += [name, value]
    return args
