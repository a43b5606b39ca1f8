"""A first detector of spun (synonym-rewritten) copy.

Article spinners replace words with "synonyms" without regard to fixed phrases, so names and idioms come out
tortured: "National Security Council" becomes "Nationwide Safety Council", "Middle East" becomes "Center
East", "last year" becomes "12 months in the past" (the "tortured phrases" of Cabanac, Labbe and Magazinov,
2021). This module looks for a lexicon of such substitutions, each with the original it stands for and a
weight: 1.0 for phrases no editor writes, less for phrases that also occur in honest English ("by no means",
"thousands and thousands"). Two signals are not phrases:
- "america" in lower case (a spinner's "the United States"): weight 1.0 per the first hit;
- "mentioned" used as the reporting verb: at least three times and never "said" or "says" (weight 1.0).

Score: each distinct hit contributes weight x (1 + 0.5 x (count - 1)), capped at 2 x weight. Hits of weight
below STRONG_WEIGHT (0.8) only corroborate: their total counts up to the total of the strong hits, so honest
copy full of "by no means" and "final week of" scores 0. Evidence = strong + min(weak, strong);
density = evidence per 1,000 words (at least 200 words assumed, so a short text needs more than a
single hit); spin_score = 1 - exp(-density / K). With K = 10 one full-weight hit in a 600-word article gives
0.15 and a 0.5 score needs about 7 weighted hits per 1,000 words.

Flags: "spun" when the score is at least 0.5, then one "spun:<found>→<original>" per distinct hit, heaviest
first (then in order of appearance), at most MAX_HIT_FLAGS.
"""

from __future__ import annotations

import math
import re

from shared.contract import Quality

from .matching import PhraseMatcher

K = 10.0
MIN_WORDS = 200
SPUN_AT = 0.5
STRONG_WEIGHT = 0.8
MAX_HIT_FLAGS = 10

# (spun phrase, original, weight). Lower-case; matched on word boundaries over the lower-cased text.
SPIN_LEXICON: list[tuple[str, str, float]] = [
    # institutions and fixed names
    ("nationwide safety council", "National Security Council", 1.0),
    ("u.n. safety council", "U.N. Security Council", 1.0),
    ("un safety council", "UN Security Council", 1.0),
    ("safety council", "Security Council", 0.5),  # "National Safety Council" is a real US body
    ("secretary-common", "Secretary-General", 1.0),
    ("secretary common", "Secretary General", 1.0),
    ("secretary basic", "secretary general", 1.0),
    ("overseas ministry", "Foreign Ministry", 1.0),
    ("overseas minister", "foreign minister", 0.8),
    ("overseas coverage", "foreign policy", 1.0),
    ("overseas affairs", "foreign affairs", 0.6),
    ("protection ministry", "Defense Ministry", 1.0),
    ("protection minister", "defense minister", 0.8),
    ("protection secretary", "defense secretary", 0.8),
    ("white home", "White House", 1.0),
    ("state division", "State Department", 0.8),
    ("supreme courtroom", "Supreme Court", 1.0),
    ("lawyer common", "attorney general", 1.0),
    ("legal professional common", "attorney general", 1.0),
    ("regulation enforcement", "law enforcement", 1.0),
    ("central financial institution", "central bank", 1.0),
    ("inventory market", "stock market", 1.0),
    ("inventory trade", "stock exchange", 1.0),
    ("chief government officer", "chief executive officer", 1.0),
    ("chief government", "chief executive", 0.8),
    ("human proper", "human rights", 0.8),
    ("election marketing campaign", "election campaign", 1.0),
    ("marketing campaign path", "campaign trail", 1.0),
    # places
    ("center east", "Middle East", 1.0),
    ("center eastern", "Middle Eastern", 1.0),
    ("worldwide enviornment", "international arena", 1.0),
    ("worldwide neighborhood", "international community", 1.0),
    ("worldwide group", "international community", 0.8),
    ("worldwide sanctions", "international sanctions", 0.6),
    ("worldwide organizations", "international organizations", 0.3),
    ("international locations", "countries", 0.6),
    # time
    ("final week", "last week", 0.6),
    ("final month", "last month", 0.6),
    ("final 12 months", "last year", 1.0),
    ("12 months in the past", "a year ago", 1.0),
    ("earlier this 12 months", "earlier this year", 1.0),
    ("later this 12 months", "later this year", 1.0),
    ("this 12 months", "this year", 0.8),
    ("subsequent 12 months", "next year", 1.0),
    ("a long time in the past", "decades ago", 0.8),
    ("the day gone by", "yesterday", 1.0),
    ("sooner or later", "in the future", 0.3),
    # science and tech (the classic tortured phrases)
    ("synthetic intelligence", "artificial intelligence", 1.0),
    ("counterfeit consciousness", "artificial intelligence", 1.0),
    ("man-made intelligence", "artificial intelligence", 0.8),
    ("huge information", "big data", 1.0),
    ("colossal information", "big data", 1.0),
    ("profound learning", "deep learning", 1.0),
    ("irregular woodland", "random forest", 1.0),
    ("flag to commotion", "signal to noise", 1.0),
    ("bosom malignancy", "breast cancer", 1.0),
    ("kidney disappointment", "kidney failure", 1.0),
    ("local weather change", "climate change", 1.0),
    ("world warming", "global warming", 1.0),
    ("greenhouse fuel", "greenhouse gas", 1.0),
    ("public well being", "public health", 1.0),
    ("well being care", "health care", 1.0),
    # other fixed phrases
    ("hostile try", "hostile attempt", 1.0),
    ("try and tarnish", "attempt to tarnish", 1.0),
    ("try and toughen", "attempt to toughen", 1.0),
    ("making an attempt to", "trying to", 0.6),
    ("an thought", "an idea", 1.0),
    ("as soon as once more", "once again", 0.8),
    ("grew to become", "became", 0.6),
    ("spice up", "boost", 0.8),
    ("consultants say", "experts say", 1.0),
    ("officers mentioned", "officials said", 1.0),
    ("probably going", "likely", 0.8),
    ("hegemonic coverage", "hegemonic policy", 1.0),
    ("inquisitive about", "interested in", 1.0),
    ("development staff", "construction workers", 0.8),
    ("but it surely", "but it", 1.0),
    ("missile assessments", "missile tests", 1.0),
    ("nuclear assessments", "nuclear tests", 0.8),
    ("dial up strain", "turn up pressure", 1.0),
    ("army motion", "military action", 1.0),
    ("army international affairs", "military foreign affairs", 1.0),
    ("intelligence discovering", "intelligence finding", 1.0),
    ("mentioned in a press release", "said in a statement", 1.0),
    ("separate assertion", "separate statement", 1.0),
    ("lots of of", "hundreds of", 1.0),
    ("tons of of", "hundreds of", 1.0),
    ("thousands and thousands", "millions", 0.5),
    ("the one nation", "the only country", 0.6),
    ("important quantity", "significant amount", 1.0),
    ("arms switch", "arms transfer", 1.0),
    ("switch route", "transfer route", 1.0),
    ("despatched", "sent", 0.4),
    ("by no means", "never", 0.2),
    ("attainable", "possible", 0.3),
    ("buying and selling", "trading", 0.3),
    ("at the same time as", "even as", 0.4),
]

_LOWER_AMERICA = re.compile(r"(?<![A-Za-z])america(?![A-Za-z])")
_MENTIONED = re.compile(r"\bmentioned\b")
_SAID = re.compile(r"\b(?:said|says)\b")


class SpinDetector:
    """Scores text for spinner substitutions; build once, call `quality(text)` many times."""

    def __init__(self, lexicon: list[tuple[str, str, float]] | None = None) -> None:
        entries = lexicon if lexicon is not None else SPIN_LEXICON
        self._matcher: PhraseMatcher[tuple[str, float]] = PhraseMatcher(
            (spun.lower(), (original, weight)) for spun, original, weight in entries
        )

    def hits(self, text: str) -> dict[str, tuple[str, float, int, int]]:
        """Distinct hits: found phrase -> (original, weight, count, first offset)."""
        lower = text.lower()
        found: dict[str, tuple[str, float, int, int]] = {}
        for start, _e, phrase, values in self._matcher.find(lower):
            original, weight = values[0]
            if weight <= 0:
                continue
            prev = found.get(phrase)
            found[phrase] = (original, weight, (prev[2] if prev else 0) + 1, prev[3] if prev else start)
        americas = list(_LOWER_AMERICA.finditer(text))
        if americas:
            found["america"] = ("the United States", 1.0, len(americas), americas[0].start())
        mentioned = list(_MENTIONED.finditer(lower))
        if len(mentioned) >= 3 and not _SAID.search(lower):
            found["mentioned"] = ("said", 1.0, len(mentioned), mentioned[0].start())
        return found

    def quality(self, text: str) -> Quality:
        found = self.hits(text)
        if not found:
            return Quality(spin_score=0.0, flags=[])
        contribution = {
            phrase: min(2.0 * weight, weight * (1.0 + 0.5 * (count - 1)))
            for phrase, (_original, weight, count, _first) in found.items()
        }
        strong = sum(c for phrase, c in contribution.items() if found[phrase][1] >= STRONG_WEIGHT)
        weak = sum(c for phrase, c in contribution.items() if found[phrase][1] < STRONG_WEIGHT)
        evidence = strong + min(weak, strong)
        words = max(MIN_WORDS, len(text.split()))
        density = evidence * 1000.0 / words
        score = round(min(1.0, 1.0 - math.exp(-density / K)), 3)
        ranked = sorted(found.items(), key=lambda kv: (-contribution[kv[0]], kv[1][3]))
        flags = [f"spun:{phrase}→{hit[0]}" for phrase, hit in ranked[:MAX_HIT_FLAGS]]
        if score >= SPUN_AT:
            flags.insert(0, "spun")
        return Quality(spin_score=score, flags=flags)


_DEFAULT: SpinDetector | None = None


def spin_quality(text: str, detector: SpinDetector | None = None) -> Quality:
    """Spin score and flags for a text (English)."""
    global _DEFAULT
    if detector is None:
        if _DEFAULT is None:
            _DEFAULT = SpinDetector()
        detector = _DEFAULT
    return detector.quality(text)
