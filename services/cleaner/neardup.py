"""Near-duplicate detection: MinHash over "immutable" tokens, banded LSH buckets in Redis, exact confirmation.

Why immutables. A synonym spinner rewrites ordinary words ("said" -> "mentioned", "last week" -> "final week")
but mostly leaves names and numbers alone (DSpin, Zhang, Wang and Voelker, NDSS 2014). Word 5-shingles of
an agency paragraph and its spun copy share about a third of their set (Jaccard 0.365): they find verbatim
copies only. The sequence of immutables survives: capitalised words not at a sentence start (or starting a
multi-word name), and tokens with digits, lower-cased, weekday and month names dropped. The signature of a
text is the set of its immutable unigrams and bigrams (bigrams of the immutable sequence, so order counts);
its confirmation set is the immutable bigrams alone.

Three steps per article:
1. MinHash (datasketch, NUM_PERM permutations) of the signature set, cut into BANDS bands of ROWS rows. Few
   rows per band make the LSH catch low Jaccard (about 0.18 at 50%, 0.97 probability at 0.33): a copy cut
   to its first half has a Jaccard near 0.5 and lower after spinning, so LSH finds candidates only.
2. Each band is a Redis set `{prefix}:dedup:lsh:<band>:<hash>` of article ids, with EXPIRE `window_s`
   (refreshed by every add); each indexed article has `{prefix}:dedup:near:doc:<id>`, expiring after
   `window_s`, holding its sequence number and its hashed confirmation set. Every replica shares them.
3. A candidate is confirmed by the containment of immutable bigrams, |A & B| / min(|A|, |B|), which is
   exact, high for a truncated copy and low for a different story on the same topic. A confirmed score
   at or above `threshold` marks the article a near duplicate of the earliest (lowest sequence) such match.

Ordering and redelivery. Writes come before reads: an article is added to its buckets, then reads them, so two
replicas adding near duplicates at the same moment see each other, and the sequence numbers (INCRBY, once per
batch) decide which came first. The doc key is SET NX: a redelivered article keeps its first sequence number,
finds only earlier articles, and so gets the same answer as the first time, never itself.
Texts with fewer than MIN_SHINGLES immutable bigrams are neither checked nor indexed (too little to compare).
"""

from __future__ import annotations

import hashlib
import re
import struct
import unicodedata
from dataclasses import dataclass

import numpy as np
import redis.asyncio as aredis
from datasketch import MinHash

NUM_PERM = 64
BANDS = 32
ROWS = NUM_PERM // BANDS
MIN_SHINGLES = 5
DEFAULT_THRESHOLD = 0.5
MAX_CANDIDATES = 64  # confirmed per article, most band hits first

TOKEN = re.compile(r"[^\W_]+(?:[.'’\-][^\W_]+)*\.?", re.UNICODE)
SENTENCE_END = re.compile(r"[.!?][\"'”’)\]]*\s")
POSSESSIVE = re.compile(r"['’]s$")
# Capitalised at a sentence start for grammar's sake, or everywhere but meaning nothing about the story.
NOT_IMMUTABLE = set(
    """a an the and or but if of to in on at by for with from as is are was were be it its this that these those
    he she they we you i his her their our your not no so than then there here which who what when where why how
    all any both each more most other some such only also after before while during since until over under about
    said says mr mrs ms dr
    monday tuesday wednesday thursday friday saturday sunday today yesterday tomorrow
    january february march april may june july august september october november december
    jan feb mar apr jun jul aug sep sept oct nov dec""".split()
)


def _tokens(text: str) -> list[tuple[str, bool]]:
    """(token, starts a sentence) in order."""
    out: list[tuple[str, bool]] = []
    start = True
    for m in TOKEN.finditer(text):
        word = m.group(0)
        at_end = word.endswith(".") and (m.end() >= len(text) or text[m.end()].isspace())
        out.append((word.rstrip(".") if not _is_abbreviation(word) else word, start))
        tail = text[m.end() : m.end() + 4]
        start = bool(SENTENCE_END.match(tail)) or tail.startswith("\n") or (at_end and not _is_abbreviation(word))
    return out


def _is_abbreviation(word: str) -> bool:
    """U.S., U.N., Nov.: an inner or single-letter dot, or a short capitalised form; not a sentence end."""
    core = word.rstrip(".")
    return word.endswith(".") and ("." in core or (len(core) <= 4 and core[:1].isupper() and core.lower() in _ABBREV))


_ABBREV = {"jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec", "mr", "mrs", "ms", "dr", "st", "gen", "gov", "sen", "rep", "lt", "col", "no"}


def immutables(text: str) -> list[str]:
    """Names and numbers in order of appearance, lower-cased: the words a spinner leaves alone."""
    toks = _tokens(unicodedata.normalize("NFKC", text))
    out: list[str] = []
    for i, (word, start) in enumerate(toks):
        norm = POSSESSIVE.sub("", word.lower()).rstrip(".")
        if not norm or norm in NOT_IMMUTABLE:
            continue
        if any(c.isdigit() for c in word):
            out.append(norm)
        elif word[0].isupper():
            follows = toks[i + 1][0] if i + 1 < len(toks) else ""
            if not start or (follows[:1].isupper() and not toks[i + 1][1]):
                out.append(norm)
    return out


@dataclass(frozen=True)
class Signature:
    shingles: frozenset[str]  # immutable bigrams: the confirmation set
    hashes: frozenset[int]  # the same, hashed to 64 bits (what the index stores)
    bands: tuple[str, ...]  # one LSH bucket name per band

    @property
    def usable(self) -> bool:
        return len(self.shingles) >= MIN_SHINGLES


def _h64(s: str) -> int:
    return int.from_bytes(hashlib.blake2b(s.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "big")


def signature(text: str) -> Signature:
    seq = immutables(text)
    bigrams = frozenset(f"{a} {b}" for a, b in zip(seq, seq[1:]))
    features = set(seq) | bigrams
    bands: tuple[str, ...] = ()
    if len(bigrams) >= MIN_SHINGLES:
        mh = MinHash(num_perm=NUM_PERM)
        mh.update_batch([f.encode("utf-8", "surrogatepass") for f in sorted(features)])
        values = np.asarray(mh.hashvalues, dtype=np.uint64)
        bands = tuple(
            hashlib.blake2b(values[b * ROWS : (b + 1) * ROWS].tobytes(), digest_size=8).hexdigest() for b in range(BANDS)
        )
    return Signature(bigrams, frozenset(_h64(s) for s in bigrams), bands)


def containment(a: frozenset[int] | frozenset[str], b: frozenset[int] | frozenset[str]) -> float:
    if not a or not b:
        return 0.0
    return len(a & b) / min(len(a), len(b))


def similarity(text_a: str, text_b: str) -> float:
    """The confirmation score of two texts (no index): containment of immutable bigrams."""
    return containment(signature(text_a).shingles, signature(text_b).shingles)


def _pack(seq: int, hashes: frozenset[int]) -> bytes:
    return struct.pack(f">Q{len(hashes)}Q", seq, *sorted(hashes))


def _unpack(blob: bytes) -> tuple[int, frozenset[int]]:
    values = struct.unpack(f">{len(blob) // 8}Q", blob)
    return values[0], frozenset(values[1:])


@dataclass(frozen=True)
class NearDuplicate:
    of: str
    score: float


class NearDuplicateIndex:
    def __init__(
        self,
        redis: aredis.Redis,
        prefix: str,
        window_s: int = 7 * 24 * 3600,
        threshold: float = DEFAULT_THRESHOLD,
    ) -> None:
        self.redis = redis
        self.prefix = prefix
        self.window_s = window_s
        self.threshold = threshold

    def band_key(self, band: int, bucket: str) -> str:
        return f"{self.prefix}:dedup:lsh:{band}:{bucket}"

    def doc_key(self, article_id: str) -> str:
        return f"{self.prefix}:dedup:near:doc:{article_id}"

    @property
    def seq_key(self) -> str:
        return f"{self.prefix}:dedup:near:seq"

    async def check_and_add(self, pairs: list[tuple[str, str]]) -> dict[str, NearDuplicate | None]:
        """For (article id, text) pairs: add each to the index, and say which earlier article it nearly
        duplicates (the earliest confirmed at `threshold` or more) with the score, or None."""
        out: dict[str, NearDuplicate | None] = {article_id: None for article_id, _ in pairs}
        items = [(aid, sig) for aid, text in pairs if (sig := signature(text)).usable]
        if not items:
            return out
        seen: set[str] = set()
        items = [(aid, sig) for aid, sig in items if not (aid in seen or seen.add(aid))]  # type: ignore[func-returns-value]
        last = int(await self.redis.incrby(self.seq_key, len(items)))
        await self.redis.expire(self.seq_key, self.window_s)
        keys = [[self.band_key(b, h) for b, h in enumerate(sig.bands)] for _, sig in items]
        async with self.redis.pipeline(transaction=False) as pipe:
            for n, ((aid, sig), bands) in enumerate(zip(items, keys)):
                pipe.set(self.doc_key(aid), _pack(last - len(items) + 1 + n, sig.hashes), nx=True, ex=self.window_s)
                for key in bands:
                    pipe.sadd(key, aid)
                    pipe.expire(key, self.window_s)
            for (aid, _), bands in zip(items, keys):  # reads after every write of the batch
                pipe.get(self.doc_key(aid))
                for key in bands:
                    pipe.smembers(key)
            replies = await pipe.execute()
        reads = replies[sum(1 + 2 * len(b) for b in keys) :]
        own: dict[str, tuple[int, frozenset[int]]] = {}
        hits: dict[str, dict[str, list[str]]] = {}  # article -> candidate -> band keys it was found in
        pos = 0
        for (aid, _), bands in zip(items, keys):
            own[aid] = _unpack(reads[pos])
            found: dict[str, list[str]] = {}
            for key, members in zip(bands, reads[pos + 1 : pos + 1 + len(bands)]):
                for member in members:
                    cid = member.decode() if isinstance(member, bytes) else member
                    if cid != aid:
                        found.setdefault(cid, []).append(key)
            pos += 1 + len(bands)
            hits[aid] = dict(sorted(found.items(), key=lambda kv: -len(kv[1]))[:MAX_CANDIDATES])
        candidates = sorted({cid for found in hits.values() for cid in found})
        if not candidates:
            return out
        blobs = await self.redis.mget([self.doc_key(cid) for cid in candidates])
        docs = {cid: _unpack(blob) for cid, blob in zip(candidates, blobs) if blob}
        stale = {cid: found[cid] for found in hits.values() for cid in found if cid not in docs}
        for aid, found in hits.items():
            seq, mine = own[aid]
            best: tuple[int, str, float] | None = None
            for cid in found:
                if cid not in docs or docs[cid][0] >= seq:
                    continue
                score = containment(mine, docs[cid][1])
                if score >= self.threshold and (best is None or docs[cid][0] < best[0]):
                    best = (docs[cid][0], cid, score)
            if best:
                out[aid] = NearDuplicate(of=best[1], score=round(best[2], 4))
        if stale:  # ids whose doc expired: their buckets outlive them while other articles keep adding
            async with self.redis.pipeline(transaction=False) as pipe:
                for cid, bands in stale.items():
                    for key in bands:
                        pipe.srem(key, cid)
                await pipe.execute()
        return out
