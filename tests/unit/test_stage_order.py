"""Which articles of a batch the CPU-heavy stages process and commit first (StageSpec.first)."""

from __future__ import annotations

from shared.contract import RawArticle


def test_the_cpu_heavy_stages_commit_their_quick_articles_first():
    """The cleaner: plain text before HTML pages; the classifier: briefs before long articles."""
    from services.classifier.app import BRIEF_WORDS
    from services.classifier.app import spec as classifier_spec
    from services.cleaner.app import spec as cleaner_spec
    from shared.contract import CleanArticle

    cleaner = cleaner_spec(dedup=None, max_html_bytes=10_000_000)  # type: ignore[arg-type]
    assert cleaner.first(RawArticle(text="Plain copy.")) and cleaner.first(RawArticle(text="x", html="  "))
    assert not cleaner.first(RawArticle(html="<html><p>A page.</p></html>"))
    classifier = classifier_spec(resources=None)  # type: ignore[arg-type]
    assert classifier.first(CleanArticle(id="a", text="Brief.", word_count=BRIEF_WORDS))
    assert not classifier.first(CleanArticle(id="b", text="Long.", word_count=BRIEF_WORDS + 1))
