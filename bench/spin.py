"""Spun-content detection on the project's own pairs, plus false alarms on real unspun copy.

    python bench/spin.py [--pairs PATH] [--data PATH]

bench/data/spin/pairs_*.jsonl hold 40 original wire-style stories written for the project and the same stories
through a simulated synonym spinner (20 "light", about a quarter of the words replaced, 20 "heavy", about
half), written without looking at the detector's lexicon. Printed: ROC AUC of spin_score (spun = positive),
how often a story's spun copy scores above its original, and recall / false-alarm rate of the "spun" flag.
When ../shared/benchdata/topics/bbc_news.jsonl is present, its 2,225 real BBC articles (unspun) give the flag's
false-alarm rate on real copy, and the shared AP sample is scored (it is spun).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from services.classifier.spin import SpinDetector  # noqa: E402

PAIRS = ROOT / "bench" / "data" / "spin"
BBC = ROOT.parent / "shared" / "benchdata" / "topics" / "bbc_news.jsonl"
SAMPLE = ROOT.parent / "shared" / "samples" / "wire-ap-2022-11-08-north-korea.txt"


def auc(positives: list[float], negatives: list[float]) -> float:
    """Probability that a random positive scores above a random negative (ties count half)."""
    wins = sum((p > n) + 0.5 * (p == n) for p in positives for n in negatives)
    return wins / (len(positives) * len(negatives))


def evaluate(pairs: list[dict], detector: SpinDetector) -> dict[str, float]:
    orig = [detector.quality(p["original"]) for p in pairs]
    spun = [detector.quality(p["spun"]) for p in pairs]
    out = {
        "pairs": len(pairs),
        "auc": auc([q.spin_score for q in spun], [q.spin_score for q in orig]),
        "pairwise": sum(s.spin_score > o.spin_score for s, o in zip(spun, orig, strict=True)) / len(pairs),
        "recall": sum("spun" in q.flags for q in spun) / len(pairs),
        "false_alarms": sum("spun" in q.flags for q in orig) / len(pairs),
        "mean_original": sum(q.spin_score for q in orig) / len(pairs),
        "mean_spun": sum(q.spin_score for q in spun) / len(pairs),
    }
    for kind in ("light", "heavy"):
        idx = [i for i, p in enumerate(pairs) if p["spinner"] == kind]
        if idx:
            out[f"recall_{kind}"] = sum("spun" in spun[i].flags for i in idx) / len(idx)
    return out


def load_pairs(path: Path = PAIRS) -> list[dict]:
    """Every pair in a .jsonl file, or in all `pairs*.jsonl` files of a directory."""
    files = sorted(path.glob("pairs*.jsonl")) if path.is_dir() else [path]
    return [json.loads(line) for f in files for line in f.read_text(encoding="utf-8").splitlines() if line.strip()]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--pairs", type=Path, default=PAIRS)
    p.add_argument("--bbc", type=Path, default=BBC)
    args = p.parse_args(argv)
    detector = SpinDetector()
    r = evaluate(load_pairs(args.pairs), detector)
    print(f"project pairs: {r['pairs']} originals and their spun copies")
    print(f"  ROC AUC {r['auc']:.3f}; spun copy above its original in {r['pairwise']:.0%} of pairs")
    print(f"  mean spin_score: originals {r['mean_original']:.3f}, spun {r['mean_spun']:.3f}")
    print(f"  'spun' flag: recall {r['recall']:.0%} (light {r.get('recall_light', 0):.0%}, "
          f"heavy {r.get('recall_heavy', 0):.0%}), false alarms on originals {r['false_alarms']:.0%}")
    if args.bbc.exists():
        texts = [json.loads(line)["text"] for line in args.bbc.read_text(encoding="utf-8").splitlines()]
        scores = [detector.quality(t) for t in texts]
        flagged = sum("spun" in q.flags for q in scores)
        print(f"real unspun copy (BBC News, {len(texts)} articles): flagged {flagged} "
              f"({flagged / len(texts):.2%}), mean spin_score {sum(q.spin_score for q in scores) / len(texts):.3f}")
    if SAMPLE.exists():
        q = detector.quality(SAMPLE.read_text(encoding="utf-8"))
        print(f"shared AP sample (spun): spin_score {q.spin_score:.3f}, flags {q.flags[:4]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
