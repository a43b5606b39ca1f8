import hashlib
from datetime import datetime, timezone

import pytest

from services.cleaner.transform import clean
from shared.contract import CleanArticle, RawArticle
from shared.errors import PermanentError

# A made-up agency story in wire style: date header on the dateline's line, byline, credits, trailer.
WIRE = (
    " date 2023-03-14 By ASTRID HOLM Associated Press OSLO, Norway (AP) — Norway’s government on Tuesday "
    "approved a plan to open three new ferry routes along the northern coast, saying the link would cut "
    "travel times for thousands of island residents.\n\n"
    "Transport Minister Lars Eide told reporters the first route would start in June and that the state "
    "would pay for two new electric ferries. “This is the biggest change to coastal travel in a generation,” "
    "he said.\n\n"
    "Fishing communities in the region have long complained that the old timetable forced them to spend "
    "a night on the mainland for a single hospital visit.\n\n"
    "___\n\n"
    "Associated Press writer Jan Berg in Stockholm contributed to this report.\n\n"
    "Copyright 2023 The Associated Press. All rights reserved. This material may not be published, broadcast, "
    "rewritten or redistributed."
)

PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>Harbour bridge reopens after repairs | The Coastal Gazette</title>
<meta property="og:title" content="Harbour bridge reopens after repairs">
<meta property="og:site_name" content="The Coastal Gazette">
<meta name="author" content="Maria Lindqvist">
<meta property="article:published_time" content="2023-04-12T08:30:00Z">
<link rel="canonical" href="https://gazette.example/news/harbour-bridge-reopens">
</head><body>
<header><nav><ul><li><a href="/">Home</a></li><li><a href="/news">News</a></li><li><a href="/sport">Sport</a></li></ul></nav></header>
<main><article>
<h1>Harbour bridge reopens after repairs</h1>
<p>The old harbour bridge opened to traffic again on Wednesday morning after eight months of repairs that replaced most of its steel deck and all of its lighting.</p>
<p>City engineers said the work finished two weeks ahead of schedule and slightly under the budget approved by the council last spring, despite a wet winter.</p>
<p>“We had crews working through the night for most of February,” said the project manager, who thanked residents for their patience.</p>
</article></main>
<aside><h3>Most read</h3><ul><li><a href="/a">Council votes on parking fees</a></li><li><a href="/b">Storm warning for the weekend</a></li></ul></aside>
<footer><p>© 2023 The Coastal Gazette. All rights reserved.</p><p><a href="/privacy">Privacy</a> · <a href="/contact">Contact us</a></p></footer>
</body></html>"""

GERMAN = (
    "BERLIN (dpa) - Die Bundesregierung hat am Dienstag neue Hilfen für Familien beschlossen. Nach Angaben "
    "des Finanzministeriums sollen die Zahlungen bereits im kommenden Monat beginnen."
)
FRENCH = (
    "PARIS, 8 nov (AFP) - Le gouvernement a annoncé mardi de nouvelles mesures pour soutenir les agriculteurs "
    "touchés par la sécheresse. Les aides seront versées avant la fin de l’année, selon le ministère."
)


def test_wire_story():
    received = datetime(2023, 3, 14, 9, 0, tzinfo=timezone.utc)
    article = clean(RawArticle(text=WIRE, source="wire"), article_id="a1", received_at=received)

    assert article.dateline.model_dump() == {
        "city": "Oslo", "country": "Norway", "country_code": "NO", "agency": "AP", "date": None,
        "raw": "OSLO, Norway (AP) —",
    }
    assert article.published_at == datetime(2023, 3, 14, tzinfo=timezone.utc)
    assert article.text.startswith("Norway’s government on Tuesday approved a plan")
    assert article.text.endswith("for a single hospital visit.")
    for gone in ("date 2023", "ASTRID HOLM", "(AP)", "___", "contributed", "Copyright", "redistributed"):
        assert gone not in article.text
    assert article.text.count("\n\n") == 2
    assert (article.language, article.language_confidence > 0.8) == ("en", True)
    assert article.title == "Norway’s government on Tuesday approved a plan to open three new ferry…"
    assert (article.id, article.source, article.received_at, article.duplicate_of) == ("a1", "wire", received, None)
    assert "original_text" not in article.metadata


def test_counts_and_hash():
    article = clean(RawArticle(text="The  Council met.\n\n\nIt  voted  twice."), article_id="a")
    assert article.word_count == 6
    expected = hashlib.sha256("the council met. it voted twice.".encode()).hexdigest()
    assert article.content_hash == expected
    assert clean(RawArticle(text="the council met.\nIT VOTED TWICE."), article_id="b").content_hash == expected


def test_given_published_at_and_title_win():
    published = datetime(2023, 3, 13, 22, 15, tzinfo=timezone.utc)
    raw = RawArticle(text=WIRE, title="Ferries for the north", published_at=published)
    article = clean(raw, article_id="a")
    assert (article.published_at, article.title) == (published, "Ferries for the north")


def test_html_page():
    raw = RawArticle(
        html=PAGE, url="https://gazette.example/n?id=7", metadata={"sitename": "from the scraper", "feed": "local"}
    )
    article = clean(raw, article_id="h1")

    paragraphs = article.text.split("\n\n")
    assert len(paragraphs) == 3
    assert paragraphs[0].startswith("The old harbour bridge opened to traffic again")
    assert paragraphs[2].startswith("“We had crews working")
    for boilerplate in ("Home", "Sport", "Most read", "parking fees", "Privacy", "All rights reserved"):
        assert boilerplate not in article.text
    assert article.title == "Harbour bridge reopens after repairs"
    assert article.published_at == datetime(2023, 4, 12, tzinfo=timezone.utc)
    assert article.language == "en"
    assert article.url == "https://gazette.example/n?id=7"
    assert article.metadata["sitename"] == "from the scraper"  # the producer's key is kept
    assert article.metadata["feed"] == "local"
    assert article.metadata["authors"] == ["Maria Lindqvist"]
    assert article.metadata["canonical_url"] == "https://gazette.example/news/harbour-bridge-reopens"
    assert "description" not in article.metadata


def test_html_preferred_over_text_and_text_is_the_fallback():
    assert clean(RawArticle(html=PAGE, text="Other text entirely."), article_id="a").text.startswith("The old harbour")
    empty_page = "<html><head><script>var x;</script></head><body></body></html>"
    article = clean(RawArticle(html=empty_page, text="WASHINGTON (AP) — Fallback text."), article_id="a")
    assert article.text == "Fallback text."
    assert article.dateline.city == "Washington"


def test_mojibake_repaired_and_original_kept():
    broken = "The ministryâ€™s spokesman said the talks were â€œconstructiveâ€\x9d and would continue next week."
    article = clean(RawArticle(text=broken, metadata={"k": "v"}), article_id="m")
    assert article.text == "The ministry’s spokesman said the talks were “constructive” and would continue next week."
    assert article.metadata == {"k": "v", "original_text": broken}


@pytest.mark.parametrize(
    "raw",
    [
        RawArticle(text="\u200b \n\n \u200b"),
        RawArticle(html="<html><body><div id='app'></div></body></html>"),
        RawArticle(text="WASHINGTON (AP) — \n\nCopyright 2023 The Associated Press. All rights reserved."),
    ],
)
def test_nothing_left_is_permanent(raw):
    with pytest.raises(PermanentError, match="no extractable text"):
        clean(raw, article_id="e")


def test_html_over_the_limit_is_permanent():
    with pytest.raises(PermanentError):
        clean(RawArticle(html=PAGE), article_id="big", max_html_bytes=1024)


@pytest.mark.parametrize(
    "text, language, city",
    [(GERMAN, "de", "Berlin"), (FRENCH, "fr", "Paris")],
)
def test_german_and_french(text, language, city):
    article = clean(RawArticle(text=text, language="en"), article_id="x")
    assert article.language == language
    assert article.language_confidence > 0.5
    assert article.dateline.city == city


def test_three_words_are_undetermined():
    assert (clean(RawArticle(text="Talks resume today."), article_id="x").language,) == ("und",)


def test_language_hint_used_when_undetermined():
    article = clean(RawArticle(text="Talks resume today.", language="de-DE"), article_id="x")
    assert (article.language, article.language_confidence) == ("de", 0.0)
    assert clean(RawArticle(text="Talks resume today.", language="german"), article_id="x").language == "und"


def test_result_is_a_valid_clean_article():
    article = clean(RawArticle(text=WIRE), article_id="v")
    assert CleanArticle.model_validate_json(article.model_dump_json()) == article


def test_warm_up_runs_once_and_leaves_clean_as_it_was():
    from services.cleaner.transform import WARM_UP_PAGE, warm_up

    warm_up()
    warm_up()  # cached: a second stage in the same process pays nothing
    assert warm_up.cache_info().hits >= 1
    article = clean(RawArticle(html=WARM_UP_PAGE, url="https://example.com/warm-up"), article_id="w")
    assert article.dateline and article.dateline.city == "Savannah"
    assert article.published_at and article.published_at.date().isoformat() == "2021-03-03"
