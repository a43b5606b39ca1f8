import pytest

from services.cleaner.dateline import parse_dateline

BODY = "Officials said on Tuesday that talks would resume next week."

# (dateline as written, expected fields); None means "must be None".
POSITIVE = [
    ("SEOUL, South Korea (AP) —", dict(city="Seoul", country="South Korea", country_code="KR", agency="AP", date=None)),
    ("WASHINGTON (Reuters) -", dict(city="Washington", country="United States", country_code="US", agency="Reuters")),
    ("PARIS, Nov 8 (AFP) --", dict(city="Paris", country="France", country_code="FR", agency="AFP", date="Nov 8")),
    ("LONDON, Nov. 8, 2022 (Reuters) -", dict(city="London", country_code="GB", agency="Reuters", date="Nov. 8, 2022")),
    ("NEW YORK (AP) —", dict(city="New York", country="United States", country_code="US", agency="AP")),
    ("BEIJING, March 3 (Xinhua) --", dict(city="Beijing", country="China", country_code="CN", agency="Xinhua", date="March 3")),
    ("TOKYO (Bloomberg) --", dict(city="Tokyo", country="Japan", country_code="JP", agency="Bloomberg")),
    ("WASHINGTON (UPI) --", dict(city="Washington", country_code="US", agency="UPI")),
    ("KYIV, Ukraine (AP) —", dict(city="Kyiv", country="Ukraine", country_code="UA", agency="AP")),
    ("SAN FRANCISCO —", dict(city="San Francisco", country="United States", country_code="US", agency=None)),
    ("Oslo, Norway (dpa)", dict(city="Oslo", country="Norway", country_code="NO", agency="dpa")),
    ("BERLIN (dpa) -", dict(city="Berlin", country="Germany", country_code="DE", agency="dpa")),
    ("JERUSALEM (AP) _", dict(city="Jerusalem", agency="AP")),
    ("MOSCOW, Nov 8 (Reuters) -", dict(city="Moscow", country="Russia", country_code="RU", agency="Reuters", date="Nov 8")),
    ("UNITED NATIONS (AP) —", dict(city="United Nations", country=None, country_code=None, agency="AP")),
    ("RAMALLAH, West Bank (AP) —", dict(city="Ramallah", country="West Bank", country_code="PS", agency="AP")),
    ("Mumbai, India (PTI) –", dict(city="Mumbai", country="India", country_code="IN", agency="PTI")),
    ("CAIRO, Egypt --", dict(city="Cairo", country="Egypt", country_code="EG", agency=None)),
    ("AUSTIN, Texas (AP) —", dict(city="Austin", country="United States", country_code="US", agency="AP")),
    ("ATLANTA, Georgia (AP) —", dict(city="Atlanta", country="United States", country_code="US")),
    ("TBILISI, Georgia (AP) —", dict(city="Tbilisi", country="Georgia", country_code="GE")),
    ("SAVANNAH, Ga. (AP) —", dict(city="Savannah", country="United States", country_code="US")),
    ("WINSTON-SALEM, N.C. (AP) —", dict(city="Winston-Salem", country_code="US")),
    ("ST. LOUIS (AP) —", dict(city="St. Louis", country_code="US")),
    ("McALLEN, Texas (AP) —", dict(city="McAllen", country_code="US")),
    ("DAR ES SALAAM, Tanzania (AP) —", dict(city="Dar es Salaam", country="Tanzania", country_code="TZ")),
    ("SAO PAULO (Reuters) -", dict(city="São Paulo", country="Brazil", country_code="BR", agency="Reuters")),
    ("TEHRAN, Iran (AP) —", dict(city="Tehran", country="Iran", country_code="IR")),
    ("TAIPEI, Taiwan (AP) —", dict(city="Taipei", country="Taiwan", country_code="TW")),
    ("HANOI, Vietnam (AP) —", dict(city="Hanoi", country="Vietnam", country_code="VN")),
    ("DAMASCUS, Syria (AP) —", dict(city="Damascus", country="Syria", country_code="SY")),
    ("PYONGYANG, North Korea (AP) —", dict(city="Pyongyang", country="North Korea", country_code="KP")),
    ("LA PAZ, Bolivia (AP) —", dict(city="La Paz", country="Bolivia", country_code="BO")),
    ("KINSHASA, Congo (AP) —", dict(city="Kinshasa", country_code="CD")),
    ("BRAZZAVILLE, Congo (Reuters) -", dict(city="Brazzaville", country_code="CG")),
    ("TORONTO, Ontario (CP) —", dict(city="Toronto", country="Canada", country_code="CA", agency="CP")),
    ("WASHINGTON, D.C. —", dict(city="Washington", country_code="US", agency=None)),
    ("VICTORIA (Reuters) -", dict(city="Victoria", country=None, country_code=None)),  # too many Victorias
    ("GENEVA, Nov. 8 (Reuters) -", dict(city="Geneva", country_code="CH", date="Nov. 8")),
    ("NEW DELHI, Nov 8 (PTI) -", dict(city="New Delhi", country_code="IN", agency="PTI", date="Nov 8")),
    ("NEW DELHI:", dict(city="New Delhi", country_code="IN", agency=None)),
    ("Madrid, 8 nov (EFE).-", dict(city="Madrid", country_code="ES", agency="EFE", date="8 nov")),
    ("Rome, 8 November 2022 (ANSA) -", dict(city="Rome", country_code="IT", agency="ANSA", date="8 November 2022")),
    ("Paris (AFP) -", dict(city="Paris", country_code="FR", agency="AFP")),
    ("SYDNEY (AAP) -", dict(city="Sydney", country="Australia", country_code="AU", agency="AAP")),
    ("ANKARA, Turkey (Anadolu) -", dict(city="Ankara", country="Turkey", country_code="TR", agency="Anadolu")),
    ("SEOUL, Nov. 8 (Yonhap) --", dict(city="Seoul", country_code="KR", agency="Yonhap", date="Nov. 8")),
    ("TOKYO, Nov 8 (Kyodo) --", dict(city="Tokyo", agency="Kyodo")),
    ("MOSCOW, Nov 8 (TASS) -", dict(city="Moscow", agency="TASS")),
    ("NEW YORK, Nov. 8, 2022 /PRNewswire/ --", dict(city="New York", agency="PR Newswire", date="Nov. 8, 2022")),
    ("SAN JOSE, Calif.--(BUSINESS WIRE)--", dict(city="San Jose", country_code="US", agency="Business Wire")),
    ("(Bloomberg) --", dict(city=None, country=None, agency="Bloomberg")),
    ("(CNN) —", dict(city=None, agency="CNN")),
    ("(CNN)", dict(city=None, agency="CNN")),
    ("Hong Kong (CNN Business)", dict(city="Hong Kong", country_code="HK", agency="CNN")),
    ("Indianapolis –", dict(city="Indianapolis", country_code="US", agency=None)),
    ("BUFFALO, N.Y. —", dict(city="Buffalo", country_code="US", agency=None)),
    ("LONDON (Reuters/AFP) -", dict(city="London", agency="Reuters/AFP")),
    ("KABUL, Afghanistan (The Associated Press) —", dict(city="Kabul", country_code="AF", agency="AP")),
]


@pytest.mark.parametrize("written, expected", POSITIVE, ids=[p[0] for p in POSITIVE])
def test_dateline_is_parsed_and_removed(written, expected):
    dateline, rest = parse_dateline(f"{written} {BODY}")
    assert dateline is not None
    assert dateline.raw == written
    for field, value in expected.items():
        assert getattr(dateline, field) == value, field
    assert rest == BODY


def test_dateline_without_space_before_text():
    dateline, rest = parse_dateline("SAN JOSE, Calif.--(BUSINESS WIRE)--Acme Corp. said on Tuesday.")
    assert dateline.agency == "Business Wire"
    assert rest == "Acme Corp. said on Tuesday."


def test_dateline_after_date_header_on_same_line():
    dateline, rest = parse_dateline(" date 2022-11-08 SEOUL, South Korea (AP) — North Korea said.")
    assert dateline.city == "Seoul"
    assert rest == " date 2022-11-08 North Korea said."


def test_dateline_after_date_header_line_and_bom():
    dateline, rest = parse_dateline("\ufeffdate 2023-01-02\nBERLIN (dpa) - Die Regierung sagte.")
    assert (dateline.city, dateline.agency) == ("Berlin", "dpa")
    assert rest == "\ufeffdate 2023-01-02\nDie Regierung sagte."


def test_dateline_after_headline_line():
    dateline, rest = parse_dateline("Storm closes ports\nHAVANA, Cuba (AP) — Cuba closed its ports.")
    assert dateline.country_code == "CU"
    assert rest == "Storm closes ports\nCuba closed its ports."


def test_only_the_first_paragraph_is_looked_at():
    text = "A long opening paragraph about the economy that goes on and on and on and on and on and on and on " * 3
    text += "\n\nWASHINGTON (AP) — Later."
    assert parse_dateline(text) == (None, text)


def test_title_case_city_keeps_its_spelling():
    dateline, _ = parse_dateline("Frankfurt am Main (dpa) - Die Börse stieg.")
    assert dateline.city == "Frankfurt am Main"
    assert dateline.country_code == "DE"


NEGATIVE = [
    "In September, U.S. officials said the talks had failed.",
    "The president (R) said - nothing more.",
    "Paris (France) - is a city of light.",
    "Paris - the city of light - is crowded in summer.",
    "BREAKING NEWS — Markets fell sharply.",
    "Sen. John Smith (D-Calif.) - said the bill would pass.",
    "Apple Inc (AAPL) - shares rose 3%.",
    "WARNING: This video contains graphic images.",
    "By the time polls closed, turnout was high.",
    "North Korea on Tuesday accused the United States of lying.",
    "“We will not stop,” she said (in French) — then left.",
    "UPDATE — This story has been corrected.",
    "(Photo) The mayor at the opening.",
    "(R) Senators met on Tuesday.",
    "",
]


@pytest.mark.parametrize("text", NEGATIVE)
def test_ordinary_openings_are_not_datelines(text):
    assert parse_dateline(text) == (None, text)
