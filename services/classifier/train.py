"""Train the linear topic model (`linear.py`) from labelled articles.

    python -m services.classifier.train                      # the shipped model, from data/seed/
    newsflow classifier train LABELLED --out model.npz       # your own, then NEWSFLOW_CLASSIFIER=model.npz

LABELLED is a directory of `<label>.txt` files, one article a line as "headline - lead" (the seed set's form),
or a JSON Lines file of {"label": ..., "title": ..., "text": ...}. Labels that are IPTC top-level keys
(`politics`, `sport`, ... see topics.IPTC_TOPICS) get IPTC codes; others are kept as they are.

Needs scikit-learn (`pip install 'newsflow[train]'`); running the model does not.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

import numpy as np

from . import embedder
from .linear import THRESHOLD, WEIGHTS

SEED = Path(__file__).parent / "data" / "seed"
C = 3.0  # chosen by 5-fold cross-validation on the seed set (see `--cv`)


def load_examples(source: str | Path) -> list[tuple[str, str | None, str]]:
    """(label, title, text) triples from a seed-style directory or a JSON Lines file."""
    source = Path(source)
    out: list[tuple[str, str | None, str]] = []
    if source.is_dir():
        for path in sorted(source.glob("*.txt")):
            for line in path.read_text(encoding="utf-8").splitlines():
                if line.strip():
                    title, _, lead = line.partition(" - ")
                    out.append((path.stem, title.strip(), lead.strip()))
    else:
        for n, line in enumerate(source.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            row = json.loads(line)
            label = row.get("label") or row.get("topic")
            if not label or not (row.get("text") or row.get("title")):
                raise ValueError(f"{source}:{n}: needs a label and a title or text")
            out.append((str(label), row.get("title"), row.get("text") or ""))
    if len({label for label, _, _ in out}) < 2:
        raise ValueError(f"{source}: need examples of at least two labels")
    return out


def digest(source: str | Path) -> str:
    """sha256 over the training files, stored with the weights so a stale model can be told apart."""
    source = Path(source)
    h = hashlib.sha256()
    for path in sorted(source.glob("*.txt")) if source.is_dir() else [source]:
        h.update(path.name.encode() + b"\0" + path.read_bytes())
    return h.hexdigest()


def _classifier(c: float):
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=c, max_iter=5000)


def _matrix(examples: list[tuple[str, str | None, str]]) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(sorted labels, one vector per example, label index per example)."""
    labels = sorted({label for label, _, _ in examples})
    x = embedder.article_vectors([(title, text) for _, title, text in examples])
    y = np.array([labels.index(label) for label, _, _ in examples])
    return labels, x, y


def fit(examples: list[tuple[str, str | None, str]], c: float = C) -> dict[str, np.ndarray]:
    labels, x, y = _matrix(examples)
    clf = _classifier(c).fit(x, y)
    coef, intercept = clf.coef_, clf.intercept_
    if len(labels) == 2:  # sklearn keeps one row for two classes: softmax(0, z) = sigmoid(z)
        coef = np.vstack([np.zeros_like(coef), coef])
        intercept = np.concatenate([np.zeros_like(intercept), intercept])
    return {
        "labels": np.array(labels),
        "coef": coef.astype(np.float32),
        "intercept": intercept.astype(np.float32),
        "embedder": np.array(embedder.NAME),
        "threshold": np.array(THRESHOLD),
    }


def cross_validate(examples, cs=(1.0, 3.0, 10.0, 30.0, 100.0), folds: int = 5) -> dict[float, float]:
    """Mean accuracy per C over stratified folds of the training examples."""
    from sklearn.model_selection import cross_val_score

    _, x, y = _matrix(examples)
    return {c: float(cross_val_score(_classifier(c), x, y, cv=folds).mean()) for c in cs}


def train(source: str | Path = SEED, out: str | Path = WEIGHTS, c: float = C) -> Path:
    examples = load_examples(source)
    weights = fit(examples, c)
    weights["digest"] = np.array(digest(source))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "wb") as f:  # np.savez_compressed would add ".npz" to a name without it
        np.savez_compressed(f, **weights)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="newsflow classifier train", description=__doc__.split("\n\n")[0])
    p.add_argument("source", nargs="?", default=str(SEED), help="directory of <label>.txt files or a JSONL file")
    p.add_argument("--out", default=str(WEIGHTS), help="where to write the weights (.npz)")
    p.add_argument("-C", type=float, default=C, help="inverse regularisation strength")
    p.add_argument("--cv", action="store_true", help="print 5-fold cross-validated accuracy for several C, then stop")
    args = p.parse_args(argv)
    if args.cv:
        for c, acc in cross_validate(load_examples(args.source)).items():
            print(f"C={c:<6g} accuracy={acc:.4f}")
        return 0
    examples = load_examples(args.source)
    path = train(args.source, args.out, args.C)
    print(f"trained on {len(examples)} examples, {len({e[0] for e in examples})} labels -> {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
