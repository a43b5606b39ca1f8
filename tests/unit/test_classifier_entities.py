"""Rule-based people and organisations."""

from __future__ import annotations

import pytest

from services.classifier.entities import extract_entities
from services.classifier.places import build_gazetteer


@pytest.fixture(scope="module")
def gaz():
    return build_gazetteer()


def _ents(gaz, text, title=None):
    return {e.name: e for e in extract_entities(text, title=title, is_place=gaz.is_place, is_country=gaz.is_country)}


TEXT = (
    "WASHINGTON — National Security Council spokesperson John Kirby said on Monday that the United States "
    "would send more aid. The North Korean Foreign Ministry rejected the claim. Kirby said the White House "
    "had briefed NATO and the European Union.\n\n"
    "Russian President Vladimir Putin told reporters in Moscow that the Ministry of Foreign Affairs would "
    "respond. \"We are ready,\" said Maria Zakharova, the ministry's spokeswoman. Zakharova added that "
    "the U.N. Security Council would meet.\n\n"
    "Separately, Secretary of State Antony Blinken met Dr. Jane Smith of Harvard University."
)


def test_people_and_organisations(gaz):
    got = _ents(gaz, TEXT)
    assert got["John Kirby"].kind == "person" and got["John Kirby"].count == 2
    assert got["National Security Council"].kind == "organization"
    assert got["North Korean Foreign Ministry"].kind == "organization"
    assert got["White House"].kind == "organization"
    assert got["NATO"].kind == "organization"
    assert got["Vladimir Putin"].kind == "person"
    assert got["Maria Zakharova"].kind == "person" and got["Maria Zakharova"].count == 2
    assert got["Ministry of Foreign Affairs"].kind == "organization"
    assert got["U.N. Security Council"].kind == "organization"
    assert got["Antony Blinken"].kind == "person"
    assert got["Jane Smith"].kind == "person"
    assert got["Harvard University"].kind == "organization"


def test_places_and_sentence_starts_are_not_entities(gaz):
    got = _ents(gaz, TEXT)
    assert got["European Union"].kind == "organization"
    for name in ("WASHINGTON", "Washington", "United States", "Moscow", "Russian", "Separately",
                 "Monday", "Russian President"):
        assert name not in got, name
    assert all(e.kind in ("person", "organization", "other") for e in got.values())


def test_counts_sorted_and_capped(gaz):
    text = " ".join(f"Officials at Company{i} Holdings spoke." for i in range(30))
    ents = extract_entities(text, is_place=gaz.is_place)
    assert len(ents) == 20
    counts = [e.count for e in ents]
    assert counts == sorted(counts, reverse=True)


def test_single_name_after_title(gaz):
    got = _ents(gaz, "Pope Francis led prayers. Later, President Biden spoke and Biden said more.")
    assert got["Francis"].kind == "person"
    assert got["Biden"].kind == "person" and got["Biden"].count == 2


def test_title_is_read_and_no_gazetteer_needed():
    ents = extract_entities("The bank raised rates, Smith said.", title="Federal Reserve Bank raises rates")
    assert any(e.name == "Federal Reserve Bank" and e.kind == "organization" for e in ents)
    assert extract_entities("") == []
