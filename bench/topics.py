"""Topic accuracy on public labelled news sets, with published and same-run baselines beside it.

    python bench/topics.py [--data PATH] [--model NAME ...] [--limit N]

Reads ../shared/benchdata/topics from the repository root unless --data is given:
- AG News test split (7,600 headlines with a sentence of lead; classes World, Sports, Business, Sci/Tech);
- BBC News (2,225 full articles; business, entertainment, politics, sport, tech).
Neither is used for training: every model here is trained only on the project's seed set
(services/classifier/data/seed/), so both sets are out-of-domain tests.

Models predict IPTC topics; a set's class gets the summed probability of the IPTC topics mapped to it (MAPS
below, fixed before measuring), and IPTC topics with no class in a set are left out of that set's decision.
Same-run baseline: TF-IDF (word 1-2 grams) + logistic regression trained on the same seed set. Published
baselines (trained on AG News' own 120,000 training articles) are printed beside for scale.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from sklearn.metrics import accuracy_score, f1_score  # noqa: E402

from services.classifier.topics import IPTC_TOPICS, load_topic_model  # noqa: E402
from services.classifier.train import SEED, load_examples  # noqa: E402

DEFAULT_DATA = ROOT.parent / "shared" / "benchdata" / "topics"

MAPS: dict[str, dict[str, list[str]]] = {
    "ag_news": {
        "World": ["politics", "conflict", "crime", "disaster", "religion", "society", "human_interest",
                  "education", "weather"],
        "Sports": ["sport"],
        "Business": ["economy", "labour"],
        "Sci/Tech": ["science", "health", "environment"],
    },
    "bbc": {
        "business": ["economy", "labour"],
        "entertainment": ["arts", "lifestyle", "human_interest"],
        "politics": ["politics", "conflict", "society", "education", "crime", "religion"],
        "sport": ["sport"],
        "tech": ["science"],
    },
}

PUBLISHED = {
    "ag_news": [
        ("TF-IDF + logistic regression, full AG training set", 0.92),
        ("fastText bigrams (Joulin et al. 2016)", 0.925),
        ("BERT-base fine-tuned (Sun et al. 2019)", 0.955),
    ],
    "bbc": [("TF-IDF + linear SVM, 5-fold CV on BBC itself (checked here)", 0.980)],
}

Item = tuple[str | None, str]


def load_ag(data: Path) -> tuple[list[Item], list[str]]:
    classes = (data / "ag_news_classes.txt").read_text().split()
    items, gold = [], []
    with open(data / "ag_news_test.csv", newline="", encoding="utf-8") as f:
        for label, title, desc in csv.reader(f):
            items.append((title, desc.replace("\\", " ")))
            gold.append(classes[int(label) - 1])
    return items, gold


def load_bbc(data: Path) -> tuple[list[Item], list[str]]:
    items, gold = [], []
    for line in (data / "bbc_news.jsonl").read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        title, _, body = row["text"].partition("\n")
        items.append((title.strip(), body.strip()))
        gold.append(row["label"])
    return items, gold


def topic_scores(model, items: list[Item]) -> tuple[list[str], np.ndarray]:
    """(topic keys, scores of shape items x keys) for any backend."""
    if hasattr(model, "scores") and hasattr(model, "labels"):
        return list(model.labels), model.scores(items)
    if hasattr(model, "probabilities"):
        return list(model.labels), model.probabilities(items)
    keys = list(IPTC_TOPICS)
    out = np.zeros((len(items), len(keys)))
    for i, (title, text) in enumerate(items):
        if hasattr(model, "evidence"):
            for key, ev in model.evidence(title, text).items():
                out[i, keys.index(key)] = ev
        else:
            by_code = {code: key for key, (code, _) in IPTC_TOPICS.items()}
            for t in model.predict(title, text):
                if t.code in by_code:
                    out[i, keys.index(by_code[t.code])] = t.score
    return keys, out


def decide(keys: list[str], scores: np.ndarray, mapping: dict[str, list[str]]) -> list[str]:
    classes = list(mapping)
    summed = np.stack([scores[:, [keys.index(k) for k in mapping[c] if k in keys]].sum(axis=1) for c in classes], 1)
    return [classes[i] for i in summed.argmax(axis=1)]


class TfidfBaseline:
    """TF-IDF (1-2 grams) + logistic regression, trained on the seed set like the shipped model."""

    name = "tfidf+lr (seed set)"

    def __init__(self) -> None:
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline

        examples = load_examples(SEED)
        self.pipe = make_pipeline(TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1),
                                  LogisticRegression(C=10.0, max_iter=5000))
        self.pipe.fit([f"{t}. {x}" for _, t, x in examples], [label for label, _, _ in examples])
        self.labels = list(self.pipe.classes_)

    def probabilities(self, items: list[Item]) -> np.ndarray:
        return self.pipe.predict_proba([f"{t or ''}. {x}" for t, x in items])


def evaluate(name: str, model, sets: dict[str, tuple[list[Item], list[str]]]) -> dict[str, dict[str, float]]:
    out = {}
    for set_name, (items, gold) in sets.items():
        start = time.perf_counter()
        keys, scores = topic_scores(model, items)
        elapsed = time.perf_counter() - start
        pred = decide(keys, scores, MAPS[set_name])
        out[set_name] = {
            "accuracy": accuracy_score(gold, pred),
            "macro_f1": f1_score(gold, pred, average="macro"),
            "per_s": len(items) / elapsed,
        }
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, default=DEFAULT_DATA)
    p.add_argument("--model", action="append", help="backends (NEWSFLOW_CLASSIFIER values); default embedding, keywords")
    p.add_argument("--limit", type=int, default=0, help="use only the first N items of each set")
    p.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = p.parse_args(argv)
    if not (args.data / "ag_news_test.csv").exists():
        print(f"no benchmark data at {args.data}", file=sys.stderr)
        return 2
    sets = {"ag_news": load_ag(args.data), "bbc": load_bbc(args.data)}
    if args.limit:
        sets = {k: (items[: args.limit], gold[: args.limit]) for k, (items, gold) in sets.items()}
    models = [(n, load_topic_model(n)) for n in (args.model or ["embedding", "keywords"])]
    models.append((TfidfBaseline.name, TfidfBaseline()))
    results = {name: evaluate(name, model, sets) for name, model in models}
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    for set_name, (items, _) in sets.items():
        print(f"\n{set_name}: {len(items)} items, classes {', '.join(MAPS[set_name])}")
        print(f"  {'model':38} {'accuracy':>8} {'macro-F1':>8} {'items/s':>9}")
        for name, r in results.items():
            s = r[set_name]
            print(f"  {name:38} {s['accuracy']:8.4f} {s['macro_f1']:8.4f} {s['per_s']:9,.0f}")
        for label, acc in PUBLISHED[set_name]:
            print(f"  {'published: ' + label:60} accuracy {acc:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
