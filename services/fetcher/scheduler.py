"""Polls due sources and turns their items into FetchRequests on `{prefix}:fetch` (files go straight to raw).

Runs in every fetcher replica. A per-source lock (SET NX PX with a token) lets only one replica poll a source
at a time; its state (`{prefix}:sources:<name>`: last_poll, last_ok, failures, next_poll, last_error, ...) is
what `newsflow status` shows, and next_poll is what makes the other replicas wait for the source's interval.
Only URLs that are not in the seen-set are enqueued; a duplicate that slips through (two polls before the
fetcher got to the first) is skipped by the fetcher's own claim.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
import uuid
from pathlib import Path

import redis.asyncio as aredis

from shared.contract import FetchRequest, RawArticle, dump
from shared.errors import PermanentError, TransientError
from shared.logging import get_logger
from shared.settings import Settings
from shared.topology import Topology

from .http import PoliteFetcher
from .sources import Item, Source, parse_feed, parse_sitemap
from .urls import SeenUrls, canonicalize

log = get_logger("newsflow.fetcher.scheduler")

MAX_CHILD_SITEMAPS = 50
QUEUED_TTL_S = 3600  # a URL on {prefix}:fetch is not queued again for this long, unless it was fetched
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end"


def state_key(prefix: str, name: str) -> str:
    return f"{prefix}:sources:{name}"


class Scheduler:
    def __init__(self, redis: aredis.Redis, settings: Settings, sources: list[Source], fetcher: PoliteFetcher,
                 seen: SeenUrls, *, tick_s: float = 1.0, lock_ms: int = 300_000) -> None:
        self.redis = redis
        self.settings = settings
        self.sources = sources
        self.fetcher = fetcher
        self.seen = seen
        self.topology = Topology(settings.stream_prefix)
        self.tick_s = tick_s
        self.lock_ms = lock_ms

    async def run(self) -> None:
        """Forever: poll each due source, then sleep a tick. Never dies on an error (Redis away: wait)."""
        log.info("scheduler_started", sources=len(self.sources))
        await self._register()
        while True:
            try:
                await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis away, a bug: log and go on; sources keep their state in Redis
                log.warning("scheduler_error", error=f"{type(exc).__name__}: {exc}"[:300])
            await asyncio.sleep(self.tick_s * (0.75 + random.random() / 2))

    async def run_once(self) -> int:
        """Poll every source that is due and whose lock we get, concurrently. Returns how many were polled."""
        due = [s for s in self.sources if await self._is_due(s)]
        results = await asyncio.gather(*(self._poll_locked(s) for s in due))
        return sum(1 for r in results if r)

    async def _register(self) -> None:
        for s in self.sources:
            await self.redis.hset(state_key(self.settings.stream_prefix, s.name), mapping={
                "kind": s.kind, "target": s.url or s.path or "", "interval_s": s.interval_s})

    async def _is_due(self, source: Source) -> bool:
        value = await self.redis.hget(state_key(self.settings.stream_prefix, source.name), "next_poll")
        return value is None or float(value) <= time.time()

    async def _poll_locked(self, source: Source) -> bool:
        prefix = self.settings.stream_prefix
        lock = f"{prefix}:lock:source:{source.name}"
        token = uuid.uuid4().hex
        if not await self.redis.set(lock, token, nx=True, px=self.lock_ms):
            return False
        try:
            if not await self._is_due(source):  # another replica polled it while we were deciding
                return False
            await self.poll(source)
            return True
        finally:
            await self.redis.eval(_RELEASE, 1, lock, token)

    async def poll(self, source: Source) -> int:
        """Poll one source now and record the outcome in its state hash. Returns how many entries were added."""
        key = state_key(self.settings.stream_prefix, source.name)
        now = time.time()
        await self.redis.hset(key, mapping={"kind": source.kind, "target": source.url or source.path or "", "interval_s": source.interval_s})
        try:
            added = await self._collect(source)
        except (PermanentError, TransientError, ValueError, OSError) as exc:
            failures = int(await self.redis.hincrby(key, "failures", 1))
            wait = min(self.settings.source_max_backoff_s, source.interval_s * 2 ** min(failures, 20))
            await self.redis.hset(key, mapping={"last_poll": now, "last_error": str(exc)[:500], "next_poll": now + wait})
            log.warning("source_failed", source=source.name, error=str(exc)[:300], failures=failures, retry_in_s=round(wait, 1))
            return 0
        await self.redis.hset(key, mapping={"last_poll": now, "last_ok": now, "failures": 0, "last_error": "",
                                            "last_added": added, "next_poll": now + source.interval_s})
        log.info("source_polled", source=source.name, added=added)
        return added

    # -- kinds ---------------------------------------------------------------------------------------------

    async def _collect(self, source: Source) -> int:
        limit = source.max_items or self.settings.source_max_items
        if source.kind == "files":
            return await self._push_files(source)
        assert source.url
        if source.kind == "url":
            return await self._enqueue(source, [Item(url=source.url)])
        result = await self.fetcher.fetch(source.url, source=source.name)  # conditional: an unchanged document is a 304
        if result.not_modified:
            return 0
        if source.kind == "feed":
            items = parse_feed(result.content, result.final_url, limit)
            added = await self._enqueue(source, items)
        else:
            sitemap = parse_sitemap(result.content, result.final_url, limit)
            if sitemap.kind == "index":
                added = await self._sitemap_index(source, sitemap.items[:MAX_CHILD_SITEMAPS], limit)
            else:
                added = await self._enqueue(source, sitemap.items)
        await self.fetcher.save_validators(result)  # only once its items are on the stream
        return added

    async def _sitemap_index(self, source: Source, children: list[Item], limit: int) -> int:
        added = 0
        for child in children:
            result = await self.fetcher.fetch(child.url, source=source.name)
            if result.not_modified:
                continue
            sitemap = parse_sitemap(result.content, result.final_url, limit)
            if sitemap.kind == "urlset":  # an index inside an index is not followed (sitemaps.org forbids it)
                added += await self._enqueue(source, sitemap.items)
            await self.fetcher.save_validators(result)
        return added

    async def _enqueue(self, source: Source, items: list[Item]) -> int:
        by_url: dict[str, Item] = {}
        for item in items:
            try:
                by_url.setdefault(canonicalize(item.url), item)
            except ValueError:
                continue
        fresh = await self.seen.mark_queued(await self.seen.unseen(list(by_url)), QUEUED_TTL_S)
        if not fresh:
            return 0
        stream = self.topology.fetch
        async with self.redis.pipeline(transaction=False) as pipe:
            for url in fresh:
                item = by_url[url]
                req = FetchRequest(url=url, source=source.name, language=item.language or source.language,
                                   category=source.category, metadata={**item.metadata(), "via": source.kind})
                pipe.xadd(stream, {"body": dump(req)}, maxlen=self.settings.stream_maxlen, approximate=True)
            await pipe.execute()
        return len(fresh)

    async def _push_files(self, source: Source) -> int:
        """A folder or file: each new or changed file (path, size, mtime) goes straight to raw, once."""
        from .files import articles_from_file, iter_paths

        assert source.path
        added = 0
        for path in iter_paths([source.path]):
            st = os.stat(path)
            marker = f"file:{Path(path).resolve()}:{st.st_size}:{st.st_mtime_ns}"
            key = f"{self.settings.stream_prefix}:seen:file:{_sha1(marker)}"
            if await self.redis.exists(key):
                continue
            articles = []
            for article in articles_from_file(path, source.name):
                if isinstance(article, dict):
                    article.setdefault("language", source.language)
                    if source.category:
                        article.setdefault("metadata", {}).setdefault("category", source.category)
                try:
                    articles.append(dump(RawArticle.model_validate(article)))
                except ValueError as exc:
                    log.warning("file_article_skipped", path=str(path), error=str(exc)[:200])
            async with self.redis.pipeline(transaction=True) as pipe:
                for body in articles:
                    pipe.xadd(self.topology.raw, {"body": body}, maxlen=self.settings.stream_maxlen, approximate=True)
                pipe.set(key, "1", ex=self.settings.fetch_seen_ttl_s)
                await pipe.execute()
            added += len(articles)
        return added


def _sha1(text: str) -> str:
    import hashlib

    return hashlib.sha1(text.encode("utf-8", "surrogatepass")).hexdigest()
