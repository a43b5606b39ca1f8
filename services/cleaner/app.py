"""cleaner: reads `{prefix}:raw`, cleans each article, marks duplicates, writes `{prefix}:cleaned`."""

from __future__ import annotations

from datetime import datetime, timezone

from shared.contract import CleanArticle, RawArticle, parse_raw
from shared.logging import get_logger
from shared.transport import Entry, Outcome, StageSpec
from shared.transport.runner import Item, run_yielding

from .dedup import ExactDuplicateIndex
from .neardup import NearDuplicateIndex
from .transform import RAW_SOURCE_SKIPPED_KEY, clean, has_html, warm_up

log = get_logger("newsflow.cleaner")


def spec(dedup: ExactDuplicateIndex, max_html_bytes: int, near: NearDuplicateIndex | None = None,
         store_raw: bool = False) -> StageSpec:
    """Exact duplicates (same normalised text) first; the rest are checked for near duplicates when `near`
    is given. A duplicate is marked (`duplicate_of`, `duplicate_score`), never dropped. `store_raw`
    (NEWSFLOW_STORE_RAW): the raw source rides along in the metadata for storage to keep."""
    warm_up()  # once per process: the first pages would pay it, about a second

    def one(entry: Entry, raw: RawArticle) -> CleanArticle:  # type: ignore[override]
        received = datetime.fromtimestamp(entry.timestamp_ms() / 1000, timezone.utc)
        article = clean(raw, article_id=raw.article_id(), received_at=received, max_html_bytes=max_html_bytes,
                        store_raw=store_raw, max_body_bytes=max_html_bytes)
        if store_raw and (skipped := article.metadata.get(RAW_SOURCE_SKIPPED_KEY)):
            log.warning("raw_source_skipped", article_id=article.id, **skipped)
        return article

    async def process(items: list[Item]) -> list[Outcome]:
        # On the main thread, where the extraction time limit (a SIGALRM timer) works; the loop gets a turn after
        # every article.
        outcomes = await run_yielding(one, items)
        cleaned = [o.output for o in outcomes if isinstance(o.output, CleanArticle)]
        dupes = await dedup.first_seen([(a.id, a.content_hash) for a in cleaned])
        for article in cleaned:
            article.duplicate_of = dupes.get(article.id)
            article.duplicate_score = 1.0 if article.duplicate_of else None
        if near is not None:
            found = await near.check_and_add([(a.id, a.text) for a in cleaned if not a.duplicate_of])
            for article in cleaned:
                if (hit := found.get(article.id)) is not None:
                    article.duplicate_of, article.duplicate_score = hit.of, hit.score
        return outcomes

    # Plain text (1 to 2 ms an article) is cleaned and committed before the batch's HTML pages (about 14 ms each),
    # and plain text that arrives while the pages are extracted is read and committed between two of them.
    return StageSpec(name="cleaner", input="raw", output="cleaned", decode=parse_raw, process=process,
                     model=RawArticle, first=lambda raw: not has_html(raw), peek=True)
