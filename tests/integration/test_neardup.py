"""The near-duplicate index in a real Redis: shared by replicas, expiring, idempotent, wired into the cleaner."""

from __future__ import annotations

import time

import pytest
import redis.asyncio as aredis

from services.cleaner import app as cleaner
from services.cleaner.dedup import ExactDuplicateIndex
from services.cleaner.neardup import NearDuplicateIndex
from shared.contract import CleanArticle, RawArticle
from shared.transport.entries import Entry
from tests.neardup_eval import STORIES, re_edit, spin, truncate
from tests.unspin_sample import sample, unspin

WINDOW = 3600


@pytest.fixture
async def client(redis_url: str):
    c = aredis.Redis.from_url(redis_url)
    yield c
    await c.aclose()


def index(client: aredis.Redis, prefix: str) -> NearDuplicateIndex:
    return NearDuplicateIndex(client, prefix, window_s=WINDOW)


async def test_two_replicas_share_the_index(client, redis_url, prefix):
    other = aredis.Redis.from_url(redis_url)
    try:
        a, b = index(client, prefix), index(other, prefix)
        story = STORIES[0]
        assert await a.check_and_add([("orig", story.text)]) == {"orig": None}
        found = await b.check_and_add([("spun", spin(story.text)), ("other", STORIES[1].text)])
        assert found["spun"] is not None and found["spun"].of == "orig" and found["spun"].score >= 0.5
        assert found["other"] is None
    finally:
        await other.aclose()


async def test_duplicates_within_one_batch_point_to_the_first(client, prefix):
    story = STORIES[3]
    found = await index(client, prefix).check_and_add([("first", story.text), ("second", re_edit(story)), ("third", truncate(story))])
    assert found["first"] is None
    assert found["second"].of == "first" and found["third"].of == "first"


async def test_keys_expire_after_the_window(client, r, prefix):
    await index(client, prefix).check_and_add([("orig", STORIES[6].text)])
    keys = list(r.scan_iter(match=f"{prefix}:dedup:*", count=1000))
    assert any(b":dedup:lsh:" in k for k in keys) and any(b":dedup:near:doc:" in k for k in keys)
    for key in keys:
        assert 0 < r.ttl(key) <= WINDOW, key


async def test_expired_articles_are_not_matched_and_leave_their_buckets(client, r, prefix):
    idx = index(client, prefix)
    await idx.check_and_add([("old", STORIES[9].text)])
    r.delete(idx.doc_key("old"))  # as when its window has passed
    found = await idx.check_and_add([("new", spin(STORIES[9].text))])
    assert found["new"] is None
    for key in r.scan_iter(match=f"{prefix}:dedup:lsh:*", count=1000):
        assert b"old" not in r.smembers(key)


async def test_redelivery_is_not_a_duplicate_of_itself(client, prefix):
    idx = index(client, prefix)
    story = STORIES[4]
    assert await idx.check_and_add([("a", story.text)]) == {"a": None}
    assert await idx.check_and_add([("a", story.text)]) == {"a": None}
    first = await idx.check_and_add([("b", spin(story.text))])
    await idx.check_and_add([("c", re_edit(story))])
    # b redelivered after c arrived: still a duplicate of a (never of itself, never of the later c)
    again = await idx.check_and_add([("b", spin(story.text))])
    assert first["b"].of == again["b"].of == "a"
    assert await idx.check_and_add([("a", story.text)]) == {"a": None}


async def test_short_texts_are_skipped(client, r, prefix):
    assert await index(client, prefix).check_and_add([("x", "North Korea fired a missile.")]) == {"x": None}
    assert not list(r.scan_iter(match=f"{prefix}:dedup:lsh:*"))


def entry(n: int) -> Entry:
    return Entry(f"{int(time.time() * 1000)}-{n}", {b"body": b"{}"})


async def run_cleaner(client, prefix: str, texts: list[tuple[str, str]]) -> list[CleanArticle]:
    process = cleaner.spec(ExactDuplicateIndex(client, prefix, WINDOW), 5 * 1024 * 1024, index(client, prefix)).process
    outcomes = await process([(entry(n), RawArticle(id=aid, text=text)) for n, (aid, text) in enumerate(texts)])
    return [o.output for o in outcomes]


async def test_the_cleaner_marks_the_spun_sample_a_near_duplicate_of_the_unspun_copy(client, prefix):
    spun = sample()
    if spun is None:
        pytest.skip("shared/samples/wire-ap-2022-11-08-north-korea.txt is not here")
    (original,) = await run_cleaner(client, prefix, [("ap-original", unspin(spun))])
    assert original.duplicate_of is None and original.duplicate_score is None
    spun_out, nk, exact = await run_cleaner(
        client, prefix, [("ap-spun", spun), ("nk-other", STORIES[1].text), ("ap-again", unspin(spun))]
    )
    assert spun_out.duplicate_of == "ap-original" and spun_out.duplicate_score >= 0.5
    assert nk.duplicate_of is None
    assert exact.duplicate_of == "ap-original" and exact.duplicate_score == 1.0
    # redelivery of the original: still not a duplicate of anything
    (again,) = await run_cleaner(client, prefix, [("ap-original", unspin(spun))])
    assert again.duplicate_of is None


async def test_cost_of_the_index_check_per_article(client, prefix):
    idx = index(client, prefix)
    texts = [(f"{s.key}-{v}", t) for s in STORIES for v, t in (("a", s.text), ("b", spin(s.text)))]
    await idx.check_and_add(texts[:4])
    start = time.perf_counter()
    rounds = 10
    for n in range(rounds):
        await idx.check_and_add([(f"{aid}-{n}", text) for aid, text in texts])
    ms = (time.perf_counter() - start) / (rounds * len(texts)) * 1000
    print(f"\nnear-dup signature + Redis check_and_add: {ms:.2f} ms per article in batches of {len(texts)}")


async def test_the_script_and_the_pipeline_give_the_same_answers(client, prefix):
    scripted, piped = index(client, prefix + "-s"), index(client, prefix + "-p")
    piped.use_script = False
    batches = [
        [(f"{s.key}-a", s.text) for s in STORIES[:4]],
        [(f"{s.key}-b", spin(s.text)) for s in STORIES[:6]] + [("short", "Too short.")],
        [(f"{s.key}-c", truncate(s)) for s in STORIES[2:]] + [(f"{STORIES[0].key}-a", STORIES[0].text)],
    ]
    found = []
    for batch in batches:
        found.append(await scripted.check_and_add(batch))
        assert found[-1] == await piped.check_and_add(batch)
    assert scripted.use_script
    assert sum(hit is not None for answers in found for hit in answers.values()) >= 6  # spun and cut copies found


async def test_a_user_not_allowed_the_script_gets_the_pipeline(client, prefix):
    import redis.exceptions

    idx = index(client, prefix)

    async def refused(**kwargs):
        raise redis.exceptions.NoPermissionError("this user has no permissions to access one of the keys")

    idx._script = refused
    story = STORIES[0]
    assert await idx.check_and_add([("orig", story.text)]) == {"orig": None}
    assert not idx.use_script
    found = await idx.check_and_add([("spun", spin(story.text))])
    assert found["spun"] is not None and found["spun"].of == "orig"
