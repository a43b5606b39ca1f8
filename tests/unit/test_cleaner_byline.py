"""services/cleaner/byline.py: trafilatura's author search in one Python pass must find what trafilatura finds.

Checked on random pages built from the attribute values and tags the expressions test (seeded, so a failure
repeats), and on the extraction benchmark's 181 real pages when ../shared is there.
"""

from __future__ import annotations

import gzip
import json
import random
from copy import deepcopy
from pathlib import Path

import pytest
import trafilatura.metadata as tm
from lxml.etree import Element
from lxml.html import document_fromstring
from trafilatura.utils import load_html

from services.cleaner import byline, extract

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "benchdata" / "article-extraction"

TAGS = ["a", "address", "div", "link", "p", "span", "strong", "h3", "h4", "section", "li", "author", "time",
        "figure", "rel", "article", "b"]
# Values on the edges of the expressions: exact matches, anchored and unanchored substrings, case variants.
VALUES = ["author", "Author", "authorName", "author-name", "authorname", "AuthorName", "post-author", "byline",
          "Byline", "BBL", "byl", "bylines", "username", "screenname", "writer", "zuozhe", "bianji", "xiaobian",
          "channel-name", "submitted-by", "posted-by", "journalist-name", "comments", "Comments", "xcomments",
          "comments-list", "commentlist", "comment-list", "ProductReviews", "title", "date", "sidebar", "is-hidden",
          "quote", "embedly-instagram", "article-share", "article-support", "article-shared", "print", "category",
          "meta-date", "meta-reviewer", "content", "me", "author name", "AuthorCard", "AuthorURL", "Figure",
          "xFigurey", "Byline-top", "main", ""]
ATTRIBUTES = ["class", "id", "rel", "itemprop", "data-testid", "data-component"]
WORDS = ["By Jane Doe", "Jane Doe", "me", "AP", "x", "Staff writer and editor", "Reporter", "  ", "John Smith and Ann Lee"]


def _element(rng: random.Random, depth: int) -> str:
    tag = rng.choice(TAGS)
    attrs = "".join(f' {name}="{rng.choice(VALUES)}"' for name in rng.sample(ATTRIBUTES, rng.randint(0, 3)))
    inner = rng.choice(WORDS) if rng.random() < 0.7 else ""
    if depth < 5:
        inner += "".join(_element(rng, depth + 1) + rng.choice(["", " tail ", "me"]) for _ in range(rng.randint(0, 3)))
    return f"<{tag}{attrs}>{inner}</{tag}>"


def _pages(count: int) -> list[str]:
    rng = random.Random(20261129)
    return [f"<html><body>{''.join(_element(rng, 0) for _ in range(rng.randint(1, 6)))}</body></html>"
            for _ in range(count)]


def _rows(tree):
    return [(e, e.tag, e.get("id"), e.get("class")) for e in tree.iter(Element)]


def _real_pages() -> list[str]:
    if not (DATA / "ground-truth.json").is_file():
        return []
    truth = json.loads((DATA / "ground-truth.json").read_text(encoding="utf-8"))
    return [gzip.decompress((DATA / "html" / f"{pid}.html.gz").read_bytes()).decode("utf-8") for pid in sorted(truth)]


def test_the_installed_trafilatura_has_the_translated_expressions():
    # Else the cleaner silently falls back to trafilatura's own search, at about three times the cost.
    assert byline.matches_trafilatura()
    assert extract.FAST_BYLINE


def test_each_expression_selects_what_its_xpath_selects_on_random_pages():
    selected = 0
    for html in _pages(400):
        tree = document_fromstring(html)
        rows = _rows(tree)
        for test, xpath in zip(byline.AUTHOR_TESTS, tm.AUTHOR_XPATHS):
            ours = [row[0] for row in rows if test(*row)]
            assert ours == xpath(tree), html
            selected += len(ours)
        discarded = [e for e, tag, id_, cls in rows[1:] if tag in byline.DISCARD_TAGS and byline._discarded(e, id_, cls)]
        assert discarded == tm.AUTHOR_DISCARD_XPATHS[0](tree), html
        selected += len(discarded)
    assert selected > 1000  # the pages do exercise the expressions


def test_find_author_finds_what_trafilatura_finds_on_random_pages():
    found = 0
    for html in _pages(400):
        theirs = tm.extract_author(document_fromstring(html))
        assert byline.find_author(document_fromstring(html)) == theirs, html
        found += theirs is not None
    assert 50 < found < 400  # both outcomes occur


def test_a_child_rel_element_reading_me_counts_as_in_trafilaturas_xpath():
    html = "<html><body><div><p>Jane Doe<rel>me</rel></p></div></body></html>"
    assert tm.extract_author(document_fromstring(html)) == byline.find_author(document_fromstring(html)) == "Jane Doe me"


def test_pruned_elements_and_their_tails_are_as_trafilatura_leaves_them():
    # the byline is inside a discarded box, and a <time> in the byline leaves its tail behind
    html = ("<html><body><div class='sidebar'><span class='author'>Not Him</span></div>"
            "<p class='byline'>By <time>today</time>Jane Doe</p></body></html>")
    assert tm.extract_author(document_fromstring(html)) == byline.find_author(document_fromstring(html)) == "Jane Doe"


def test_a_tree_below_the_root_is_searched_as_trafilatura_searches_it():
    html = "<html><body><div id='x'><p class='byline'>By Jane Doe</p></div><p class='byline'>By Ann Lee</p></body></html>"
    sub = document_fromstring(html).get_element_by_id("x")
    assert tm.extract_author(sub) == byline.find_author(deepcopy(sub)) == byline.find_author(sub) == "Jane Doe"


def test_another_trafilatura_gets_its_own_search(monkeypatch):
    from lxml.etree import XPath

    changed = [*tm.AUTHOR_XPATHS[:2], XPath("//*[@class='writer']")]
    monkeypatch.setattr(tm, "AUTHOR_XPATHS", changed)
    assert not byline.matches_trafilatura()
    monkeypatch.setattr(extract, "FAST_BYLINE", False)
    html = "<html><body><p class='post-writer'>Jane Doe</p><p class='writer'>Ann Lee</p></body></html>"
    assert extract._author(document_fromstring(html)) == "Ann Lee"  # trafilatura's (changed) expressions ran


@pytest.mark.skipif(not (DATA / "ground-truth.json").is_file(), reason=f"no extraction benchmark at {DATA}")
def test_expressions_and_authors_agree_on_the_benchmark_pages():
    for html in _real_pages():
        tree = load_html(html)
        rows = _rows(tree)
        for test, xpath in zip(byline.AUTHOR_TESTS, tm.AUTHOR_XPATHS):
            assert [row[0] for row in rows if test(*row)] == xpath(tree)
        assert byline.find_author(deepcopy(tree)) == tm.extract_author(tree)
