"""Main-text extraction on the ScrapingHub article-extraction benchmark: bare trafilatura against the cleaner's.

    python bench/extraction.py [--data PATH] [--repeat N] [--worst N]

Reads ../shared/benchdata/article-extraction from the repository root unless --data is given: 181 pages
`html/<id>.html.gz` and `ground-truth.json` ({id: {"articleBody", "url"}}). Scores both extractors with the
benchmark's metric (bench/metric.py) and times them in the same run, alternating which goes first, each timing
repeated --repeat times and the best kept. Pages/s is measured on this process's CPU time (time.process_time),
which other work on a shared machine disturbs less than the wall clock; the wall-clock figure is printed too.
The pages are read and decompressed before any timing.
"""

from __future__ import annotations

import argparse
import gzip
import json
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import trafilatura  # noqa: E402

from bench.metric import Score, evaluate, page_f1  # noqa: E402
from services.cleaner.extract import extract_html  # noqa: E402

DEFAULT_DATA = ROOT.parent / "shared" / "benchdata" / "article-extraction"

Page = tuple[str, str, str | None, str]  # id, html, url, truth
Extractor = Callable[[str, str | None], str]


def load(data: Path) -> list[Page]:
    truth = json.loads((data / "ground-truth.json").read_text(encoding="utf-8"))
    pages = []
    for page_id in sorted(truth):
        html = gzip.decompress((data / "html" / f"{page_id}.html.gz").read_bytes()).decode("utf-8")
        pages.append((page_id, html, truth[page_id].get("url"), truth[page_id].get("articleBody") or ""))
    return pages


def bare(html: str, url: str | None) -> str:
    return trafilatura.extract(html) or ""  # default settings, as a user would call it


def project(html: str, url: str | None) -> str:
    return extract_html(html, url).text


def run(extractor: Extractor, pages: list[Page]) -> tuple[list[str], float, float]:
    """The texts, and the CPU and wall-clock seconds it took."""
    texts = []
    cpu, wall = time.process_time(), time.perf_counter()
    for _, html, url, _ in pages:
        texts.append(extractor(html, url))
    return texts, time.process_time() - cpu, time.perf_counter() - wall


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help=f"benchmark folder (default {DEFAULT_DATA})")
    parser.add_argument("--repeat", type=int, default=2, help="timings per extractor, the best kept (default 2)")
    parser.add_argument("--worst", type=int, default=0, help="list the project's N worst pages")
    args = parser.parse_args(argv)
    if not (args.data / "ground-truth.json").is_file():
        print(f"no benchmark at {args.data} (ground-truth.json missing); pass --data PATH", file=sys.stderr)
        return 2

    pages = load(args.data)
    extractors: dict[str, Extractor] = {
        f"trafilatura {trafilatura.__version__} default": bare,
        "newsflow extract_html": project,
    }
    texts: dict[str, list[str]] = {}
    cpu: dict[str, float] = {name: float("inf") for name in extractors}
    wall: dict[str, float] = {name: float("inf") for name in extractors}
    for round_ in range(max(1, args.repeat)):
        # alternate which goes first, so that neither always runs on a cold (or a warm) process
        order = list(extractors) if round_ % 2 == 0 else list(reversed(extractors))
        for name in order:
            got, cpu_s, wall_s = run(extractors[name], pages)
            texts.setdefault(name, got)
            cpu[name], wall[name] = min(cpu[name], cpu_s), min(wall[name], wall_s)

    print(f"ScrapingHub article-extraction benchmark: {len(pages)} pages from {args.data}")
    print(f"Python {platform.python_version()}, trafilatura {trafilatura.__version__}; best of {args.repeat} timings")
    print(f"{'extractor':34} {'F1':>6} {'prec.':>6} {'recall':>6} {'pages/s':>8} {'(wall)':>8}")
    scores: dict[str, Score] = {}
    for name in extractors:
        scores[name] = evaluate((truth, text) for (_, _, _, truth), text in zip(pages, texts[name], strict=True))
        s = scores[name]
        print(
            f"{name:34} {s.f1:6.4f} {s.precision:6.4f} {s.recall:6.4f}"
            f" {len(pages) / cpu[name]:8.1f} {len(pages) / wall[name]:8.1f}"
        )
    base, ours = list(extractors)
    print(f"pages/s ratio newsflow/bare: {cpu[base] / cpu[ours]:.3f} (wall clock {wall[base] / wall[ours]:.3f})")

    if args.worst:
        print(f"\nworst {args.worst} pages for newsflow (page F1, newsflow vs bare):")
        rows = sorted(
            (page_f1(truth, texts[ours][k]), page_f1(truth, texts[base][k]), page_id, url)
            for k, (page_id, _, url, truth) in enumerate(pages)
        )
        for f1_ours, f1_base, page_id, url in rows[: args.worst]:
            print(f"  {f1_ours:.3f} {f1_base:.3f} {page_id[:12]} {url}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
