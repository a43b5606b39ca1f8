"""The classifier's pure transform: CleanArticle -> ClassifiedArticle.

`load_resources()` builds the heavy, read-only parts once (topic model, gazetteer, spin lexicon; about half
a second) and caches them per topic-model name; `classify()` does no I/O.

Topics, entities, key phrases and the spin score are English-only: for an article whose detected language is
neither English nor undetermined they are left empty (a wrong English reading is worse than none). Places are
found in every language, since capitalised place names mostly survive translation.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from shared.contract import ClassifiedArticle, CleanArticle, Dateline, Quality

from .entities import extract_entities
from .keywords import extract_keywords
from .places import Gazetteer, build_gazetteer
from .spin import SpinDetector
from .topics import TopicModel, load_topic_model

ENGLISH = ("en", "und", "")


@dataclass
class Resources:
    """Everything `classify` needs, built once per process and shared read-only."""

    topic_model: TopicModel
    gazetteer: Gazetteer
    spin: SpinDetector
    classifier: str = "embedding"


_cache: dict[str, Resources] = {}
_gazetteer: Gazetteer | None = None
_lock = threading.Lock()


def load_resources(classifier: str = "embedding") -> Resources:
    """Build (or reuse) the resources; `classifier` picks the topic model (see `topics.load_topic_model`)."""
    global _gazetteer
    name = (classifier or "embedding").strip()
    with _lock:
        res = _cache.get(name)
        if res is None:
            if _gazetteer is None:
                _gazetteer = build_gazetteer()
            res = Resources(
                topic_model=load_topic_model(name), gazetteer=_gazetteer, spin=SpinDetector(), classifier=name
            )
            _cache[name] = res
        return res


def _is_english(language: str | None) -> bool:
    lang = (language or "").lower()
    return lang in ENGLISH or lang.startswith("en-") or lang.startswith("en_")


def _without_dateline(text: str, dateline: Dateline | None) -> str:
    """The text without a dateline the cleaner left at its head ("SEOUL, South Korea (AP) —")."""
    if dateline is None or not dateline.raw:
        return text
    head = text.find(dateline.raw, 0, len(dateline.raw) + 200)
    if head < 0:
        return text
    return text[:head] + text[head + len(dateline.raw) :]


def classify(article: CleanArticle, res: Resources) -> ClassifiedArticle:
    """Topics, places, entities, key phrases and a spin score for one article."""
    title = article.title or None
    text = article.text or ""
    places = res.gazetteer.find(text, title=title, dateline=article.dateline)  # handles the dateline itself
    if _is_english(article.language):
        text = _without_dateline(text, article.dateline)
        topics = list(res.topic_model.predict(title, text))
        gaz = res.gazetteer
        entities = extract_entities(text, title=title, is_place=gaz.is_place, is_country=gaz.is_country)
        keywords = extract_keywords(text, title=title)
        quality = res.spin.quality(text)
    else:
        topics, entities, keywords, quality = [], [], [], Quality()
    return ClassifiedArticle(
        **article.model_dump(),
        topics=topics,
        places=places,
        entities=entities,
        keywords=keywords,
        quality=quality,
    )
