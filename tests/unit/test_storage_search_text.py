"""What full-text search indexes besides the title: the whole text (scope full) or the lead cut at a word (scope
lead), then the keywords and entity names."""

from __future__ import annotations

import pytest

from services.storage.repository import LEAD_CHARS, open_repository, search_text
from shared.contract import ClassifiedArticle, Entity


def article(text: str, **fields) -> ClassifiedArticle:
    return ClassifiedArticle(id="a", title="T", text=text, **fields)


def test_a_short_text_is_indexed_whole_with_the_keywords_and_entity_names():
    a = article("Floods in the north.", keywords=["river", "flood warning"],
                entities=[Entity(name="Met Office", kind="organization"), Entity(name="Jane Doe", kind="person")])
    assert search_text(a, "lead") == "Floods in the north.\nriver\nflood warning\nMet Office\nJane Doe"


def test_a_long_text_is_cut_after_lead_chars_at_a_word():
    words = "alpha beta gamma delta " * LEAD_CHARS
    lead = search_text(article(words), "lead")
    assert len(lead) <= LEAD_CHARS and words.startswith(lead)
    assert lead.split()[-1] in {"alpha", "beta", "gamma", "delta"}  # never the first half of a cut word
    assert len(lead) > LEAD_CHARS - len("gamma ")  # and nothing more than that is dropped


def test_the_cut_keeps_a_word_that_ends_exactly_at_the_limit():
    text = "x" * (LEAD_CHARS - 5) + " word tail"  # "word" ends at LEAD_CHARS, a space follows
    assert search_text(article(text), "lead") == text[:LEAD_CHARS]
    text = "x" * (LEAD_CHARS - 5) + " words tail"  # "words" is cut: dropped
    assert search_text(article(text), "lead") == "x" * (LEAD_CHARS - 5)
    text = "x" * (LEAD_CHARS - 1) + " next"  # the cut falls on the space: the words before it stay
    assert search_text(article(text), "lead") == "x" * (LEAD_CHARS - 1) + " "


def test_the_full_scope_keeps_every_word():
    words = "alpha beta gamma delta " * LEAD_CHARS
    a = article(words, keywords=["k"])
    assert search_text(a) == search_text(a, "full") == f"{words}\nk"


def test_an_unknown_scope_is_refused():
    with pytest.raises(ValueError, match="search scope"):
        search_text(article("x"), "everything")
    with pytest.raises(ValueError, match="search scope"):
        open_repository("sqlite:///x.db", search_scope="title")
