"""Near-duplicate signatures (services/cleaner/neardup.py) and their precision and recall on tests/neardup_eval.py."""

from __future__ import annotations

import re
import time

import pytest

from services.cleaner import neardup
from services.cleaner.neardup import BANDS, MIN_SHINGLES, containment, immutables, signature, similarity
from tests.neardup_eval import STORIES, negatives, positives, spin
from tests.unspin_sample import sample, unspin

THRESHOLD = neardup.DEFAULT_THRESHOLD


def lsh_candidates(a: str, b: str) -> bool:
    """What the Redis index does, in memory: a shared bucket in any band."""
    sa, sb = signature(a), signature(b)
    return sa.usable and sb.usable and any(x == y for x, y in zip(sa.bands, sb.bands))


def judged_duplicate(a: str, b: str, threshold: float = THRESHOLD) -> bool:
    return lsh_candidates(a, b) and similarity(a, b) >= threshold


def word_shingles(text: str, n: int) -> set[str]:
    words = re.findall(r"\w+", text.lower())
    return {" ".join(words[i : i + n]) for i in range(len(words) - n + 1)}


def jaccard(a: set, b: set) -> float:
    return len(a & b) / len(a | b) if a | b else 0.0


def test_immutables_are_names_and_numbers_in_order():
    text = "Last week, the Federal Reserve raised rates by 0.75 point. Chair Jerome Powell said on Wednesday that U.S. inflation was 8.2%."
    assert immutables(text) == ["federal", "reserve", "0.75", "chair", "jerome", "powell", "u.s", "8.2"]


def test_sentence_initial_words_are_not_names_unless_a_name_follows():
    assert immutables("Officials said so. North Korea fired. Final word.") == ["north", "korea"]


def test_possessives_and_curly_quotes_fold():
    assert immutables("a test by North Korea’s army and North Korea's navy") == ["north", "korea", "north", "korea"]


def test_spinning_leaves_the_signature_mostly_intact():
    story = STORIES[0].text
    spun = spin(story)
    assert jaccard(word_shingles(story, 5), word_shingles(spun, 5)) < 0.4  # shingles fail ...
    assert similarity(story, spun) >= 0.7  # ... immutables do not


def test_short_texts_are_not_comparable():
    assert not signature("North Korea fired a missile on Sunday.").usable
    assert signature(STORIES[0].text).usable and len(signature(STORIES[0].text).shingles) >= MIN_SHINGLES
    assert len(signature(STORIES[0].text).bands) == BANDS


def test_signature_is_deterministic_across_processes():
    # Replicas must agree on bucket names: MinHash seeds and the band hash are fixed, not per process.
    assert signature(STORIES[3].text).bands == signature(STORIES[3].text).bands
    assert signature(STORIES[3].text).bands[0] == "%016x" % int(signature(STORIES[3].text).bands[0], 16)


def test_containment_is_symmetric_and_bounded():
    a, b = frozenset({1, 2, 3, 4}), frozenset({3, 4})
    assert containment(a, b) == containment(b, a) == 1.0
    assert containment(a, frozenset()) == 0.0


def test_precision_and_recall_on_the_evaluation_set():
    pos, neg = positives(), negatives()
    assert len(pos) >= 12 and len(neg) >= 12
    tp = sum(judged_duplicate(a, b) for _, a, b in pos)
    fp = sum(judged_duplicate(a, b) for _, a, b in neg)
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / len(pos)
    missed = [label for label, a, b in pos if not judged_duplicate(a, b)]
    false = [label for label, a, b in neg if judged_duplicate(a, b)]
    pos_scores = sorted(similarity(a, b) for _, a, b in pos)
    neg_scores = sorted(similarity(a, b) for _, a, b in neg)
    print(
        f"\nnear-dup eval at threshold {THRESHOLD}: {len(pos)} positives, {len(neg)} negatives; "
        f"precision {precision:.3f}, recall {recall:.3f}; missed {missed}; false {false}; "
        f"confirmation score: positives min {pos_scores[0]:.3f}, negatives max {neg_scores[-1]:.3f}"
    )
    for kind in ("re-edited", "spun", "truncated", "other-lead"):
        kind_pos = [(a, b) for label, a, b in pos if label.endswith("/" + kind)]
        print(f"  {kind}: {sum(judged_duplicate(a, b) for a, b in kind_pos)}/{len(kind_pos)}")
    assert precision >= 0.9 and recall >= 0.9


def test_the_spun_sample_and_its_unspun_copy_are_near_duplicates():
    spun = sample()
    if spun is None:
        pytest.skip("shared/samples/wire-ap-2022-11-08-north-korea.txt is not here")
    original = unspin(spun)
    assert original != spun
    w5 = jaccard(word_shingles(spun, 5), word_shingles(original, 5))
    w1 = jaccard(word_shingles(spun, 1), word_shingles(original, 1))
    score = similarity(spun, original)
    print(f"\nspun sample vs unspun: word 5-shingle Jaccard {w5:.3f}, unigram Jaccard {w1:.3f}, immutable-bigram containment {score:.3f}")
    assert judged_duplicate(spun, original)
    # ... but not of the other North Korea stories
    for story in STORIES:
        if story.topic == "north-korea":
            assert similarity(spun, story.text) < THRESHOLD


def test_signature_cost_per_article():
    text = "\n\n".join(s.text for s in STORIES[:4])  # about 600 words, a full article
    signature(text)
    n = 200
    start = time.perf_counter()
    for _ in range(n):
        signature(text)
    ms = (time.perf_counter() - start) / n * 1000
    print(f"\nsignature: {ms:.2f} ms per {len(text.split())}-word article (extraction is about 10 ms a page)")


def reference_immutables(text: str) -> list[str]:
    """The definition immutables() implements in one pass: every token with its sentence-start flag, then the rules."""
    import unicodedata

    text = unicodedata.normalize("NFKC", text)
    toks, start = [], True
    for m in neardup.TOKEN.finditer(text):
        word = m.group(0)
        abbreviation = neardup._is_abbreviation(word)
        at_end = word.endswith(".") and (m.end() >= len(text) or text[m.end()].isspace())
        toks.append((word if abbreviation else word.rstrip("."), start))
        tail = text[m.end() : m.end() + 4]
        start = bool(neardup.SENTENCE_END.match(tail)) or tail.startswith("\n") or (at_end and not abbreviation)
    out = []
    for i, (word, start) in enumerate(toks):
        norm = neardup.POSSESSIVE.sub("", word.lower()).rstrip(".")
        if not norm or norm in neardup.NOT_IMMUTABLE:
            continue
        if any(c.isdigit() for c in word):
            out.append(norm)
        elif word[0].isupper():
            follows = toks[i + 1] if i + 1 < len(toks) else ("", False)
            if not start or (follows[0][:1].isupper() and not follows[1]):
                out.append(norm)
    return out


def test_immutables_follow_their_definition():
    import random

    rng = random.Random(11)
    vocab = ["the", "The", "U.S.", "Nov.", "Dr.", "John's", "Korea’s", "covid19", "2024", "8.2%", "A", "a.", "Mr.", "X.",
             "²3", "e.g.", "Über", "über", "x-ray", "St.", "Paris", "PARIS", "...", ".", "!", "?", "”", ")", "\n", "\n\n",
             " ", "—", "(", "Jan.", "NASA", "5.", "U.N.", "No.", "said", "North", "Korea"]
    texts = [s.text for s in STORIES] + [spin(s.text) for s in STORIES]
    texts += ["".join(rng.choice(vocab) + rng.choice(["", " ", " ", "\n"]) for _ in range(rng.randint(1, 30))) for _ in range(3000)]
    for text in texts:
        assert immutables(text) == reference_immutables(text), repr(text)


def test_bucket_names_are_those_of_a_fresh_minhash():
    # The permutations are drawn once per process; the buckets an index already holds must keep their names.
    import hashlib

    import numpy as np
    from datasketch import MinHash

    seq = immutables(STORIES[2].text)
    mh = MinHash(num_perm=neardup.NUM_PERM)
    mh.update_batch([f.encode() for f in sorted(set(seq) | {f"{a} {b}" for a, b in zip(seq, seq[1:])})])
    values = np.asarray(mh.hashvalues, dtype=np.uint64)
    rows = neardup.ROWS
    expected = tuple(hashlib.blake2b(values[b * rows : (b + 1) * rows].tobytes(), digest_size=8).hexdigest() for b in range(BANDS))
    assert signature(STORIES[2].text).bands == expected
