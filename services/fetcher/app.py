"""The fetcher stage: `{prefix}:fetch` (FetchRequest) -> polite GET -> `{prefix}:raw` (RawArticle).

Per request: canonicalise the URL; skip it when another request already claimed it within the seen window;
fetch; publish the page. A permanent failure (4xx, robots.txt, too large, not a page) is dead-lettered with the
reason; a transient one (retries ran out on 429/5xx/connection errors) leaves only that entry pending, so reclaim
retries it until NEWSFLOW_MAX_DELIVERIES while its batch-mates go on. A URL the SSRF guard refuses (guard.py: a
private address, a scheme other than http(s), userinfo, a port not allowed) is a permanent failure: its dead
letter says why ("refused: ...").
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from shared.contract import FetchRequest, RawArticle, _describe, utcnow
from shared.errors import PermanentError, TransientError
from shared.settings import Settings
from shared.transport.entries import Entry, Outcome
from shared.transport.runner import Item, StageSpec

from . import guard
from .http import FetchResult, PoliteFetcher
from .urls import SeenUrls, canonicalize

HTML_TYPES = ("text/html", "application/xhtml+xml", "")
TEXT_TYPES = ("text/plain",)


def parse_fetch(data: Any) -> tuple[FetchRequest, list[str]]:
    if not isinstance(data, dict):
        raise ValueError(f"body must be a JSON object, got {type(data).__name__}")
    try:
        return FetchRequest.model_validate(data), []
    except ValidationError as exc:
        raise ValueError(_describe(exc)) from None


def to_raw(req: FetchRequest, result: FetchResult, canonical_final: str) -> RawArticle:
    meta = dict(req.metadata)
    title = meta.pop("title", None)
    published = meta.pop("published_at", None)
    meta.update(
        category=req.category,
        fetched_at=utcnow().isoformat(),
        status=result.status,
        requested_url=req.url,
        final_url=result.final_url,
        content_type=result.content_type or None,
        encoding=result.encoding,
    )
    if result.redirects:
        meta["redirects"] = result.redirects
    published_at: datetime | None = None
    if isinstance(published, str):
        try:
            published_at = datetime.fromisoformat(published.replace("Z", "+00:00"))
        except ValueError:
            published_at = None
    is_text = result.content_type in TEXT_TYPES
    return RawArticle(
        url=canonical_final,
        source=req.source,
        title=title if isinstance(title, str) and title.strip() else None,
        html=None if is_text else result.text,
        text=result.text if is_text else None,
        published_at=published_at,
        language=req.language,
        metadata={k: v for k, v in meta.items() if v is not None},
    )


class FetchStage:
    def __init__(self, fetcher: PoliteFetcher, seen: SeenUrls, settings: Settings) -> None:
        self.fetcher = fetcher
        self.seen = seen
        self.settings = settings

    async def process(self, items: list[Item]) -> list[Outcome]:
        # Concurrently: the fetcher's own semaphores keep each host (and the worker) within its limits.
        return list(await asyncio.gather(*(self.one(entry, req) for entry, req in items)))  # type: ignore[arg-type]

    async def one(self, entry: Entry, req: FetchRequest) -> Outcome:
        try:
            url = canonicalize(req.url)
        except ValueError as exc:
            try:
                guard.check_url(req.url, self.fetcher.policy_for(req.url, req.source))
            except guard.Refused as refused:  # says more than "not an http(s) URL" (the scheme, the userinfo)
                return Outcome(entry, dead_letter=str(refused))
            return Outcome(entry, dead_letter=str(exc))
        if not await self.seen.claim(url, entry.id):
            return Outcome(entry)  # another request for this URL had it within the window: nothing to publish
        try:
            # A redelivery fetches unconditionally: its first delivery may have saved validators and then died
            # before publishing, and a 304 would lose the page.
            result = await self.fetcher.fetch(url, conditional=entry.deliveries == 1, source=req.source)
        except PermanentError as exc:
            return Outcome(entry, dead_letter=str(exc)[:1000])
        except TransientError as exc:
            if entry.deliveries >= self.settings.max_deliveries:
                await self.seen.release(url)  # it will be dead-lettered: let a later poll try the URL again
            return Outcome(entry, retry=str(exc)[:500])
        if result.not_modified:
            return Outcome(entry)  # unchanged since we last fetched it: nothing new to publish
        if result.content_type not in HTML_TYPES + TEXT_TYPES:
            return Outcome(entry, dead_letter=f"{result.final_url} is {result.content_type}, not a page")
        if not result.text.strip():
            return Outcome(entry, dead_letter=f"{result.final_url} returned an empty page (HTTP {result.status})")
        try:
            final = canonicalize(result.final_url)
        except ValueError:
            final = url
        article = to_raw(req, result, final)
        await self.fetcher.save_validators(result)
        return Outcome(entry, output=article, article_id=article.article_id())


def spec(fetcher: PoliteFetcher, seen: SeenUrls, settings: Settings) -> StageSpec:
    stage = FetchStage(fetcher, seen, settings)
    return StageSpec("fetcher", "fetch", "raw", decode=parse_fetch, process=stage.process, model=FetchRequest)
