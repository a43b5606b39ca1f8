import random
from datetime import date

import ftfy
import pytest

from services.cleaner.text import (
    FTFY_CONFIG,
    TRAILER_HINT,
    TRAILER_PATTERNS,
    TRAILER_WORDS,
    first_sentence_title,
    fix_text,
    normalise,
    normalise_whitespace,
    repair,
    split_date_header,
    strip_byline,
    strip_trailers,
)


@pytest.mark.parametrize(
    "text, expected_date, rest",
    [
        ("date 2023-03-14\nOSLO (AP) — Text.", date(2023, 3, 14), "OSLO (AP) — Text."),
        (" date 2022-11-08 SEOUL, South Korea (AP) — Text.", date(2022, 11, 8), "SEOUL, South Korea (AP) — Text."),
        ("\ufeffdate 2021-01-31\r\nText.", date(2021, 1, 31), "Text."),
        ("date 2023-02-30\nText.", None, "date 2023-02-30\nText."),
        ("The date 2023-03-14 was chosen.", None, "The date 2023-03-14 was chosen."),
        ("dated 2023-03-14 Text.", None, "dated 2023-03-14 Text."),
    ],
)
def test_split_date_header(text, expected_date, rest):
    assert split_date_header(text) == (expected_date, rest)


def test_repair_fixes_mojibake_and_keeps_curly_quotes():
    fixed, changed = repair("The ministryâ€™s army â€” it said “no”")
    assert fixed == "The ministry’s army — it said “no”"
    assert changed


def test_repair_reports_no_change_for_clean_text_crlf_or_nfd():
    assert repair("A clean “quoted” text.") == ("A clean “quoted” text.", False)
    assert repair("Line one\r\nline two") == ("Line one\nline two", False)
    assert repair("Cafe\u0301 au lait") == ("Café au lait", False)
    assert repair("\ufeffA text with a BOM.") == ("A text with a BOM.", False)


def test_repair_keeps_full_width_cjk_punctuation():
    assert repair("中国外交部表示，会谈将继续。")[0] == "中国外交部表示，会谈将继续。"


def test_whitespace_blank_lines_separate_paragraphs_and_wraps_are_joined():
    text = "  First  paragraph\u00a0wraps\nonto a second line.   \n\n\n\nSecond\tparagraph.\u200b  \n"
    assert normalise_whitespace(text) == "First paragraph wraps onto a second line.\n\nSecond paragraph."


def test_whitespace_without_blank_lines_every_line_is_a_paragraph():
    assert normalise_whitespace("One.\nTwo.\r\nThree.") == "One.\n\nTwo.\n\nThree."


def test_normalise_combines_repair_and_whitespace():
    assert normalise("Itâ€™s   here.\n\n\nNext.") == ("It’s here.\n\nNext.", True)


@pytest.mark.parametrize(
    "text, rest",
    [
        ("By JOHN DOE Associated Press\nSEOUL, South Korea (AP) — Text.", "SEOUL, South Korea (AP) — Text."),
        ("By KIM TONG-HYUNG and HYUNG-JIN KIM Associated Press\n\nSEOUL (AP) — T.", "SEOUL (AP) — T."),
        ("By JOHN DOE Associated Press SEOUL, South Korea (AP) — Text.", "SEOUL, South Korea (AP) — Text."),
        ("By Jane Smith, Reuters\nWASHINGTON (Reuters) - Text.", "WASHINGTON (Reuters) - Text."),
        ("By Jane Smith and Tom Jones\n\nText.", "Text."),
        ("By FOSTER KLUG, AP Writer\nTOKYO (AP) — Text.", "TOKYO (AP) — Text."),
        ("By Jane Smith\nReuters\nWASHINGTON (Reuters) - Text.", "WASHINGTON (Reuters) - Text."),
    ],
)
def test_strip_byline(text, rest):
    assert strip_byline(text) == rest


@pytest.mark.parametrize(
    "text",
    [
        "By the time polls closed, turnout was high.\n\nMore.",
        "By Tuesday, AP reported that the vote was close.",
        "By Tuesday the fighting had stopped.\nMore text.",
        "Bystanders said the fire spread fast.",
    ],
)
def test_strip_byline_leaves_sentences(text):
    assert strip_byline(text) == text


def test_strip_trailers_ap():
    text = (
        "Body paragraph.\n\n___\n\nAssociated Press writer Jan Berg in Stockholm contributed to this report.\n\n"
        "Copyright 2023 The Associated Press. All rights reserved. This material may not be published, "
        "broadcast, rewritten or redistributed."
    )
    assert strip_trailers(text) == "Body paragraph."


def test_strip_trailers_reuters():
    text = (
        "Body paragraph.\n\n(Reporting by Jane Smith in London; Additional reporting by Tom Jones (Paris); "
        "Editing by Ann Lee)\n\nOur Standards: The Thomson Reuters Trust Principles."
    )
    assert strip_trailers(text) == "Body paragraph."


def test_strip_trailers_credit_at_the_end_of_the_last_paragraph():
    assert strip_trailers("Prices rose 3%. (Reporting by Jane Smith; Editing by Ann Lee)") == "Prices rose 3%."


def test_strip_trailers_keeps_text_that_only_mentions_agencies():
    text = "Body © 2022 Reuters said nothing.\n\nThe reporting by AP was praised."
    assert strip_trailers(text) == text


@pytest.mark.parametrize(
    "text, title",
    [
        ("Storm closes ports. Ships wait offshore.", "Storm closes ports"),
        ("Mr. Smith went to Washington on Monday. He met Sen. Jones.", "Mr. Smith went to Washington on Monday"),
        ("The U.S. economy grew 2.9% in the fourth quarter. More.", "The U.S. economy grew 2.9% in the fourth quarter"),
        ("Will rates rise again? Analysts are split.", "Will rates rise again?"),
        (
            "North Korea on Tuesday accused the United States of inventing a story about weapons sales to Russia, "
            "saying it never sent shells.",
            "North Korea on Tuesday accused the United States of inventing a story…",
        ),
        (
            "Council votes, and then, “after a long debate” — nothing changes at all in the city centre this year",
            "Council votes, and then, “after a long debate” — nothing changes at all…",
        ),
        ("One line only\n\nSecond paragraph.", "One line only"),
        ("中国外交部表示，会谈将继续。双方同意下个月再谈。", "中国外交部表示，会谈将继续。"),
        ("字" * 300, "字" * 60 + "…"),
        ("", ""),
    ],
)
def test_first_sentence_title(text, title):
    assert first_sentence_title(text) == title


def test_quote_standins_become_typographic_quotes_and_real_quotes_stay():
    from services.cleaner.text import normalise_whitespace

    assert normalise_whitespace("He said ``we will win'' on Monday.") == "He said \u201cwe will win\u201d on Monday."
    assert normalise_whitespace("the North\u2032s `plan'") == "the North\u2019s \u2018plan'"
    assert normalise_whitespace("\u201cCurly\u201d and \"straight\" and \u00abguillemets\u00bb stay") == "\u201cCurly\u201d and \"straight\" and \u00abguillemets\u00bb stay"
    assert normalise_whitespace("rock 'n' roll isn't touched") == "rock 'n' roll isn't touched"


# -- fix_text: ftfy's fix_text, with the plain lines passed over -------------------------------------------------

PIECES = [
    "The ministryâ€™s army", "â€”", "â€œquoteâ€\x9d", "“no”", "’", "‘", "—", "–", "…", "Café", "Cafe\u0301", "Ã©", "Ã ",
    "Â ", "&amp;", "&lt;b&gt;", "&#x2019;", "&hellip;", "<b>", "a < b", "\x1b[31m", "\x00", "\x7f", "\x92", "ﬁ",
    "\xa0", "½", "€", "ＬＯＵＤ", "中国", "вЂ™", "Ø§Ù„", "√±", "é", "\t", " ", "\n", "\n", "plain words", "\ufeff",
]


def test_fix_text_is_ftfys_fix_text():
    rng = random.Random(7)
    texts = ["".join(rng.choice(PIECES) for _ in range(rng.randint(1, 30))) for _ in range(3000)]
    texts += [
        "a < b\n&amp; stays escaped after a '<' line\nâ€” fixed",  # ftfy stops decoding entities after a "<"
        "&amp; decoded\nplain line\nâ€™ mojibake",
        "“Curly” quotes — and an ellipsis…\nCafÃ© next to them\n",
    ]
    for text in texts:
        assert fix_text(text) == ftfy.fix_text(text, FTFY_CONFIG), repr(text)


def test_plain_text_is_not_sent_to_ftfy(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("ftfy was called")

    monkeypatch.setattr(ftfy, "fix_text", refuse)
    text = "A line with “curly” quotes, a dash — and an ellipsis…\n\n\tAnother, with <angle> brackets."
    assert repair(text) == (text, False)


# Each of TRAILER_PATTERNS, in order: a trailer it removes, which TRAILER_WORDS must spot.
TRAILER_EXAMPLES = [
    "© 2024 The Associated Press. All rights reserved.",
    "This material may not be published, broadcast, rewritten or redistributed.",
    "Our Standards: The Thomson Reuters Trust Principles.",
    "(Reporting by Jane Smith; Editing by Ann Lee)",
    "Associated Press writer Jane Doe in Paris contributed to this report.",
    "Follow AP’s coverage of the elections at https://apnews.com/hub/elections",
    "_____",
]


def test_every_trailer_pattern_has_its_words():
    assert len(TRAILER_EXAMPLES) == len(TRAILER_PATTERNS) == len(TRAILER_WORDS)
    for example in TRAILER_EXAMPLES:
        body = "Body paragraph.\n\n" + example
        assert strip_trailers(body) == "Body paragraph.", example
        assert TRAILER_HINT.search(example.upper()), example


def test_text_without_trailer_words_is_returned_as_it_is():
    text = "Prices rose 3% in May.\n\nThe bank said it would act. Reporting season starts next week."
    assert strip_trailers(text) == text
