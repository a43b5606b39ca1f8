"""The ScrapingHub benchmark's metric (bench/metric.py) on small hand-computed cases."""

from collections import Counter

import pytest

from bench.metric import Score, evaluate, page_counts, page_f1, precision_score, recall_score, score, shingles, tokens


def test_tokens_are_unicode_word_runs_with_case_kept():
    assert tokens("Hello, world! It's 2019.") == ["Hello", "world", "It", "s", "2019"]
    assert tokens("Ça va? naïve café, 東京都 — Москва_2") == ["Ça", "va", "naïve", "café", "東京都", "Москва_2"]
    assert tokens("") == [] and tokens(None) == [] and tokens(" — !") == []


def test_shingles_are_four_token_windows_counted_with_multiplicity():
    assert shingles("a b c d e") == Counter({("a", "b", "c", "d"): 1, ("b", "c", "d", "e"): 1})
    assert shingles("x y z w x y z w") == Counter(
        {("x", "y", "z", "w"): 2, ("y", "z", "w", "x"): 1, ("z", "w", "x", "y"): 1, ("w", "x", "y", "z"): 1}
    )


def test_fewer_than_four_tokens_make_one_shingle_and_empty_text_none():
    assert shingles("a b c") == Counter({("a", "b", "c"): 1})
    assert shingles("one") == Counter({("one",): 1})
    assert shingles("a b c d") == Counter({("a", "b", "c", "d"): 1})
    assert shingles("") == Counter() and shingles(None) == Counter() and shingles("...") == Counter()


@pytest.mark.parametrize(
    ("truth", "predicted", "expected"),
    [
        ("a b c d e", "a b c d e", (1.0, 0.0, 0.0)),
        # truth {abcd, bcde}, predicted {abcd}: tp 1, fn 1, out of 2
        ("a b c d e", "a b c d", (0.5, 0.0, 0.5)),
        # predicted {abcd, bcde, cdef}: tp 2, fp 1, out of 3
        ("a b c d e", "a b c d e f", (2 / 3, 1 / 3, 0.0)),
        # multiplicity: truth has xyzw twice and three other shingles; predicted has xyzw once
        ("x y z w x y z w", "x y z w", (0.2, 0.0, 0.8)),
        # punctuation and line breaks do not count, case does
        ("A b, c d!", "A\nb c -- d", (1.0, 0.0, 0.0)),
        ("A b c d", "a b c d", (0.0, 0.5, 0.5)),
        # fewer than four tokens: one shingle of all of them
        ("a b c", "a b c", (1.0, 0.0, 0.0)),
        ("a b c", "a b c d", (0.0, 0.5, 0.5)),
        # empty texts
        ("a b c d e", "", (0.0, 0.0, 1.0)),
        ("", "a b", (0.0, 1.0, 0.0)),
        ("", "", (0.0, 0.0, 0.0)),
        (None, None, (0.0, 0.0, 0.0)),
    ],
)
def test_page_counts_are_normalised_tp_fp_fn(truth, predicted, expected):
    assert page_counts(truth, predicted) == pytest.approx(expected)


def test_precision_and_recall_of_one_page_with_special_cases():
    assert precision_score(0.5, 0.25, 0.25) == pytest.approx(2 / 3)
    assert recall_score(0.5, 0.25, 0.25) == pytest.approx(2 / 3)
    # fp = fn = 0 is a perfect page, even the (0, 0, 0) of two empty texts
    assert precision_score(1.0, 0.0, 0.0) == 1.0 and recall_score(1.0, 0.0, 0.0) == 1.0
    assert precision_score(0.0, 0.0, 0.0) == 1.0 and recall_score(0.0, 0.0, 0.0) == 1.0
    # nothing right and nothing predicted (or nothing true)
    assert precision_score(0.0, 0.0, 1.0) == 0.0
    assert recall_score(0.0, 1.0, 0.0) == 0.0


def test_score_means_over_eligible_pages_then_f1_of_the_means():
    pages = [
        (1.0, 0.0, 0.0),  # perfect: P 1, R 1
        (0.5, 0.0, 0.5),  # half missed: P 1, R 0.5
        (0.0, 0.0, 1.0),  # nothing predicted: no precision (tp + fp = 0), R 0
        (0.0, 1.0, 0.0),  # empty truth, something predicted: P 0, no recall (tp + fn = 0)
        (0.0, 0.0, 0.0),  # both empty: in neither mean
    ]
    got = score(pages)
    assert got.precision == pytest.approx(2 / 3)  # (1 + 1 + 0) / 3
    assert got.recall == pytest.approx(1 / 2)  # (1 + 0.5 + 0) / 3
    assert got.f1 == pytest.approx(2 * (2 / 3) * (1 / 2) / (2 / 3 + 1 / 2))  # 4/7
    assert got.pages == 5


def test_score_of_nothing_is_zero():
    assert score([]) == Score(f1=0.0, precision=0.0, recall=0.0, pages=0)
    assert score([(0.0, 0.0, 0.0)]) == Score(f1=0.0, precision=0.0, recall=0.0, pages=1)


def test_evaluate_texts_end_to_end():
    got = evaluate([("a b c d e", "a b c d e"), ("a b c d e", "a b c d")])
    # pages (1, 0, 0) and (0.5, 0, 0.5): P = 1, R = 0.75
    assert got.precision == pytest.approx(1.0)
    assert got.recall == pytest.approx(0.75)
    assert got.f1 == pytest.approx(2 * 0.75 / 1.75)


def test_page_f1():
    assert page_f1("a b c d e", "a b c d e") == 1.0
    assert page_f1("a b c d e", "a b c d") == pytest.approx(2 * 0.5 / 1.5)
    assert page_f1("a b c d e", "") == 0.0
