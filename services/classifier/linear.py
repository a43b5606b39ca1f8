"""Topics from a linear model over sentence embeddings: the default backend (`NEWSFLOW_CLASSIFIER=embedding`).

An article becomes one WordLlama vector (`embedder.article_vectors`); a multinomial logistic regression turns it
into a probability per topic. Trained on one topic per example, it names the main topic well but is sure of
it (0.97 conflict, 0.02 politics for the AP story about arms for Russia), so for the IPTC labels its
probability is blended with the keyword scorer's multi-label score (`topics.KeywordTopicModel.scores`):

    score = (1 - KEYWORD_WEIGHT) x probability + KEYWORD_WEIGHT x keyword score

which keeps the embedding's ranking and lets a topic the text names outright ("foreign ministry", "sanctions")
through as a second one. Blending also scored better on both public sets (bench/topics.py). Topics at or above
the threshold are returned, best first, at most MAX_TOPICS.

The weights are a small `.npz` file written by `services.classifier.train`: the shipped one is trained on the
project's own seed set (`data/seed/<topic>.txt`), and `newsflow classifier train` makes one from a team's own
labelled articles; point `NEWSFLOW_CLASSIFIER` at that file to use it. Labels that are IPTC top-level keys get
their IPTC code and label; any other label is returned as it is, without a code.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from shared.contract import Topic

from . import embedder
from .topics import IPTC_TOPICS, MAX_TOPICS, KeywordTopicModel

WEIGHTS = Path(__file__).parent / "data" / "topics-wordllama.npz"
THRESHOLD = 0.3
KEYWORD_WEIGHT = 0.5


class LinearTopicModel:
    """Multinomial logistic regression over `embedder.article_vectors`."""

    name = "embedding"

    def __init__(self, path: str | Path = WEIGHTS, threshold: float | None = None, max_topics: int = MAX_TOPICS):
        with np.load(path, allow_pickle=False) as f:
            self.labels = [str(x) for x in f["labels"]]
            self.coef = f["coef"].astype(np.float32)
            self.intercept = f["intercept"].astype(np.float32)
            embedder_name = str(f["embedder"])
            stored_threshold = float(f["threshold"]) if "threshold" in f else THRESHOLD
        if embedder_name != embedder.NAME:
            raise ValueError(f"{path}: trained on {embedder_name!r} embeddings, this newsflow has {embedder.NAME!r}")
        if self.coef.shape != (len(self.labels), embedder.model().embedding.shape[1]):
            raise ValueError(f"{path}: weights of shape {self.coef.shape} do not fit {len(self.labels)} labels")
        self.path = Path(path)
        self.threshold = stored_threshold if threshold is None else threshold
        self.max_topics = max_topics
        # Blend only when every label is an IPTC key: a team's own labels have no keyword lexicon.
        self.keyword_weight = KEYWORD_WEIGHT if set(self.labels) <= set(IPTC_TOPICS) else 0.0
        self.keywords = KeywordTopicModel() if self.keyword_weight else None

    def probabilities(self, items: list[tuple[str | None, str]]) -> np.ndarray:
        """One row of topic probabilities (summing to 1) per (title, text)."""
        z = embedder.article_vectors(items) @ self.coef.T + self.intercept
        z -= z.max(axis=1, keepdims=True)
        p = np.exp(z)
        return p / p.sum(axis=1, keepdims=True)

    def scores(self, items: list[tuple[str | None, str]]) -> np.ndarray:
        """One row of topic scores in [0, 1] per (title, text): the blend described above."""
        p = self.probabilities(items)
        if self.keywords is None:
            return p
        k = np.zeros_like(p)
        for i, (title, text) in enumerate(items):
            for key, score in self.keywords.scores(title, text).items():
                if key in self.labels:
                    k[i, self.labels.index(key)] = score
        return (1.0 - self.keyword_weight) * p + self.keyword_weight * k

    def predict_many(self, items: list[tuple[str | None, str]]) -> list[list[Topic]]:
        return [self._topics(row) for row in self.scores(items)]

    def predict(self, title: str | None, text: str) -> list[Topic]:
        if not (text or "").strip() and not (title or "").strip():
            return []
        return self.predict_many([(title, text)])[0]

    def _topics(self, row: np.ndarray) -> list[Topic]:
        order = np.argsort(-row)[: self.max_topics]
        out = []
        for i in order:
            if row[i] < self.threshold:
                break
            key = self.labels[i]
            code, label = IPTC_TOPICS.get(key, (None, key))
            out.append(Topic(code=code, label=label, score=round(float(row[i]), 3)))
        return out
