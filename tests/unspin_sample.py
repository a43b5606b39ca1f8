"""Restores the spun AP sample (read-only, in ../shared/samples) to plain agency English, for tests only.

The sample is never copied into the project: tests read it when it is there and skip otherwise.
"""

from __future__ import annotations

import re
from pathlib import Path

SAMPLE = Path(__file__).resolve().parents[2] / "shared" / "samples" / "wire-ap-2022-11-08-north-korea.txt"

# spun phrase -> what the agency wrote (longest first when applied)
RESTORE = {
    "accused america": "accused the United States", "america": "the United States", "by no means": "never",
    "despatched": "sent", "Final week": "Last week", "Nationwide Safety Council": "National Security Council",
    "important quantity": "significant amount", "mentioned": "said", "making an attempt": "trying",
    "seem": "appear", "have been being": "were being", "international locations": "countries",
    "Center East": "Middle East", "strikes": "moves", "try and": "attempt to", "picture": "image",
    "worldwide enviornment": "international arena", "army international affairs workplace": "military foreign affairs office",
    "press release": "statement", "as soon as once more": "once again", "sooner or later": "in the future",
    "officers": "officials", "discovering": "finding", "thousands and thousands": "millions",
    "hold its mouth shut": "keep its mouth shut", "an thought": "an idea", "by means of": "through",
    "vary": "change", "conflict": "war", "Slapped": "Hit", "consultants": "experts", "probably going": "likely",
    "possibility": "option", "provide": "supply", "retains": "keeps", "major stockpile": "significant stockpile",
    "lots of them": "many of them", "At the same time as": "Even as", "spice up": "boost", "disaster": "crisis",
    "coverage": "policy", "motion": "action", "guard": "protect", "grew to become": "became",
    "the one nation except for": "the only country besides", "acknowledge": "recognize", "impartial": "independent",
    "authorities": "government", "inquisitive about": "interested in", "development staff": "construction workers",
    "attainable": "possible", "can be a violation": "would be a violation", "buying and selling": "trading",
    "But it surely’s": "But it’s", "recent sanctions": "new sanctions", "Safety Council": "Security Council",
    "concerning": "regarding", "12 months": "year", "sequence": "series", "assessments": "tests",
    "a number of": "multiple", "utilizing": "using", "exercise": "activity", "strain": "pressure",
    "Secretary-Common": "Secretary-General", "current condemnation": "recent condemnation", "assertion": "statement",
    "revealed": "published", "secretary basic": "secretary-general", "White Home": "White House",
    "State Division": "State Department", "habits": "behavior", "Overseas Ministry": "Foreign Ministry",
    "worldwide": "international", "the area": "the region", "the ministry’s army": "the ministry’s military",
    "army motion": "military action", "army": "military", "switch": "transfer", "clarify": "make clear",
}


def unspin(text: str) -> str:
    for spun in sorted(RESTORE, key=len, reverse=True):
        text = re.sub(rf"(?<!\w){re.escape(spun)}(?!\w)", RESTORE[spun], text)
    return text


def sample() -> str | None:
    return SAMPLE.read_text(encoding="utf-8") if SAMPLE.exists() else None
