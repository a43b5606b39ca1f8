"""cleaner: reads `{prefix}:raw`, cleans each article, marks duplicates, writes `{prefix}:cleaned`."""

from __future__ import annotations

from datetime import datetime, timezone

from shared.contract import CleanArticle, RawArticle, parse_raw
from shared.transport import Entry, Outcome, StageSpec
from shared.transport.runner import Item, run_one

from .dedup import ExactDuplicateIndex
from .transform import clean


def spec(dedup: ExactDuplicateIndex, max_html_bytes: int) -> StageSpec:
    def one(entry: Entry, raw: RawArticle) -> CleanArticle:  # type: ignore[override]
        received = datetime.fromtimestamp(entry.timestamp_ms() / 1000, timezone.utc)
        return clean(raw, article_id=raw.article_id(), received_at=received, max_html_bytes=max_html_bytes)

    async def process(items: list[Item]) -> list[Outcome]:
        outcomes = [run_one(one, entry, raw) for entry, raw in items]
        cleaned = [o.output for o in outcomes if isinstance(o.output, CleanArticle)]
        dupes = await dedup.first_seen([(a.id, a.content_hash) for a in cleaned])
        for article in cleaned:
            article.duplicate_of = dupes.get(article.id)
        return outcomes

    return StageSpec(name="cleaner", input="raw", output="cleaned", decode=parse_raw, process=process)
