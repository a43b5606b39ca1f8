"""Benchmark pages pushed as raw HTML through the running pipeline come out with the text the benchmark scores."""

from __future__ import annotations

import gzip
import json

import pytest

from bench.metric import evaluate
from services.cleaner.extract import extract_html
from tests.conftest import ROOT, worker_env
from tests.helpers import Workers, push, read_bodies, wait_until

pytestmark = pytest.mark.e2e
DATA = ROOT.parent / "shared" / "benchdata" / "article-extraction"
PAGES = 30


@pytest.mark.skipif(not DATA.exists(), reason=f"the article-extraction benchmark is not at {DATA}")
def test_benchmark_pages_through_the_pipeline_keep_their_extraction_quality(redis_url, prefix, r, tmp_path):
    truth = json.loads((DATA / "ground-truth.json").read_text())
    ids = sorted(truth)[:PAGES]
    pages = {i: gzip.decompress((DATA / "html" / f"{i}.html.gz").read_bytes()).decode("utf-8") for i in ids}
    w = Workers(worker_env(redis_url, prefix, f"sqlite:///{tmp_path / 'x.db'}", tmp_path), tmp_path)
    try:
        for stage in ("cleaner", "classifier", "storage"):
            w.start(stage)
        push(r, f"{prefix}:raw", [{"id": i, "html": pages[i], "url": truth[i]["url"]} for i in ids])
        wait_until(lambda: len(read_bodies(r, f"{prefix}:enriched")) + r.xlen(f"{prefix}:dlq") >= PAGES, timeout=180, what="all pages")
    finally:
        w.stop()
    enriched = {b["id"]: b["text"] for b in read_bodies(r, f"{prefix}:enriched")}
    assert set(enriched) == set(ids), f"dead letters: {read_bodies(r, f'{prefix}:dlq')}"
    gold = [truth[i]["articleBody"] for i in ids]
    via_pipeline = evaluate(zip(gold, [enriched[i] for i in ids]))
    via_extractor = evaluate(zip(gold, [extract_html(pages[i], truth[i]["url"]).text for i in ids]))
    print(f"\nF1 on {PAGES} pages: pipeline {via_pipeline.f1:.4f}, extract_html alone {via_extractor.f1:.4f}")
    assert via_pipeline.f1 >= via_extractor.f1 - 0.005
