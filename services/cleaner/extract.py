"""Main text and metadata from an HTML page, with trafilatura.

How the text is chosen. Figures are from `python bench/extraction.py` (the ScrapingHub article-extraction
benchmark, 181 pages, trafilatura 2.3.1), where bare `trafilatura.extract(html)` scores F1 0.953 at about 76
pages/s and this module 0.975 at about 80.

1. The page is parsed once; trafilatura runs on that tree in precision mode with `fast=True`, which skips its
   comparison with readability and jusText (the comparison is about 40% of trafilatura's time and changed the
   text on 6 of the 181 pages). Reader comments are left out (favor_precision without comments: F1 0.964,
   with them 0.959): a thread can be longer than the article.
2. Only when that text is short does the full cascade run: precision mode with the comparison, then the
   balanced mode. A short text is where the fast path fails: it found a teaser, a notice or nothing (fast
   precision alone: F1 0.948; with the cascade for texts under 500 characters: 0.973, on 8 pages of 181).
3. The text's lines are post-processed: the headline at the top and the page's own furniture (cross-links,
   "Comments", "Share this", newsletter and social-media calls at the end) are dropped (0.973 to 0.975).
4. The metadata are trafilatura's, without the categories, tags and licence it would also look for (see
   _metadata): with all of extract_metadata the module was 8% slower than bare trafilatura. Its author step,
   which comes last, prunes the parsed tree itself instead of a copy (0.35 ms a page), and evaluates
   trafilatura's byline expressions in one pass (byline.py: 2.5 ms a page instead of 6 to 7.5).
"""

from __future__ import annotations

import re
from copy import deepcopy
from dataclasses import dataclass, field
from functools import lru_cache

import trafilatura
import trafilatura.metadata as tm
from lxml.etree import LxmlError, XPath, _Element
from lxml.html import HtmlElement
from trafilatura.settings import Document, set_date_params
from trafilatura.utils import load_html

from services.cleaner.byline import find_author, matches_trafilatura
from services.cleaner.limits import Expired, time_limit
from shared.errors import PermanentError

# A typical page takes 10-15 ms; a page still going after this is pathological, not news.
EXTRACT_TIMEOUT_S = 10.0

MAX_HTML_BYTES = 5 * 1024 * 1024

# Elements nested deeper than this and the page is refused. libxml2 (the parser under lxml and trafilatura) stops
# at 256 levels and silently drops the rest of the page, so 100,000 nested <div>s parse quickly but into a stub;
# news pages nest 10 to 50 deep (51 at most on the extraction benchmark's 181 pages). Below 256, so that a tree
# libxml2 cut short is always caught, with room for sloppy pages whose unclosed tags pile up.
MAX_HTML_DEPTH = 200

# Below this many characters the fast path's text is suspect and the full cascade runs. trafilatura itself
# treats 250 characters (MIN_EXTRACTED_SIZE) as "too short" and twice that as enough text to trust another
# algorithm's result; a news article is seldom shorter than 500 characters (two short paragraphs), while a
# teaser, a paywall or a "copy for personal use" notice usually is.
SHORT_TEXT = 500
BALANCED_RATIO = 2  # as trafilatura's own rule for preferring readability's text: "much longer" is twice as long

# Lines that link to other pages or are the page's own furniture wherever they stand in the text: "Related:
# <headline>", "Read more: <headline>", "SEE MORE: ...", "DON'T MISS", "You may also like...". They come from
# in-text boxes that trafilatura keeps because they sit inside the article's container. A colon (or an
# ellipsis) is required after the leading word(s), or the line must be the label alone, so that sentences
# starting with "More" or "Watch" are kept.
CROSS_LINK = re.compile(
    r"^(?:related(?:\s+(?:posts?|stories|story|articles?|content|reading|coverage|links?))?|read\s+(?:more|also|next)"
    r"|also\s+read|see\s+(?:more|also)|more|also|also\s+on\s+[\w.-]+|recommended(?:\s+(?:reading|for\s+you))?"
    r"|most\s+(?:read|popular|viewed)(?:\s+in\s+[\w\s]{1,30})?|don['’]?t\s+miss|you\s+(?:may|might)\s+also\s+like"
    r"|more\s+from\s+[^:]{1,40}|more\s+on\s+this(?:\s+story)?|trending(?:\s+now)?|popular\s+now)"
    r"\s*(?::|…|\.\.\.|$)",
    re.IGNORECASE,
)
# A line that is only a label of a widget: comment counters, share buttons, advertisement slots, "Tags".
WIDGET_LABEL = re.compile(
    r"^(?:\d*\s*comments?|leave\s+a\s+(?:comment|reply)|tags?|share(?:\s+this(?:\s+(?:article|story|post|page))?)?"
    r"|share\s+on\s+\w+|advertisement|sponsored(?:\s+content)?|print|e-?mail|loading\.*|click\s+to\s+tweet"
    r"|tell\s+us\s+what\s+you\s+think\.*)\s*[:!.]?$",
    re.IGNORECASE,
)
# A WordPress "Click to Tweet" box renders its button label glued to the quote it repeats.
CLICK_TO_TWEET = re.compile(r"\s*Click\s+To\s+Tweet\s*$", re.IGNORECASE)
# Calls to action that close an article: follow us, share it, subscribe to the newsletter, filed under. Only
# removed from the end of the text (trailing lines, repeatedly), because the same words inside an article
# ("sign up for a free trial") are often content.
TRAILER = re.compile(
    r"^(?:follow\s+(?:us|@?[\w.]+(?:\s+[\w.]+){0,4})\s+on\s+(?:twitter|facebook|instagram|linkedin|youtube)"
    r"|like\s+this\s+(?:story|article)|share\s+(?:this|it)\s+with|have\s+a\s+(?:news\s+)?tip"
    r"|(?:filed|posted)\s+(?:under|in)\s*:|categor(?:y|ies)\s*:|tags?\s*:|source\s*:"
    r"|e-?mail\s+\S+(?:\s+\S+){0,4}\s+at\s+\S+@|get\s+the\s+latest\b.*\b(?:inbox|newsletter)"
    r"|.{0,80}\bnewsletters?\b.{0,120}$|.{0,80}\bdelivered\s+to\s+your\s+inbox\b"
    r"|sign\s+up\s+(?:for|to)\s+(?:our|the)\b.{0,80}\b(?:newsletter|e-?mails?|updates)\b)",
    re.IGNORECASE,
)
TRAILER_MAX_WORDS = 40  # a call to action is short; a long closing paragraph that says "newsletter" is content

# The steps of trafilatura's extract_metadata that _metadata runs (all but categories, tags and licence), and
# what its extract_author is made of.
METADATA_STEPS = ("examine_meta", "extract_meta_json", "extract_title", "extract_url", "find_date",
                  "extract_sitename", "META_URL", "prune_unwanted_nodes", "extract_metainfo", "normalize_authors",
                  "AUTHOR_XPATHS", "AUTHOR_DISCARD_XPATHS")
LIGHT_METADATA = all(hasattr(tm, name) for name in METADATA_STEPS)
FAST_BYLINE = LIGHT_METADATA and matches_trafilatura()


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


def extract_html(html: str, url: str | None = None, max_bytes: int = MAX_HTML_BYTES, timeout_s: float = EXTRACT_TIMEOUT_S,
                 max_depth: int = MAX_HTML_DEPTH) -> Extracted:
    """The page's main text, paragraphs separated by blank lines, and its metadata; empty text when there is none.

    PermanentError when the page is over `max_bytes`, nests elements more than `max_depth` deep, or takes longer
    than `timeout_s` to parse and extract."""
    if _too_big(html, max_bytes):
        raise PermanentError(f"html larger than {max_bytes} bytes")
    try:
        with time_limit(timeout_s):
            return _extract_page(html, url, max_depth)
    except Expired:
        raise PermanentError(f"extraction took longer than {timeout_s:g} s") from None


def _extract_page(html: str, url: str | None, max_depth: int = MAX_HTML_DEPTH) -> Extracted:
    try:
        tree = load_html(html)
    except (ValueError, TypeError, LxmlError, RecursionError):
        tree = None
    if tree is None:
        return Extracted()
    if _deeper_than(max_depth)(tree):
        raise PermanentError(f"html nests elements more than {max_depth} deep")

    doc = _extract(tree, url, fast=True)
    text, body = (doc.text or "", doc.body) if doc is not None else ("", None)
    if len(text) < SHORT_TEXT:
        text, body = _full_cascade(tree, url, text, body)
    meta = _metadata(tree, url, may_prune=True)  # the tree is not used after this

    title = _clean(meta.title)
    return Extracted(
        text="\n\n".join(_main_lines(text, title, _leading_heading(body))),
        title=title,
        authors=[a.strip() for a in (meta.author or "").split(";") if a.strip()],
        date=meta.date or None,
        sitename=_clean(meta.sitename),
        description=_clean(meta.description),
        canonical_url=meta.url if meta.url and meta.url != url else None,
        image=_clean(meta.image),
    )


def _extract(tree: HtmlElement, url: str | None, *, fast: bool, precision: bool = True) -> Document | None:
    # bare_extraction copies a tree it is given, so one parse serves every pass.
    try:
        return trafilatura.bare_extraction(
            tree,
            url=url,
            fast=fast,
            favor_precision=precision,
            include_comments=False,  # reader comments are not the article
        )
    except (ValueError, TypeError, LxmlError, RecursionError):
        return None


def _metadata(tree: HtmlElement, url: str | None, *, may_prune: bool = False) -> Document:
    """trafilatura's metadata for the fields Extracted has: its extract_metadata without the categories, tags
    and licence, which cost about a third of its time (1.2 ms of 4 ms a page on the benchmark) and are not used.

    The steps are extract_metadata's own (trafilatura 2.3), in its order but the author's, which comes last and
    may prune `tree` in place when `may_prune` (the caller is done with the tree), instead of a deep copy of it.
    tests/unit/test_cleaner_extract_bench.py checks that both agree. A trafilatura without these helpers gets
    its extract_metadata.
    """
    try:
        if not LIGHT_METADATA:  # another trafilatura: all of extract_metadata
            return trafilatura.extract_metadata(tree, default_url=url, date_config=_date_params())
        m = tm
        meta = m.examine_meta(tree)
        if meta.author and " " not in meta.author:
            meta.author = None
        try:
            meta = m.extract_meta_json(tree, meta)
        except Exception:  # noqa: BLE001 - as extract_metadata: a bug in the JSON-LD parser costs that part only
            pass
        if not meta.title:
            meta.title = m.extract_title(tree)
        if not meta.url:
            meta.url = m.extract_url(tree, url)
        # htmldate's extensive search, as bare_extraction runs it (trafilatura's EXTENSIVE_DATE_SEARCH = on): on
        # the benchmark it found a date on 181 pages instead of 179, for 0.05 ms a page more.
        meta.date = m.find_date(tree, **_date_params(), url=meta.url)
        if not meta.sitename:
            meta.sitename = m.extract_sitename(tree)
        if meta.sitename:
            meta.sitename = meta.sitename.lstrip("@")
            if meta.sitename and "." not in meta.sitename and not meta.sitename[0].isupper():
                meta.sitename = meta.sitename.title()
        elif meta.url and (match := m.META_URL.match(meta.url)):
            meta.sitename = match[1]
        if not meta.author:  # last: it prunes the tree (no other step reads the author)
            meta.author = _author(tree if may_prune else deepcopy(tree))
        meta.clean_and_trim()
        return meta
    except (ValueError, TypeError, LxmlError, RecursionError):
        return Document()


def _author(tree: HtmlElement) -> str | None:
    """trafilatura's extract_author without its deep copy of the tree: it prunes `tree`. The copy was 0.35 ms of
    the metadata's 3.7 ms a page on the benchmark (it runs on the 40% of pages without an author in their meta
    tags or JSON-LD). With the expressions trafilatura 2.3 has, byline.find_author does the same in a
    third of the time."""
    if FAST_BYLINE:
        return find_author(tree)
    subtree = tm.prune_unwanted_nodes(tree, tm.AUTHOR_DISCARD_XPATHS)
    author = tm.extract_metainfo(subtree, tm.AUTHOR_XPATHS, len_limit=120)
    return tm.normalize_authors(None, author) if author else author


def _date_params() -> dict:
    return set_date_params(extensive=True)


def _full_cascade(
    tree: HtmlElement, url: str | None, text: str, body: _Element | None
) -> tuple[str, _Element | None]:
    """The fast path's short text replaced by the full cascade's, when that finds more.

    First precision mode with trafilatura's comparison against readability and jusText: its text is taken when
    longer. When it is still short, balanced mode: on a page whose article precision mode cannot find (the
    benchmark's barrons.com page starts with a "copy for personal use" notice) it finds the article. Its text
    is taken only when at least twice as long: a slightly longer one is the same teaser plus the headline and
    standfirst that precision mode rightly left out (the benchmark's wsj.com teaser).
    """
    doc = _extract(tree, url, fast=False)
    if doc is not None and len(doc.text or "") > len(text):
        text, body = doc.text, doc.body
    if len(text) < SHORT_TEXT:
        doc = _extract(tree, url, fast=False, precision=False)
        if doc is not None and len(doc.text or "") > BALANCED_RATIO * len(text):
            text, body = doc.text, doc.body
    return text, body


def _leading_heading(body: _Element | None) -> str | None:
    """The text of the extracted body's first element when that element is a heading."""
    if body is None or not len(body) or body[0].tag != "head":
        return None
    return _norm("".join(body[0].itertext())) or None


def _main_lines(text: str, title: str | None, heading: str | None) -> list[str]:
    lines = [line.strip() for line in text.split("\n") if line.strip()]
    # trafilatura keeps the page's headline as the first line of the text: drop it when it is the title, or
    # when the text begins with a heading (the on-page headline often differs from <title> and og:title).
    if lines and ((title and _norm(lines[0]) == _norm(title)) or (heading and _norm(lines[0]) == heading)):
        lines = lines[1:]
    lines = [CLICK_TO_TWEET.sub("", line) for line in lines]
    lines = [line for line in lines if line and not CROSS_LINK.match(line) and not WIDGET_LABEL.match(line)]
    while lines and TRAILER.match(lines[-1]) and len(lines[-1].split()) <= TRAILER_MAX_WORDS:
        lines.pop()
    return lines


def _norm(value: str) -> str:
    return " ".join(value.split()).casefold()


@lru_cache(maxsize=8)
def _deeper_than(depth: int) -> XPath:
    """Whether a tree has an element below `depth` levels: /*/*/... one step more than `depth`, evaluated in C
    level by level (about 0.05 ms on a news page)."""
    return XPath("boolean(" + "/*" * (depth + 1) + ")")


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
