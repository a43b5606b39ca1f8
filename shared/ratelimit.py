"""Per-token rate limits for the HTTP services (the push gateway and the query API), kept in Redis so every
replica draws from the same bucket.

A token bucket of `rate` requests a second holding at most `burst`, in its GCRA form (the generic cell rate
algorithm, as redis-cell and most API gateways implement it): one key per caller holds a single number, the
"theoretical arrival time" of its next request, and one Lua script reads and moves it atomically on Redis' own
clock (TIME), so replicas with skewed clocks still agree. A refused request is told exactly how long until a
token is free (Retry-After). The key expires as soon as the bucket would be full again, so idle callers cost
nothing.

The `limits` library (windows over Redis) was the other candidate; it has fixed, moving and sliding windows but no
token bucket (a rate with a separate burst), so the twenty lines below are the algorithm rather than a wrapper.

Callers are named by a digest of their bearer token, never the token itself (key names show in SCAN and
MONITOR); without tokens (an anonymous gateway, a public API) by their client address. When Redis does not
answer, the limiter lets requests through (for PAUSE_AFTER_FAILURE_S, then it asks again) and logs why: the
limit protects the service, it must not become the reason it is down.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import time
from dataclasses import dataclass
from typing import Any

from shared.logging import get_logger

log = get_logger("newsflow.ratelimit")

# KEYS[1]: the caller's bucket. ARGV[1]: microseconds per request (1e6 / rate). ARGV[2]: the burst.
# Returns {1, 0} when allowed, {0, microseconds until the next request would be} when not.
GCRA_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
local next_tat = tat + interval
local allow_at = next_tat - burst * interval
if allow_at > now then
  return {0, allow_at - now}
end
redis.call('SET', KEYS[1], string.format('%d', next_tat), 'PX', math.ceil((next_tat - now) / 1000))
return {1, 0}
"""

# Longest wait for Redis before letting a request through unlimited.
CHECK_TIMEOUT_S = 1.0
# After Redis failed to answer, requests go unlimited for this long before the limiter asks again: during an
# outage a request must not wait CHECK_TIMEOUT_S for it every time (the query API reads on without Redis).
PAUSE_AFTER_FAILURE_S = 5.0


@dataclass(frozen=True)
class Decision:
    allowed: bool
    retry_after_s: float = 0.0

    def retry_after_header(self) -> str:
        """Retry-After in whole seconds (HTTP allows no fraction), never 0 for a refusal."""
        return str(max(1, math.ceil(self.retry_after_s)))


ALLOWED = Decision(True)


def token_identity(authorization: str | None) -> str:
    """The bucket name of a bearer token: a digest, so the token never appears in a Redis key."""
    _, _, given = (authorization or "").strip().partition(" ")
    return "t-" + hashlib.sha256(given.strip().encode("utf-8", "surrogateescape")).hexdigest()[:32]


def address_identity(host: str | None) -> str:
    """The bucket name of a client without a token: its address (behind a proxy, the proxy's)."""
    return f"ip-{host or 'unknown'}"


class RateLimiter:
    """`rate` requests a second per caller, `burst` at once; `rate` 0 turns the limiter off."""

    def __init__(self, redis: Any, prefix: str, surface: str, rate: float, burst: int, *, setting: str = "") -> None:
        self.redis = redis
        self.prefix = prefix
        self.surface = surface  # gateway, api: each has its own buckets, and its Redis user only its own keys
        self.rate = rate
        self.burst = max(1, burst)
        self.setting = setting  # the variable to name in a refusal
        self.interval_us = round(1_000_000 / rate) if rate > 0 else 0
        self._script = redis.register_script(GCRA_LUA) if rate > 0 and redis is not None else None
        self._paused_until = 0.0

    @property
    def enabled(self) -> bool:
        return self._script is not None

    def key(self, identity: str) -> str:
        return f"{self.prefix}:ratelimit:{self.surface}:{identity}"

    def describe(self) -> str:
        return f"{self.rate:g} requests/s, burst {self.burst}" + (f" ({self.setting})" if self.setting else "")

    async def check(self, identity: str) -> Decision:
        """Take one token from `identity`'s bucket, or say how long until one is free."""
        if self._script is None or time.monotonic() < self._paused_until:
            return ALLOWED
        try:
            allowed, wait_us = await asyncio.wait_for(
                self._script(keys=[self.key(identity)], args=[self.interval_us, self.burst]), CHECK_TIMEOUT_S)
        except Exception as exc:  # noqa: BLE001 - Redis away (or refusing): fail open, see the module docstring
            self._paused_until = time.monotonic() + PAUSE_AFTER_FAILURE_S
            log.warning("rate_limit_unavailable", surface=self.surface, error=f"{type(exc).__name__}: {exc}"[:200],
                        unlimited_for_s=PAUSE_AFTER_FAILURE_S)
            return ALLOWED
        if int(allowed):
            return ALLOWED
        return Decision(False, int(wait_us) / 1_000_000)

    async def check_request(self, authorization: str | None, client_host: str | None, by_token: bool) -> Decision:
        """`check` for an HTTP caller: its token's bucket when tokens are configured, else its address's."""
        if self._script is None:
            return ALLOWED
        who = token_identity(authorization) if by_token else address_identity(client_host)
        return await self.check(who)

    def refusal(self, decision: Decision) -> str:
        return f"rate limit of {self.describe()} exceeded; retry after {decision.retry_after_header()} s"
