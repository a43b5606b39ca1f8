"""Main text and metadata from an HTML page, with trafilatura."""

from __future__ import annotations

from dataclasses import dataclass, field

import trafilatura
from lxml.etree import LxmlError

from shared.errors import PermanentError

MAX_HTML_BYTES = 5 * 1024 * 1024


@dataclass
class Extracted:
    text: str = ""
    title: str | None = None
    authors: list[str] = field(default_factory=list)
    date: str | None = None  # YYYY-MM-DD
    sitename: str | None = None
    description: str | None = None
    canonical_url: str | None = None
    image: str | None = None


def extract_html(html: str, url: str | None = None, max_bytes: int = MAX_HTML_BYTES) -> Extracted:
    """The page's main text, paragraphs separated by blank lines, and its metadata; empty text when there is none."""
    if _too_big(html, max_bytes):
        raise PermanentError(f"html larger than {max_bytes} bytes")
    try:
        doc = trafilatura.bare_extraction(
            html,
            url=url,
            with_metadata=True,
            favor_precision=True,
            include_comments=False,
        )
    except (ValueError, TypeError, LxmlError, RecursionError):
        doc = None
    if doc is None:
        return Extracted()

    title = _clean(doc.title)
    paragraphs = [line.strip() for line in (doc.text or "").split("\n") if line.strip()]
    # trafilatura keeps the page's headline as the first line of the text.
    if paragraphs and title and " ".join(paragraphs[0].split()).casefold() == " ".join(title.split()).casefold():
        paragraphs = paragraphs[1:]
    return Extracted(
        text="\n\n".join(paragraphs),
        title=title,
        authors=[a.strip() for a in (doc.author or "").split(";") if a.strip()],
        date=doc.date or None,
        sitename=_clean(doc.sitename),
        description=_clean(doc.description),
        canonical_url=doc.url if doc.url and doc.url != url else None,
        image=_clean(doc.image),
    )


def _too_big(html: str, max_bytes: int) -> bool:
    # A UTF-8 character is one to four bytes: encode only when the length alone cannot tell.
    if len(html) > max_bytes:
        return True
    if len(html) * 4 <= max_bytes:
        return False
    return len(html.encode("utf-8", "surrogatepass")) > max_bytes


def _clean(value: str | None) -> str | None:
    value = " ".join(value.split()) if value else ""
    return value or None
