"""The ScrapingHub article-extraction benchmark's metric (see ../shared/README.md, benchdata/article-extraction).

- tokens are ``\\w+`` matches (Unicode, case kept);
- a text's shingles are its 4-token windows, counted with multiplicity; a text with fewer than 4 tokens has
  one shingle made of all of them, an empty text has none;
- per page: tp = shingles in both (min of the counts), fp = predicted only, fn = truth only, each then divided
  by tp + fp + fn so that long pages weigh no more than short ones;
- precision = mean over the pages with tp + fp > 0 of tp / (tp + fp) (1 when fp = fn = 0); recall likewise
  over the pages with tp + fn > 0 with fn; F1 = 2PR / (P + R) of those two means.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

TOKEN = re.compile(r"\w+")  # str patterns are Unicode-aware by default
NGRAM = 4

Counts = tuple[float, float, float]


def tokens(text: str | None) -> list[str]:
    return TOKEN.findall(text or "")


def shingles(text: str | None, n: int = NGRAM) -> Counter[tuple[str, ...]]:
    toks = tokens(text)
    if not toks:
        return Counter()
    if len(toks) < n:
        return Counter([tuple(toks)])
    return Counter(tuple(toks[i : i + n]) for i in range(len(toks) - n + 1))


def page_counts(truth: str | None, predicted: str | None, n: int = NGRAM) -> Counts:
    """Normalised (tp, fp, fn) of one page; (0, 0, 0) when both texts are empty."""
    want, got = shingles(truth, n), shingles(predicted, n)
    tp = fp = fn = 0
    for key in want.keys() | got.keys():
        w, g = want.get(key, 0), got.get(key, 0)
        tp += min(w, g)
        fp += max(0, g - w)
        fn += max(0, w - g)
    total = tp + fp + fn
    if total == 0:
        return 0.0, 0.0, 0.0
    return tp / total, fp / total, fn / total


def precision_score(tp: float, fp: float, fn: float) -> float:
    if fp == fn == 0:
        return 1.0
    if tp == fp == 0:
        return 0.0
    return tp / (tp + fp)


def recall_score(tp: float, fp: float, fn: float) -> float:
    if fp == fn == 0:
        return 1.0
    if tp == fn == 0:
        return 0.0
    return tp / (tp + fn)


def page_f1(truth: str | None, predicted: str | None) -> float:
    """F1 of a single page, for spot checks (the benchmark's F1 is of the means, see `score`)."""
    tp, fp, fn = page_counts(truth, predicted)
    p, r = precision_score(tp, fp, fn), recall_score(tp, fp, fn)
    return 2 * p * r / (p + r) if p + r else 0.0


@dataclass(frozen=True)
class Score:
    f1: float
    precision: float
    recall: float
    pages: int


def score(pages: Iterable[Counts]) -> Score:
    """Benchmark figures from the per-page (tp, fp, fn) of `page_counts`."""
    pages = list(pages)
    precisions = [precision_score(*c) for c in pages if c[0] + c[1] > 0]
    recalls = [recall_score(*c) for c in pages if c[0] + c[2] > 0]
    p = sum(precisions) / len(precisions) if precisions else 0.0
    r = sum(recalls) / len(recalls) if recalls else 0.0
    f1 = 2 * p * r / (p + r) if p + r else 0.0
    return Score(f1=f1, precision=p, recall=r, pages=len(pages))


def evaluate(pairs: Iterable[tuple[str | None, str | None]]) -> Score:
    """Benchmark figures from (truth, predicted) text pairs."""
    return score(page_counts(t, p) for t, p in pairs)
