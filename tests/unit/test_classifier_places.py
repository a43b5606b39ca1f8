"""Gazetteer: longest match, context rules, datelines."""

from __future__ import annotations

import pytest

from services.classifier.places import build_gazetteer
from shared.contract import Dateline


@pytest.fixture(scope="module")
def gaz():
    return build_gazetteer()


def _found(gaz, text, **kw):
    return {(p.name, p.kind, p.code): p for p in gaz.find(text, **kw)}


def test_south_korea_is_not_also_korea(gaz):
    got = _found(gaz, "South Korea and Japan held talks. South Korea's president spoke.")
    assert ("South Korea", "country", "KR") in got
    assert got[("South Korea", "country", "KR")].count == 2
    assert ("Japan", "country", "JP") in got
    assert len(got) == 2


def test_north_korean_is_north_korea_only(gaz):
    got = _found(gaz, "North Korea fired a missile. North Korean state media said North Koreans cheered.")
    assert list(got) == [("North Korea", "country", "KP")]
    assert got[("North Korea", "country", "KP")].count == 3


def test_demonym_alone_needs_two_mentions(gaz):
    assert _found(gaz, "A Russian diplomat arrived.") == {}
    got = _found(gaz, "A Russian diplomat met Russian officials.")
    assert ("Russia", "country", "RU") in got


def test_nice_needs_context(gaz):
    assert _found(gaz, "Nice weather brought crowds to the beach.") == {}
    assert _found(gaz, "It was a nice day.") == {}
    got = _found(gaz, "The festival in Nice drew visitors from across France.")
    assert ("Nice", "city", "FR") in got and ("France", "country", "FR") in got


def test_paris_with_france_is_the_french_capital(gaz):
    got = _found(gaz, "Protesters marched in Paris as France debated the pension law.")
    assert ("Paris", "city", "FR") in got
    assert ("France", "country", "FR") in got
    # without France it is still the French capital (by population)
    assert ("Paris", "city", "FR") in _found(gaz, "Talks resumed in Paris.")


def test_jordan_as_a_name_and_as_a_country(gaz):
    assert _found(gaz, "Michael Jordan scored 40 points.") == {}
    got = _found(gaz, "Refugees crossed from Syria into Jordan.")
    assert ("Jordan", "country", "JO") in got
    amman = Dateline(city="AMMAN", country="Jordan", raw="AMMAN, Jordan (AP) —")
    got = _found(gaz, "Jordan said it would reopen the border.", dateline=amman)
    assert got[("Jordan", "country", "JO")].in_dateline


def test_georgia_state_or_country(gaz):
    assert ("Georgia", "region", "US") in _found(gaz, "Voters in Georgia and Texas went to the polls in the U.S.")
    assert ("Georgia", "country", "GE") in _found(gaz, "Russia's war with Georgia in 2008 began near Tbilisi.")


def test_united_states_forms(gaz):
    text = "The U.S. and the United States of America, also the US and USA. america said. Washington agreed."
    got = _found(gaz, text)
    us = got[("United States", "country", "US")]
    assert us.count == 5
    assert ("Washington", "city", "US") in got
    # continents and firms are not the country
    assert _found(gaz, "Latin America and Bank of America") == {}


def test_the_north_only_with_north_korea(gaz):
    assert _found(gaz, "the North won the civil war") == {}
    got = _found(gaz, "North Korea fired. Experts say the North keeps shells.")
    assert got[("North Korea", "country", "KP")].count == 2
    assert _found(gaz, "North Korea fired. the North Atlantic is cold.")[("North Korea", "country", "KP")].count == 1


def test_lowercase_words_are_not_places(gaz):
    assert _found(gaz, "the reading of the bath split mobile orange china cup turkey dinner") == {}


def test_same_name_city_prefers_country_in_text(gaz):
    assert ("London", "city", "GB") in _found(gaz, "Markets in London opened higher.")
    assert ("Tripoli", "city", "LY") in _found(gaz, "Fighting in Tripoli continued.")
    assert ("Tripoli", "city", "LB") in _found(gaz, "Lebanon's army deployed in Tripoli.")


def test_dateline_city_and_country(gaz):
    dl = Dateline(city="SEOUL", country="South Korea", country_code="KR", agency="AP", raw="SEOUL, South Korea (AP) —")
    places = gaz.find("SEOUL, South Korea (AP) — North Korea fired a missile toward South Korea.", dateline=dl)
    got = {(p.name, p.kind, p.code): p for p in places}
    seoul = got[("Seoul", "city", "KR")]
    assert seoul.in_dateline and seoul.count == 1
    sk = got[("South Korea", "country", "KR")]
    assert sk.in_dateline and sk.count == 2  # the dateline once (not twice) plus one mention
    assert not got[("North Korea", "country", "KP")].in_dateline


def test_dateline_unknown_city_and_us_state(gaz):
    dl = Dateline(city="SMALLVILLE", country="Kan.", raw="SMALLVILLE, Kan. (AP) —")
    got = _found(gaz, "Storms hit the town.", dateline=dl)
    assert got[("Smallville", "city", "US")].in_dateline  # an unknown city takes the dateline's country
    assert got[("Kansas", "region", "US")].in_dateline
    got = _found(gaz, "Officials met.", dateline=Dateline(city="WASHINGTON", raw="WASHINGTON (AP) —"))
    assert got[("Washington", "city", "US")].in_dateline


def test_us_state_abbreviation_only_after_a_city(gaz):
    assert ("California", "region", "US") in _found(gaz, "The fire near Paradise, Calif., spread.")
    assert _found(gaz, "Miss. Smith and Ind. voters") == {}


def test_is_place(gaz):
    assert gaz.is_place("Seoul") and gaz.is_place("U.S.") and gaz.is_place("Russian")
    assert not gaz.is_place("John Kirby") and not gaz.is_place("Latin America")
    assert gaz.is_country("Ukrainian") and not gaz.is_country("Seoul")
