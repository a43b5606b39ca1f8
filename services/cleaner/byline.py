"""trafilatura's author search (its `extract_author`), with its XPath expressions evaluated in one Python pass.

trafilatura finds a byline with three XPath expressions, after pruning comment, sidebar and figure elements with
two more. Each is `//*[...]` over the whole page, and most test an element's `class` and `id` with EXSLT regular
expressions, which lxml runs as a call back into Python for every element. On the extraction benchmark's pages
the step cost 6 to 7.5 ms a page when it ran (on the 40% of pages whose meta tags name no author): 12% of a
cleaner worker's time. Replacing the regular expressions with `contains()` did not help: libxml2 allocates a node
set for every attribute test. Here the page's elements are listed once with their tag, id and class, and each
expression is a test of one element on that list: 2.5 ms a page.

The expressions are trafilatura 2.3's (`AUTHOR_XPATHS`, `AUTHOR_DISCARD_XPATHS`), translated one for one below.
`matches_trafilatura()` says whether the installed trafilatura still has exactly those; when it does not, the
caller uses trafilatura's own. tests/unit/test_cleaner_byline.py checks every expression against its XPath on
random pages and on the extraction benchmark's pages.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from copy import deepcopy

import trafilatura.metadata as tm
from lxml.etree import Element, XPath, _Element
from trafilatura.xml import delete_element

# The XPath sources this module translates, as trafilatura 2.3 writes them (whitespace aside).
AUTHOR_SOURCES = (
    """//*[self::a or self::address or self::div or self::link or self::p or self::span or self::strong][
    @rel='author' or @id='author' or @class='author' or @itemprop='author name' or rel='me' or
    @data-testid='AuthorCard' or @data-testid='AuthorURL' or
    re:test(@class, 'author-?name|AuthorName|authorName')]|//author""",
    """//*[self::a or self::div or self::h3 or self::h4 or self::p or self::span][
    @class='byline' or @class='username' or @class='byl' or @class='BBL' or
    contains(@itemprop, 'author') or
    re:test(@id, 'author|zuozhe|bianji|xiaobian') or
    re:test(@class, 'author|channel-name|zuozhe|bianji|xiaobian|submitted-by|posted-by|journalist-name')]""",
    """//*[
    contains(@data-component, 'Byline') or contains(@itemprop, 'author') or
    re:test(@id, '[Aa]uthor') or
    re:test(@class, '[Aa]uthor|screenname|writer|[Bb]yline')]""",
)
DISCARD_SOURCES = (
    """.//*[self::a or self::div or self::section or self::span][
    @id='comments' or @class='comments' or @class='title' or @class='date' or
    re:test(@id, '^comments|comment-?list|ProductReviews') or
    re:test(@class, '^[Cc]omments|commentlist|comments-list|sidebar|is-hidden|quote|embedly-instagram|article-(?:share|support)|print|category|meta-date|meta-reviewer') or
    contains(@data-component, 'Figure')]""",
    "//time|//figure",
)

# lxml's re:test is re.search with the pattern as given (no flags here).
AUTHOR_CLASS_0 = re.compile("author-?name|AuthorName|authorName")
AUTHOR_ID_1 = re.compile("author|zuozhe|bianji|xiaobian")
AUTHOR_CLASS_1 = re.compile("author|channel-name|zuozhe|bianji|xiaobian|submitted-by|posted-by|journalist-name")
AUTHOR_ID_2 = re.compile("[Aa]uthor")
AUTHOR_CLASS_2 = re.compile("[Aa]uthor|screenname|writer|[Bb]yline")
DISCARD_ID = re.compile("^comments|comment-?list|ProductReviews")
DISCARD_CLASS = re.compile(
    "^[Cc]omments|commentlist|comments-list|sidebar|is-hidden|quote|embedly-instagram|article-(?:share|support)"
    "|print|category|meta-date|meta-reviewer"
)

TAGS_0 = frozenset(("a", "address", "div", "link", "p", "span", "strong"))
TAGS_1 = frozenset(("a", "div", "h3", "h4", "p", "span"))
DISCARD_TAGS = frozenset(("a", "div", "section", "span"))
CLASSES_1 = frozenset(("byline", "username", "byl", "BBL"))
DISCARD_CLASSES = frozenset(("comments", "title", "date"))
REL_ME = XPath("boolean(self::*[rel='me'])")  # a child element <rel> whose text is "me": a literal translation


def matches_trafilatura() -> bool:
    """Whether the installed trafilatura's author expressions are the ones translated here."""
    try:
        author, discard = tm.AUTHOR_XPATHS, tm.AUTHOR_DISCARD_XPATHS
    except AttributeError:
        return False
    return [_squash(x.path) for x in (*author, *discard)] == [_squash(s) for s in (*AUTHOR_SOURCES, *DISCARD_SOURCES)]


def find_author(tree: _Element) -> str | None:
    """trafilatura's extract_author(tree), without its copy when `tree` is a document's root: it is pruned in place.
    (trafilatura searches a deep copy, which makes any tree the root of its own document: below the root, so
    does this.)"""
    if tree.getparent() is not None:
        tree = deepcopy(tree)
    root = tree
    # Every element once, with the attributes most tests read. Attributes and tags do not change as elements are
    # pruned, so the author tests below can run on this list afterwards, on the elements still attached.
    rows = [(e, e.tag, e.get("id"), e.get("class")) for e in root.iter(Element)]
    pruned = [e for e, tag, id_, cls in rows[1:] if tag in DISCARD_TAGS and _discarded(e, id_, cls)]
    for elem in pruned:  # prune_unwanted_nodes: the first expression's results, then the second's on what is left
        delete_element(elem)
    for elem in list(root.iter("time", "figure")):
        delete_element(elem)
    # extract_metainfo: the first expression whose results (in document order) hold a usable text
    for matches in (_author_0, _author_1, _author_2):
        for elem in [e for e, tag, id_, cls in rows if matches(e, tag, id_, cls) and _attached(e, root)]:
            content = tm.trim(" ".join(elem.itertext()))
            if content and 2 < len(content) < 120:
                return tm.normalize_authors(None, content)
    return None


def _attached(elem: _Element, root: _Element) -> bool:
    while (parent := elem.getparent()) is not None:
        elem = parent
    return elem is root


def _discarded(e: _Element, id_: str | None, cls: str | None) -> bool:
    # the tag test (a, div, section, span) is the caller's
    return (id_ == "comments" or cls in DISCARD_CLASSES
            or DISCARD_ID.search(id_ or "") is not None or DISCARD_CLASS.search(cls or "") is not None
            or "Figure" in (e.get("data-component") or ""))


def _author_0(e: _Element, tag: str, id_: str | None, cls: str | None) -> bool:
    if tag == "author":
        return True
    if tag not in TAGS_0:
        return False
    return (cls == "author" or id_ == "author" or e.get("rel") == "author" or e.get("itemprop") == "author name"
            or e.get("data-testid") in ("AuthorCard", "AuthorURL") or AUTHOR_CLASS_0.search(cls or "") is not None
            or (e.find("rel") is not None and REL_ME(e)))


def _author_1(e: _Element, tag: str, id_: str | None, cls: str | None) -> bool:
    if tag not in TAGS_1:
        return False
    return (cls in CLASSES_1 or AUTHOR_ID_1.search(id_ or "") is not None
            or AUTHOR_CLASS_1.search(cls or "") is not None or "author" in (e.get("itemprop") or ""))


def _author_2(e: _Element, tag: str, id_: str | None, cls: str | None) -> bool:
    return (AUTHOR_ID_2.search(id_ or "") is not None or AUTHOR_CLASS_2.search(cls or "") is not None
            or "author" in (e.get("itemprop") or "") or "Byline" in (e.get("data-component") or ""))


def _squash(source: str) -> str:
    return " ".join(source.split())


# For the tests: each translated expression, as a test of one element, beside trafilatura's XPath.
Test = Callable[[_Element, str, "str | None", "str | None"], bool]
AUTHOR_TESTS: tuple[Test, ...] = (_author_0, _author_1, _author_2)
