"""The exact-duplicate index, in Redis so every cleaner replica shares it.

Key `{prefix}:dedup:exact:{content_hash}` holds the first article id seen with that text, for `window_s`.
Re-delivery of the same article finds its own id and is not a duplicate of itself.
"""

from __future__ import annotations

import redis.asyncio as aredis

from shared.transport.entries import as_str


class ExactDuplicateIndex:
    def __init__(self, redis: aredis.Redis, prefix: str, window_s: int = 7 * 24 * 3600) -> None:
        self.redis = redis
        self.prefix = prefix
        self.window_s = window_s

    def key(self, content_hash: str) -> str:
        return f"{self.prefix}:dedup:exact:{content_hash}"

    async def first_seen(self, pairs: list[tuple[str, str]]) -> dict[str, str | None]:
        """For (article id, content hash) pairs, the earlier id each is a duplicate of, or None."""
        if not pairs:
            return {}
        async with self.redis.pipeline(transaction=False) as pipe:
            for article_id, content_hash in pairs:
                pipe.set(self.key(content_hash), article_id, nx=True, ex=self.window_s)
                pipe.get(self.key(content_hash))
            replies = await pipe.execute()
        out: dict[str, str | None] = {}
        for (article_id, _), first in zip(pairs, replies[1::2]):
            first_id = as_str(first) if first is not None else None
            out[article_id] = first_id if first_id and first_id != article_id else None
        return out
