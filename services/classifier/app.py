"""classifier: reads `{prefix}:cleaned`, adds topics, places, entities, keywords and quality, writes `{prefix}:classified`."""

from __future__ import annotations

from typing import Any

from shared.contract import ClassifiedArticle, CleanArticle
from shared.transport import Entry, StageSpec
from shared.transport.runner import each

from .transform import Resources, classify


def _decode(body: Any) -> tuple[CleanArticle, list[str]]:
    return CleanArticle.model_validate(body), []


def spec(resources: Resources) -> StageSpec:
    def one(entry: Entry, article: CleanArticle) -> ClassifiedArticle:  # type: ignore[override]
        return classify(article, resources)

    # Briefs are classified and committed before the long articles of their batch: classification time grows with
    # the text (about 5 ms for 700 words), so a brief need not wait for its batch-mates; and a brief that arrives
    # while the long ones are classified is read and committed between two of them (peek).
    return StageSpec(name="classifier", input="cleaned", output="classified", decode=_decode, process=each(one, offload=True),
                     model=CleanArticle, first=_brief, peek=True)


BRIEF_WORDS = 400


def _brief(article: CleanArticle) -> bool:
    return article.word_count <= BRIEF_WORDS
