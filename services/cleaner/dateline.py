"""Agency and newspaper datelines at the start of a story: `SEOUL, South Korea (AP) —`."""

from __future__ import annotations

import re

from services.cleaner import places
from services.cleaner.text import DATE_HEADER
from shared.contract import Dateline

AGENCIES = {
    "ap": "AP", "associated press": "AP", "the associated press": "AP",
    "reuters": "Reuters", "thomson reuters": "Reuters",
    "afp": "AFP", "agence france-presse": "AFP", "agence france presse": "AFP",
    "upi": "UPI", "united press international": "UPI",
    "bloomberg": "Bloomberg", "bloomberg news": "Bloomberg",
    "xinhua": "Xinhua", "dpa": "dpa", "pti": "PTI", "ians": "IANS", "ani": "ANI", "efe": "EFE",
    "ansa": "ANSA", "kyodo": "Kyodo", "kyodo news": "Kyodo", "jiji": "Jiji", "yonhap": "Yonhap",
    "tass": "TASS", "itar-tass": "TASS", "ria novosti": "RIA Novosti", "interfax": "Interfax",
    "cnn": "CNN", "cnn business": "CNN", "bbc": "BBC", "cp": "CP", "canadian press": "CP", "aap": "AAP", "apa": "APA",
    "anp": "ANP", "belga": "Belga", "bernama": "Bernama", "antara": "Antara", "anadolu": "Anadolu",
    "aa": "Anadolu", "irna": "IRNA", "mena": "MENA", "kuna": "KUNA", "wam": "WAM", "spa": "SPA",
    "ukrinform": "Ukrinform", "kna": "KNA", "epd": "epd", "sda": "SDA", "ntb": "NTB", "tt": "TT",
    "ritzau": "Ritzau", "stt": "STT", "pap": "PAP", "ctk": "CTK", "mti": "MTI", "hina": "HINA",
    "ips": "IPS", "cna": "CNA", "dow jones": "Dow Jones", "prnewswire": "PR Newswire",
    "pr newswire": "PR Newswire", "business wire": "Business Wire", "globe newswire": "GlobeNewswire",
    "globenewswire": "GlobeNewswire", "cnw": "CNW", "accesswire": "ACCESSWIRE",
}

MONTH = (
    r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?"
    r"|sept?(?:ember)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?|janv|févr|mars|avr|mai|juin|juil"
    r"|août|déc|ene|abr|ago|dic|gen|mag|giu|lug|set|ott|okt|mär|dez)\.?"
)
DATE_PART = re.compile(
    rf"(?:(?:{MONTH}\s+\d{{1,2}}(?:st|nd|rd|th)?|\d{{1,2}}\.?\s+{MONTH})(?:\s+\d{{4}})?|\d{{4}}"
    r"|(?:mon|tues|wednes|thurs|fri|satur|sun)day)",
    re.IGNORECASE,
)

DASH = r"(?:—|–|―|-{1,3}|_|\.-)"

# A dateline's head (city, region or country, date) and what closes it: an agency in brackets or
# slashes, a dash, or a colon. The head is checked word by word in code.
DATELINE = re.compile(
    rf"""
    (?P<head>[^\W\d_][^()\n—–/:]{{0,90}}?)
    (?:
        \s*(?:--)?\((?P<agency>[^()\n]{{1,40}})\)(?:\s*(?P<adash>{DASH}|:)|(?=\s))
      | \s*/(?P<slash>[^/\n]{{2,30}})/\s*{DASH}(?=\s)
      | \s+(?P<dash>{DASH})(?=\s)
      | (?P<colon>:)(?=\s)
    )
    \s*
    """,
    re.VERBOSE,
)

# Only an agency: `(Bloomberg) --`, `(CNN) —`.
AGENCY_ONLY = re.compile(rf"\((?P<agency>[^()\n]{{1,40}})\)(?:\s*{DASH})?\s+(?=\S)")

LEADING_SPACE = re.compile(r"[\s\ufeff]*")

CONNECTORS = {
    "and", "of", "the", "de", "del", "da", "do", "dos", "du", "des", "la", "le", "les", "el", "al", "es", "en",
    "sur", "upon", "am", "an", "im", "der", "den", "di", "van", "von", "aan", "op",
}
WORD = re.compile(r"[^\W\d_][\w.'’-]*\.?")
MAX_HEADLINE = 150
NON_CITY_PLACES = {"united nations", "aboard air force one"}
# Countries that share a name in wire copy ("Congo"): the city decides.
SAME_NAME = {"CD", "CG"}


def parse_dateline(text: str) -> tuple[Dateline | None, str]:
    """The dateline at the start of `text` and the text without it.

    The dateline may follow a `date YYYY-MM-DD` header or a short first line such as a headline.
    """
    for start in _starts(text):
        found = _match_at(text, start)
        if found:
            dateline, end = found
            return dateline, text[:start] + text[end:]
    return None, text


def _starts(text: str) -> list[int]:
    """Where a dateline may begin: after the header, or on the line after a short first line (a headline)."""
    header = DATE_HEADER.match(text)
    first = LEADING_SPACE.match(text, header.end() if header else 0).end()
    newline = text.find("\n", first)
    if 0 < newline - first <= MAX_HEADLINE:
        return [first, LEADING_SPACE.match(text, newline).end()]
    return [first]


def _match_at(text: str, start: int) -> tuple[Dateline, int] | None:
    m = AGENCY_ONLY.match(text, start)
    if m:
        agency = AGENCIES.get(m["agency"].strip().lower())
        return (Dateline(agency=agency, raw=m.group().strip()), m.end()) if agency else None
    m = DATELINE.match(text, start)
    parts = _split_head(m["head"]) if m else None
    if parts is None:
        return None
    city, region, date = parts
    written_agency = m["agency"] or m["slash"]
    code, country = _country(city, region)
    in_gazetteer = bool(places.find_cities(city))
    caps = _is_caps(city)

    if written_agency:
        known_agency = all(part.strip().lower() in AGENCIES for part in written_agency.split("/"))
        city_known = in_gazetteer or code is not None or city.lower() in NON_CITY_PLACES
        # `Paris (France) - ...` is a sentence, not a dateline.
        agency_is_place = bool(places.country_code(written_agency) or places.find_cities(written_agency))
        accepted = known_agency or (city_known and bool(m["adash"] or m["slash"]) and not agency_is_place)
    elif m["colon"]:
        accepted = caps and in_gazetteer
    else:
        # A dash alone: `SAN FRANCISCO —`, `Cairo, Egypt --`, `Indianapolis – Teachers...`,
        # but not `Paris - the city of light - is...`.
        next_char = text[m.end() : m.end() + 1]
        accepted = (
            (caps and (in_gazetteer or code is not None))
            or bool(region and code)
            or (in_gazetteer and next_char.isupper())
        )
    if not accepted:
        return None

    dateline = Dateline(
        city=_city_name(city),
        country=country,
        country_code=code,
        agency=_agency(written_agency) if written_agency else None,
        date=date,
        raw=text[start : m.end()].strip(),
    )
    return dateline, m.end()


def _split_head(head: str) -> tuple[str, str | None, str | None] | None:
    """(city, region or country as written, date as written), or None when the head is not a place."""
    head = head.strip().rstrip(",")
    pieces = [p.strip() for p in head.split(",")]
    city, rest = pieces[0], pieces[1:]
    if not _is_place(city):
        return None
    region = date = None
    for i, piece in enumerate(rest):
        if DATE_PART.fullmatch(piece):
            date = ", ".join(rest[i:])
            if not all(DATE_PART.fullmatch(p) for p in rest[i:]):
                return None
            break
        if region is not None or not _is_place(piece):
            return None
        region = piece
    return city, region, date


def _is_place(words: str) -> bool:
    """Capitalised words, connectors and abbreviations: `Ramallah`, `West Bank`, `N.Y.`, `Bosnia and Herzegovina`."""
    tokens = words.split()
    if not 1 <= len(tokens) <= 5:
        return False
    for i, token in enumerate(tokens):
        if not WORD.fullmatch(token):
            return False
        if token[0].isupper():
            continue
        if i == 0 or token.lower() not in CONNECTORS:
            return False
    return True


def _is_caps(words: str) -> bool:
    letters = [ch for ch in words if ch.isalpha()]
    upper = sum(ch.isupper() for ch in letters)
    return len(letters) >= 2 and upper >= 0.8 * len(letters)


def _city_name(city: str) -> str:
    if not _is_caps(city):
        return city
    return places.city_spelling(city) or _title(city)


def _title(words: str) -> str:
    """`ST. LOUIS` -> `St. Louis`, `WINSTON-SALEM` -> `Winston-Salem`, `COX'S BAZAR` -> `Cox's Bazar`."""
    def word(w: str) -> str:
        w = w.lower()
        if w in CONNECTORS:
            return w
        head, sep, tail = w.partition("'")
        if sep and len(head) == 1:  # O'Hare, D'Iberville
            return head.upper() + sep + tail.capitalize()
        return w.capitalize()

    titled = " ".join("-".join(word(part) for part in token.split("-")) for token in words.split())
    return titled[0].upper() + titled[1:]


def _agency(written: str) -> str:
    """The agency's usual name; `AP/Reuters` stays a pair; an unknown one is kept as written."""
    names = [AGENCIES.get(part.strip().lower(), part.strip()) for part in written.split("/")]
    return "/".join(names)


def _country(city: str, region: str | None) -> tuple[str | None, str | None]:
    """(ISO code, country name) from the written region or country, else from the city when unambiguous."""
    if region:
        code = places.country_code(region)
        in_regions = places.region_countries(region)
        city_codes = {c.country_code for c in places.find_cities(city)}
        # "ATLANTA, Georgia" is the US state; "TBILISI, Georgia" the country.
        if code and (not in_regions or code in city_codes or not (in_regions & city_codes)):
            if code in SAME_NAME and places.city_country(city) in SAME_NAME:
                code = places.city_country(city)
            return code, _display(region)
        if len(in_regions) > 1:
            in_regions = in_regions & city_codes
        if len(in_regions) == 1:
            code = next(iter(in_regions))
            return code, places.country_name(code)
    code = places.city_country(city)
    return (code, places.country_name(code)) if code else (None, None)


def _display(region: str) -> str:
    return _title(region) if _is_caps(region) and "." not in region else region
