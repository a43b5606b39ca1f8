"""A well-formed body is validated straight from its bytes; anything else takes the slow path, which makes the
lenient fixes and writes the reasons, exactly as before."""

from __future__ import annotations

import asyncio
import json

from shared.contract import RawArticle, parse_raw
from shared.settings import Settings
from shared.transport.app import redis_client
from shared.transport.entries import Entry
from shared.transport.runner import StageRunner, StageSpec, each


def _runner(calls: list[object]) -> StageRunner:
    def decode(body: object) -> tuple[RawArticle, list[str]]:
        calls.append(body)
        return parse_raw(body)

    spec = StageSpec("cleaner", "raw", "cleaned", decode=decode, process=each(lambda e, m: m), model=RawArticle)
    return StageRunner(spec, Settings(), redis_client("redis://127.0.0.1:1/0"), "c1")  # never connects here


def _decide(runner: StageRunner, bodies: list[bytes]):
    entries = [Entry(f"{i + 1}-0", {b"body": b}) for i, b in enumerate(bodies)]
    return asyncio.run(runner._decide(entries))


def test_good_bodies_skip_the_slow_decoder():
    calls: list[object] = []
    good = json.dumps({"url": "https://example.org/a", "source": "t", "text": "Some text."}).encode()
    (outcome,) = _decide(_runner(calls), [good])
    assert calls == [] and isinstance(outcome.output, RawArticle) and outcome.output.text == "Some text."


def test_other_bodies_get_the_slow_path_and_its_reasons():
    calls: list[object] = []
    fixable = json.dumps({"url": "https://example.org/a", "source": "t", "text": "x", "published_at": "not a date"})
    outcomes = _decide(_runner(calls), [fixable.encode(), b"[1]", b"{bad json", b"\xff\xfe", b'{"text": 5}'])
    assert len(calls) == 3  # the fixable one, the array and the wrong type: JSON that parses
    by_id = {o.entry.id: o for o in outcomes}  # dead letters are decided first, so the order is not the input's
    kept, *bad = (by_id[f"{i}-0"] for i in range(1, 6))
    assert isinstance(kept.output, RawArticle) and kept.output.published_at is None
    assert [o.dead_letter is not None for o in bad] == [True, True, True, True]
    assert "JSON object" in bad[0].dead_letter and "not valid JSON" in bad[1].dead_letter
    assert "UTF-8" in bad[2].dead_letter and "schema violation" in bad[3].dead_letter


def test_a_body_over_the_limit_is_refused_before_parsing():
    calls: list[object] = []
    runner = _runner(calls)
    runner.settings = Settings(max_body_bytes=1024)
    (outcome,) = _decide(runner, [json.dumps({"url": "https://example.org/a", "text": "x" * 2000}).encode()])
    assert calls == [] and "over the 1,024-byte limit" in outcome.dead_letter

