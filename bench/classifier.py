"""Classifier speed per backend, beside the cleaner on the same articles (one core, CPU time).

    python bench/classifier.py [--data PATH] [--repeat N]

Reads the article-extraction benchmark's 181 real news pages (../shared/benchdata/article-extraction unless
--data is given), runs the cleaner over them (the same-run baseline: extraction is the pipeline's other
CPU-heavy stage), then classifies the cleaned articles with each topic backend. Prints articles/s per core
(time.process_time, best of --repeat), the classifier's time per part, and the classifier/cleaner cost
ratio: below 1 the classifier is not the stage that dominates. The shared 675-word AP wire story is timed
on its own when present.
"""

from __future__ import annotations

import argparse
import gzip
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from services.classifier.entities import extract_entities  # noqa: E402
from services.classifier.keywords import extract_keywords  # noqa: E402
from services.classifier.transform import classify, load_resources  # noqa: E402
from services.cleaner.transform import clean  # noqa: E402
from shared.contract import CleanArticle, RawArticle  # noqa: E402
from shared.errors import PermanentError  # noqa: E402

DEFAULT_DATA = ROOT.parent / "shared" / "benchdata" / "article-extraction"
SAMPLE = ROOT.parent / "shared" / "samples" / "wire-ap-2022-11-08-north-korea.txt"
BACKENDS = ("embedding", "keywords")


def best_cpu(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.process_time()
        fn()
        times.append(time.process_time() - start)
    return min(times)


def load_pages(data: Path) -> list[RawArticle]:
    truth = json.loads((data / "ground-truth.json").read_text(encoding="utf-8"))
    return [
        RawArticle(url=truth[pid].get("url"), html=gzip.decompress((data / "html" / f"{pid}.html.gz").read_bytes()).decode())
        for pid in sorted(truth)
    ]


def clean_all(raws: list[RawArticle]) -> list[CleanArticle]:
    out = []
    for i, raw in enumerate(raws):
        try:
            out.append(clean(raw, article_id=f"a{i}"))
        except PermanentError:
            pass
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, default=DEFAULT_DATA)
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args(argv)
    if not (args.data / "ground-truth.json").exists():
        print(f"no benchmark data at {args.data}", file=sys.stderr)
        return 2
    raws = load_pages(args.data)
    articles = clean_all(raws)
    english = [a for a in articles if a.language == "en"]
    words = statistics.mean(a.word_count for a in english)
    cleaner_s = best_cpu(lambda: clean_all(raws), args.repeat)
    cleaner_rate = len(raws) / cleaner_s
    print(f"{len(raws)} pages, {len(english)} English articles, {words:.0f} words per article on average")
    print(f"cleaner (baseline, HTML in):        {cleaner_rate:8.1f} articles/s per core")
    parts = {
        "places": lambda a, r: r.gazetteer.find(a.text, title=a.title, dateline=a.dateline),
        "entities": lambda a, r: extract_entities(a.text, title=a.title, is_place=r.gazetteer.is_place,
                                                  is_country=r.gazetteer.is_country),
        "keywords": lambda a, r: extract_keywords(a.text, title=a.title),
        "spin": lambda a, r: r.spin.quality(a.text),
    }
    sample = None
    if SAMPLE.exists():
        sample = clean(RawArticle(text=SAMPLE.read_text(encoding="utf-8")), article_id="sample")
    for name in BACKENDS:
        res = load_resources(name)
        classify(english[0], res)  # warm-up: loads lazily built parts
        total = best_cpu(lambda: [classify(a, res) for a in english], args.repeat)
        rate = len(english) / total
        topics = best_cpu(lambda: [res.topic_model.predict(a.title, a.text) for a in english], args.repeat)
        print(f"classifier, topics={name:10}       {rate:8.1f} articles/s per core   "
              f"classifier/cleaner cost {cleaner_rate / rate:.2f}")
        per_part = {"topics": topics} | {
            part: best_cpu(lambda fn=fn: [fn(a, res) for a in english], args.repeat) for part, fn in parts.items()
        }
        print("    ms per article: " + ", ".join(f"{k} {1000 * v / len(english):.2f}" for k, v in per_part.items()))
        if sample is not None:
            one = best_cpu(lambda: [classify(sample, res) for _ in range(20)], args.repeat) / 20
            print(f"    the {sample.word_count}-word AP sample: {1000 * one:.1f} ms, {1 / one:.0f} articles/s per core")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
