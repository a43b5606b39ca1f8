"""The cleaner's pure transform: RawArticle -> CleanArticle. No I/O."""

from __future__ import annotations

import hashlib
import re
from datetime import date, datetime, time, timezone
from functools import cache

from services.cleaner.dateline import parse_dateline
from services.cleaner.extract import MAX_HTML_BYTES, Extracted, extract_html
from services.cleaner.language import detect_language
from services.cleaner.text import (
    first_sentence_title,
    normalise_whitespace,
    repair,
    split_date_header,
    strip_byline,
    strip_trailers,
)
from shared.contract import CleanArticle, RawArticle, dump
from shared.errors import PermanentError

WORD = re.compile(r"\w+")

# The reserved metadata key that carries an article's raw source from the cleaner to storage (NEWSFLOW_STORE_RAW);
# storage takes it out before the article is hashed, stored as `doc` or announced.
RAW_SOURCE_KEY = "raw_source"
# Set instead when the raw source was left out because the entry would have grown too large.
RAW_SOURCE_SKIPPED_KEY = "raw_source_skipped"
# Room left in a cleaned entry for what the classifier adds (at most 4 topics, 25 places, 20 entities and
# 10 key phrases: a few KB), so the classified entry still passes storage's NEWSFLOW_MAX_BODY_BYTES check.
CLASSIFIER_HEADROOM_BYTES = 64 * 1024


def clean(
    raw: RawArticle,
    *,
    article_id: str,
    received_at: datetime | None = None,
    max_html_bytes: int = MAX_HTML_BYTES,
    store_raw: bool = False,
    max_body_bytes: int | None = None,
) -> CleanArticle:
    """`store_raw`: put the raw source under metadata[RAW_SOURCE_KEY], if the cleaned entry stays within
    `max_body_bytes` (default `max_html_bytes`) with room for the classifier; else note why it is left out."""
    extracted = Extracted()
    if has_html(raw):
        extracted = extract_html(raw.html, raw.url, max_html_bytes)
    original = extracted.text or raw.text or ""
    if not original.strip():
        kind = "html" if has_html(raw) else "text"
        raise PermanentError(f"no extractable text in the {kind}")

    repaired, changed = repair(original)
    header_date, text = split_date_header(repaired)
    text = normalise_whitespace(strip_byline(text))
    dateline, text = parse_dateline(text)
    text = strip_trailers(strip_byline(text.strip()))
    if not text:
        raise PermanentError("no extractable text left after removing dateline, byline and boilerplate")

    language, confidence = detect_language(text)
    if language == "und" and _language_hint(raw.language):
        language, confidence = _language_hint(raw.language), 0.0

    metadata = dict(raw.metadata)
    for key, value in _extraction_metadata(extracted).items():
        metadata.setdefault(key, value)
    if changed:
        metadata.setdefault("original_text", original)

    article = CleanArticle(
        id=article_id,
        url=raw.url,
        source=raw.source,
        title=_text_or_none(raw.title) or extracted.title or first_sentence_title(text) or None,
        text=text,
        language=language,
        language_confidence=confidence,
        published_at=raw.published_at or _midnight(header_date) or _midnight(_iso_date(extracted.date)),
        dateline=dateline,
        word_count=len(WORD.findall(text)),
        content_hash=content_hash(text),
        metadata=metadata,
        received_at=received_at,
    )
    if store_raw:
        _attach_raw_source(article, raw, max_html_bytes if max_body_bytes is None else max_body_bytes)
    return article


# A small page for warm_up: a short text (so the full extraction cascade runs, with jusText), and dates that
# htmldate's own patterns do not read (it looks up month names in every dateparser locale, then asks dateparser).
WARM_UP_PAGE = """<html lang="en"><head><title>Storm closes the port</title></head><body>
<div><span class="date">vendredi 2, 10:30</span> <span class="date">March 3 10:30 2021</span></div>
<article><h1>Storm closes the port</h1><p>SAVANNAH, Ga. (AP) — The port closed on Tuesday as the storm came ashore,
officials said.</p></article></body></html>"""


@cache
def warm_up() -> None:
    """Pay the cleaner's one-time costs before the first article instead of on it: the place tables and the
    language model, jusText's stop lists, dateparser's locales, the regular expressions built on first use.
    About a second, once per process; left to the first pages, it was 3% of the cleaner's time over 724 articles."""
    for raw in (RawArticle(text="SEOUL, South Korea (AP) — A warm-up sentence for the cleaner's place tables."),
                RawArticle(html=WARM_UP_PAGE, url="https://example.com/warm-up")):
        try:
            clean(raw, article_id="warm-up")
        except PermanentError:
            pass


def has_html(raw: RawArticle) -> bool:
    """Whether the article came as a page (HTML that is not blank), which the cleaner extracts, or as text."""
    return bool(raw.html and raw.html.strip())


def raw_source(raw: RawArticle) -> dict[str, str | None]:
    """What is kept of the raw article: its HTML if it had any, else its text; and its url."""
    page = has_html(raw)
    return {"html": raw.html if page else None, "text": None if page else raw.text, "url": raw.url}


def _attach_raw_source(article: CleanArticle, raw: RawArticle, max_body_bytes: int) -> None:
    # A producer's own value under the reserved key never reaches storage as if it were the raw source.
    article.metadata.pop(RAW_SOURCE_KEY, None)
    article.metadata.pop(RAW_SOURCE_SKIPPED_KEY, None)
    article.metadata[RAW_SOURCE_KEY] = raw_source(raw)
    size = len(dump(article).encode("utf-8", "surrogatepass"))
    if size + CLASSIFIER_HEADROOM_BYTES > max_body_bytes:
        del article.metadata[RAW_SOURCE_KEY]
        article.metadata[RAW_SOURCE_SKIPPED_KEY] = {
            "reason": "too_large", "entry_bytes": size, "max_body_bytes": max_body_bytes,
        }


def content_hash(text: str) -> str:
    return hashlib.sha256(" ".join(text.lower().split()).encode("utf-8", "surrogatepass")).hexdigest()


def _extraction_metadata(extracted: Extracted) -> dict[str, object]:
    found = {
        "authors": extracted.authors,
        "sitename": extracted.sitename,
        "description": extracted.description,
        "canonical_url": extracted.canonical_url,
        "image": extracted.image,
    }
    return {key: value for key, value in found.items() if value}


def _language_hint(hint: str | None) -> str | None:
    """`en`, `EN` or `en-US` -> `en`; anything else -> None."""
    primary = (hint or "").strip().replace("_", "-").split("-")[0].lower()
    return primary if len(primary) == 2 and primary.isascii() and primary.isalpha() else None


def _text_or_none(value: str | None) -> str | None:
    value = " ".join(value.split()) if value else ""
    return value or None


def _iso_date(value: str | None) -> date | None:
    try:
        return date.fromisoformat(value[:10]) if value else None
    except ValueError:
        return None


def _midnight(day: date | None) -> datetime | None:
    return datetime.combine(day, time(0), tzinfo=timezone.utc) if day else None
