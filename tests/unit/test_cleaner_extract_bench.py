"""The cleaner's extraction on pages of the ScrapingHub article-extraction benchmark (../shared/benchdata).

Quality only, never timing: `python bench/extraction.py` measures the whole benchmark and the speed.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
import trafilatura
from trafilatura.utils import load_html

from bench.metric import page_f1
from services.cleaner.extract import _date_params, _metadata, extract_html

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "benchdata" / "article-extraction"

# Each page exercises one step of extract_html, with the lowest page F1 accepted (measured: 1.000, 1.000, 1.000,
# 1.000 and 0.860).
PAGES = {
    # cityam.com: "Read more: <headline>" cross-links inside the article
    "360c732d": 0.95,
    # floridatoday.com: the on-page headline differs from <title>; dropped because the text starts with a heading
    "c81e134e": 0.95,
    # Russian-language page
    "ff0f958a": 0.95,
    # the fast path finds a 121-character teaser; the full precision cascade finds the article
    "0ec95c72": 0.95,
    # barrons.com: precision mode finds only a "copy for personal use" notice; balanced mode finds the article
    "f8ff621a": 0.8,
}

pytestmark = pytest.mark.skipif(
    not (DATA / "ground-truth.json").is_file(),
    reason=f"the article-extraction benchmark is not at {DATA} (it comes with the shared folder, ../shared)",
)


def _page(prefix: str) -> tuple[str, str, str]:
    truth = json.loads((DATA / "ground-truth.json").read_text(encoding="utf-8"))
    (page_id,) = [key for key in truth if key.startswith(prefix)]
    html = gzip.decompress((DATA / "html" / f"{page_id}.html.gz").read_bytes()).decode("utf-8")
    return html, truth[page_id]["url"], truth[page_id]["articleBody"]


@pytest.mark.parametrize(("prefix", "lowest"), PAGES.items(), ids=[p[:8] for p in PAGES])
def test_extraction_is_close_to_the_ground_truth(prefix, lowest):
    html, url, truth = _page(prefix)
    got = extract_html(html, url)
    assert page_f1(truth, got.text) >= lowest, got.text[:500]
    assert "\n\n" in got.text  # paragraphs stay apart


@pytest.mark.parametrize("prefix", PAGES, ids=[p[:8] for p in PAGES])
def test_metadata_agrees_with_trafilaturas_extract_metadata(prefix):
    # _metadata runs extract_metadata's steps but the unused ones: a trafilatura upgrade that changes them shows here
    html, url, _ = _page(prefix)
    tree = load_html(html)
    ours = _metadata(tree, url)
    theirs = trafilatura.extract_metadata(tree, default_url=url, date_config=_date_params())
    for name in ("title", "author", "date", "sitename", "description", "url", "image"):
        assert getattr(ours, name) == getattr(theirs, name), name


def test_metadata_agrees_on_every_page_when_the_tree_may_be_pruned():
    # extract_html hands _metadata its tree to prune in place (the author step's deep copy saved): same answers.
    truth = json.loads((DATA / "ground-truth.json").read_text(encoding="utf-8"))
    for page_id in sorted(truth):
        html = gzip.decompress((DATA / "html" / f"{page_id}.html.gz").read_bytes()).decode("utf-8")
        url = truth[page_id].get("url")
        ours = _metadata(load_html(html), url, may_prune=True)
        theirs = trafilatura.extract_metadata(load_html(html), default_url=url, date_config=_date_params())
        for name in ("title", "author", "date", "sitename", "description", "url", "image"):
            assert getattr(ours, name) == getattr(theirs, name), (page_id, name)
