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

    return StageSpec(name="classifier", input="cleaned", output="classified", decode=_decode, process=each(one, offload=True),
                     model=CleanArticle)
