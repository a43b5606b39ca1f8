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
batch) decide which came first. A batch's writes and reads are one script (INDEX_LUA), or one pipeline for a Redis
user not allowed to run it. The doc key is SET NX: a redelivered article keeps its first sequence number,
finds only earlier articles, and so gets the same answer as the first time, never itself.
Texts with fewer than MIN_SHINGLES immutable bigrams are neither checked nor indexed (too little to compare).
"""

from __future__ import annotations

import hashlib
import re
import struct
import unicodedata
from dataclasses import dataclass
from typing import Any

import numpy as np
import redis.asyncio as aredis
import redis.exceptions as redis_exceptions
from datasketch import MinHash

from shared.logging import get_logger
from shared.transport.entries import as_str

log = get_logger("newsflow.cleaner")

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


def _ends_sentence(text: str, m: re.Match[str]) -> bool:
    """Whether the token `m` closes a sentence, so that the token after it starts one."""
    word, end = m.group(), m.end()
    tail = text[end : end + 4]
    if SENTENCE_END.match(tail) or tail.startswith("\n"):
        return True
    at_end = word.endswith(".") and (end >= len(text) or text[end].isspace())
    return at_end and not _is_abbreviation(word)


def _is_abbreviation(word: str) -> bool:
    """U.S., U.N., Nov.: an inner or single-letter dot, or a short capitalised form; not a sentence end."""
    core = word.rstrip(".")
    return word.endswith(".") and ("." in core or (len(core) <= 4 and core[:1].isupper() and core.lower() in _ABBREV))


_ABBREV = {"jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec", "mr", "mrs", "ms", "dr", "st", "gen", "gov", "sen", "rep", "lt", "col", "no"}


def immutables(text: str) -> list[str]:
    """Names and numbers in order of appearance, lower-cased: the words a spinner leaves alone.

    One pass over the tokens. Most are lower-case words without a digit, never immutables, and are skipped before
    any other work; whether a token starts a sentence is worked out only for capitalised ones. This is most of the
    near-duplicate check's CPU, paid once per article."""
    text = unicodedata.normalize("NFKC", text)
    out: list[str] = []
    prev: re.Match[str] | None = None
    pending: tuple[str, re.Match[str]] | None = None  # a capitalised sentence start, decided by the next token
    for m in TOKEN.finditer(text):
        word = m.group()
        upper = word[0].isupper()
        if pending is not None:
            # It begins a multi-word name when this token is capitalised and does not start a sentence itself.
            if upper and not _ends_sentence(text, pending[1]):
                out.append(pending[0])
            pending = None
        if not upper and (word.isalpha() or not any(map(str.isdigit, word))):
            prev = m
            continue
        stem = word if _is_abbreviation(word) else word.rstrip(".")
        norm = POSSESSIVE.sub("", stem.lower()).rstrip(".")
        if norm and norm not in NOT_IMMUTABLE:
            if not upper or any(map(str.isdigit, stem)) or not (prev is None or _ends_sentence(text, prev)):
                out.append(norm)
            else:
                pending = (norm, m)
        prev = m
    return out


@dataclass(frozen=True)
class Signature:
    shingles: frozenset[str]  # immutable bigrams: the confirmation set
    hashes: frozenset[int]  # the same, hashed to 64 bits (what the index stores)
    bands: tuple[str, ...]  # one LSH bucket name per band

    @property
    def usable(self) -> bool:
        return len(self.shingles) >= MIN_SHINGLES


# MinHash draws its permutations from its fixed seed on every construction (a tenth of a millisecond): drawn once here.
_TEMPLATE = MinHash(num_perm=NUM_PERM)
_PERMUTATIONS, _SCHEME = _TEMPLATE.permutations, _TEMPLATE.scheme


def _h64(s: str) -> int:
    return int.from_bytes(hashlib.blake2b(s.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "big")


def signature(text: str) -> Signature:
    seq = immutables(text)
    bigrams = frozenset(f"{a} {b}" for a, b in zip(seq, seq[1:]))
    features = set(seq) | bigrams
    bands: tuple[str, ...] = ()
    if len(bigrams) >= MIN_SHINGLES:
        mh = MinHash(num_perm=NUM_PERM, permutations=_PERMUTATIONS, scheme=_SCHEME)
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


# A batch's writes, then its reads, in one call (step 2 of the module docstring). As a pipeline that is about 98
# commands an article, and redis-py's work per command and per reply was 1.3 ms of CPU an article in the cleaner,
# as much as the rest of the check; as this script, 0.1 ms.
# KEYS: per article, its doc key, then its band keys. ARGV: window_s, keys per article, then per article its id
# and its packed doc. Returns per article its doc, then the members of each of its bands.
INDEX_LUA = """
local ttl, per = ARGV[1], tonumber(ARGV[2])
local n = (#ARGV - 2) / 2
for i = 1, n do
  local id, base = ARGV[1 + 2 * i], (i - 1) * per
  redis.call('SET', KEYS[base + 1], ARGV[2 + 2 * i], 'NX', 'EX', ttl)
  for k = base + 2, base + per do
    redis.call('SADD', KEYS[k], id)
    redis.call('EXPIRE', KEYS[k], ttl)
  end
end
local out = {}
for i = 1, n do
  local base = (i - 1) * per
  out[#out + 1] = redis.call('GET', KEYS[base + 1])
  for k = base + 2, base + per do
    out[#out + 1] = redis.call('SMEMBERS', KEYS[k])
  end
end
return out
"""


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
        self._script: Any = None  # INDEX_LUA, registered on first use
        # A Redis user whose ACL does not let it run scripts on the dedup keys (deploy/redis/users.acl before they
        # were allowed) gets the same writes and reads as a pipeline.
        self.use_script = True

    def band_key(self, band: int, bucket: str) -> str:
        return f"{self.prefix}:dedup:lsh:{band}:{bucket}"

    def doc_key(self, article_id: str) -> str:
        return f"{self.prefix}:dedup:near:doc:{article_id}"

    @property
    def seq_key(self) -> str:
        return f"{self.prefix}:dedup:near:seq"

    async def _write_then_read(self, ids: list[str], docs: list[bytes], keys: list[list[str]]) -> list:
        """Each article's doc (SET NX) and its id in its bands, then, after every write of the batch, each
        article's doc and its bands' members: [doc, members of band 0, ...] for each article in turn."""
        if self.use_script:
            if self._script is None:
                self._script = self.redis.register_script(INDEX_LUA)
            try:
                return await self._script(
                    keys=[k for aid, bands in zip(ids, keys) for k in (self.doc_key(aid), *bands)],
                    args=[self.window_s, 1 + BANDS, *(v for pair in zip(ids, docs) for v in pair)],
                )
            except redis_exceptions.NoPermissionError as exc:
                self.use_script = False
                log.warning("near_duplicate_script_refused", error=str(exc)[:200],
                            fix="let this Redis user run EVALSHA on the dedup keys (deploy/redis/users.acl)")
        async with self.redis.pipeline(transaction=False) as pipe:
            for aid, doc, bands in zip(ids, docs, keys):
                pipe.set(self.doc_key(aid), doc, nx=True, ex=self.window_s)
                for key in bands:
                    pipe.sadd(key, aid)
                    pipe.expire(key, self.window_s)
            for aid, bands in zip(ids, keys):  # reads after every write of the batch
                pipe.get(self.doc_key(aid))
                for key in bands:
                    pipe.smembers(key)
            replies = await pipe.execute()
        return replies[sum(1 + 2 * len(b) for b in keys) :]

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
        docs = [_pack(last - len(items) + 1 + n, sig.hashes) for n, (_, sig) in enumerate(items)]
        reads = await self._write_then_read([aid for aid, _ in items], docs, keys)
        own: dict[str, tuple[int, frozenset[int]]] = {}
        hits: dict[str, dict[str, list[str]]] = {}  # article -> candidate -> band keys it was found in
        pos = 0
        for (aid, _), bands in zip(items, keys):
            own[aid] = _unpack(reads[pos])
            found: dict[str, list[str]] = {}
            for key, members in zip(bands, reads[pos + 1 : pos + 1 + len(bands)]):
                for member in members:
                    cid = as_str(member)
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
