"""The example downstream consumers (examples/python_consumer.py, examples/node-consumer/) as real processes
against the real Redis: every article once, duplicates and bad entries set aside, start points, and a SIGKILL
in the middle of a run followed by a catch-up with nothing lost.

Entries are built with the contract models and written straight to `{prefix}:enriched`, as storage writes them.
The Node example needs `node` and `npm`: `npm ci` installs it into its own folder once (again only when the
lock file or node changes). Without them the Node tests skip, unless NEWSFLOW_REQUIRE_NODE=1 (CI) makes that a
failure.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
import redis

from shared.contract import Dateline, EnrichedArticle, Place, Quality, Topic, dump
from tests.conftest import ROOT
from tests.helpers import wait_until

pytestmark = pytest.mark.e2e

PY_EXAMPLE = ROOT / "examples" / "python_consumer.py"
NODE_DIR = ROOT / "examples" / "node-consumer"
GROUP = "downstream-test"


def enriched(i: int, tag: str = "ex") -> str:
    article = EnrichedArticle(
        id=f"{tag}-{i}",
        url=f"https://news.example/{tag}/{i}",
        source="test-wire",
        title=f"Story {i}: the parliament votes on the budget",
        text=f"PARIS (AFP) — Story {i}. The parliament voted on the budget on Monday.\n\nOfficials gave details.",
        language="en",
        language_confidence=0.99,
        published_at=datetime(2025, 3, 1, 10, 0, tzinfo=timezone.utc),
        dateline=Dateline(city="Paris", country="France", country_code="FR", agency="AFP", raw="PARIS (AFP) —"),
        word_count=16,
        content_hash=hashlib.sha256(f"{tag}-{i}".encode()).hexdigest()[:16],
        topics=[Topic(code="medtop:11000000", label="politics", score=0.91)],
        places=[Place(name="Paris", kind="city", code="FR", count=2, in_dateline=True)],
        keywords=["budget", "parliament"],
        quality=Quality(),
        stored_at=datetime.now(timezone.utc),
    )
    return dump(article)


def publish(r: redis.Redis, stream: str, bodies: list[str | dict[str, str]]) -> list[str]:
    """XADD each body (a `body` string, or the entry's whole fields); returns the entry ids."""
    with r.pipeline(transaction=False) as pipe:
        for b in bodies:
            pipe.xadd(stream, b if isinstance(b, dict) else {"body": b})
        return [i.decode() for i in pipe.execute()]


@pytest.fixture(scope="session")
def node_example() -> Path:
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        reason = "the Node.js example consumer needs node and npm on PATH"
        if os.environ.get("NEWSFLOW_REQUIRE_NODE") == "1":
            pytest.fail(f"{reason} (NEWSFLOW_REQUIRE_NODE=1 is set, so this is not skipped)")
        pytest.skip(reason)
    version = subprocess.run([node, "--version"], capture_output=True, text=True, check=True).stdout.strip()
    digest = hashlib.sha256((NODE_DIR / "package-lock.json").read_bytes() + version.encode()).hexdigest()
    stamp = NODE_DIR / "node_modules" / ".newsflow-npm-ci"
    if not stamp.exists() or stamp.read_text() != digest:
        done = subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--prefer-offline"], cwd=NODE_DIR,
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, f"npm ci failed in {NODE_DIR}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        stamp.write_text(digest)
    return NODE_DIR


@pytest.fixture(params=["python", "node"])
def example(request: pytest.FixtureRequest) -> tuple[list[str], Path]:
    """The command line and working folder of one example consumer."""
    if request.param == "python":
        return [sys.executable, str(PY_EXAMPLE)], ROOT
    folder = request.getfixturevalue("node_example")
    return [shutil.which("node") or "node", "consumer.js"], folder


class Run:
    """One consumer process: its stdout lines collected by a thread, its stderr in a log file."""

    def __init__(self, example: tuple[list[str], Path], env: dict[str, str], log: Path, *args: str) -> None:
        cmd, cwd = example
        self.log = log
        with open(log, "ab") as err:
            self.proc = subprocess.Popen([*cmd, *args], cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=err)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.decode())

    def articles(self) -> list[dict[str, Any]]:
        out = []
        for line in list(self.lines):
            try:
                out.append(json.loads(line))
            except ValueError:
                raise AssertionError(f"not a JSON line on stdout: {line!r}") from None
        return out

    def ids(self) -> list[str]:
        return [a["id"] for a in self.articles()]

    def events(self) -> list[str]:
        return [json.loads(line)["event"] for line in self.log.read_text().splitlines() if line.startswith("{")]

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        self._reader.join(10)
        return rc


@pytest.fixture
def start(redis_url: str, prefix: str, tmp_path: Path, example: tuple[list[str], Path]):
    runs: list[Run] = []

    def _start(consumer: str, *args: str, group: str = GROUP) -> Run:
        env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSFLOW_")}
        env.update(REDIS_URL=redis_url, NEWSFLOW_STREAM_PREFIX=prefix, GROUP=group, CONSUMER=consumer)
        run = Run(example, env, tmp_path / f"{group}-{consumer}-{len(runs)}.log", "--block-ms", "200", *args)
        runs.append(run)
        return run

    yield _start
    for run in runs:
        run.stop(signal.SIGKILL)


def caught_up(r: redis.Redis, stream: str, group: str, pending: int = 0) -> bool:
    """The group has read up to the stream's last entry, and acked all but `pending` entries."""
    groups = {g["name"].decode(): g for g in r.xinfo_groups(stream)}
    if group not in groups:
        return False
    last = r.xinfo_stream(stream)["last-generated-id"]
    return groups[group]["pending"] == pending and groups[group]["last-delivered-id"] == last


def held_by(r: redis.Redis, stream: str, group: str = GROUP) -> dict[str, int]:
    """Unacked entries per consumer of the group."""
    return {c["name"].decode(): c["pending"] for c in r.xinfo_consumers(stream, group) if c["pending"]}


def wait_for(predicate: Any, *runs: Run, what: str) -> None:
    """Wait for the predicate while the consumers are alive; on failure show their logs."""
    def check() -> bool:
        dead = [run for run in runs if run.proc.poll() is not None]
        assert not dead, f"consumer exited early ({dead[0].proc.returncode}):\n{dead[0].log.read_text()[-3000:]}"
        return predicate()

    try:
        wait_until(check, timeout=90, interval=0.05, what=what)
    except AssertionError:
        for run in runs:
            print(f"--- {run.log.name}\n{run.log.read_text()[-3000:]}")
        raise


def wait_caught_up(r: redis.Redis, stream: str, group: str, *runs: Run) -> None:
    wait_for(lambda: caught_up(r, stream, group), *runs, what=f"group {group} to catch up")


def test_every_article_once_bad_entries_set_aside_and_the_seen_set_survives_a_restart(start, r, prefix):
    stream = f"{prefix}:enriched"
    bodies = [enriched(i) for i in range(300)]
    # Every tenth article announced twice in a row (same batch), the first 40 again at the end (later batches).
    entries: list[str | dict[str, str]] = []
    for i, body in enumerate(bodies):
        entries += [body, body] if i % 10 == 0 else [body]
    entries += bodies[:40]
    bad: list[str | dict[str, str]] = [
        "not json {",
        json.dumps(["an", "array"]),
        json.dumps({"title": "an article without an id"}),
        {"payload": "an entry without a body field"},
    ]
    entries[150:150] = bad
    ids = publish(r, stream, entries)
    bad_ids = ids[150:154]

    run = start("c1", "--start", "0", "--batch", "25")
    wait_caught_up(r, stream, GROUP, run)
    assert run.stop() == 0

    got = run.ids()
    assert Counter(got) == Counter(f"ex-{i}" for i in range(300)), "every article exactly once"
    assert [a["entry_id"] for a in run.articles()] == sorted({a["entry_id"] for a in run.articles()}, key=lambda e: tuple(map(int, e.split("-"))))
    first = run.articles()[0]
    assert first["title"].startswith("Story 0") and first["topics"] == ["politics"] and first["places"] == ["Paris"]

    letters = [json.loads(x) for x in r.lrange(f"{stream}:dead:{GROUP}", 0, -1)]
    assert sorted(letter["entry_id"] for letter in letters) == sorted(bad_ids)
    reasons = {letter["entry_id"]: letter["reason"] for letter in letters}
    assert "not JSON" in reasons[bad_ids[0]] and "no body" in reasons[bad_ids[3]]
    assert "string id" in reasons[bad_ids[1]] and "string id" in reasons[bad_ids[2]]
    assert r.zcard(f"{stream}:seen:{GROUP}") == 300
    assert run.events().count("duplicate_skipped") == 30 + 40

    # Announced again later (a replay upstream) and read by a new process under another name: the seen-set is
    # in Redis, so only the five new articles are handled.
    publish(r, stream, bodies + [enriched(i, "new") for i in range(5)])
    run2 = start("c2")
    wait_caught_up(r, stream, GROUP, run2)
    assert run2.stop() == 0
    assert run2.ids() == [f"new-{i}" for i in range(5)]


def test_start_points_all_retained_only_new_or_after_an_entry(start, r, prefix):
    stream = f"{prefix}:enriched"
    old = publish(r, stream, [enriched(i, "old") for i in range(20)])
    runs = {
        "0": start("c", "--start", "0", group="from-zero"),
        "$": start("c", "--start", "$", group="only-new"),
        old[9]: start("c", "--start", old[9], group="after-tenth"),
    }
    wait_until(lambda: {"from-zero", "only-new", "after-tenth"} <= {g["name"].decode() for g in r.xinfo_groups(stream)},
               timeout=60, what="the three groups to be created")
    publish(r, stream, [enriched(i, "fresh") for i in range(5)])
    for group in ("from-zero", "only-new", "after-tenth"):
        wait_caught_up(r, stream, group, *runs.values())
    for run in runs.values():
        assert run.stop() == 0
    fresh = [f"fresh-{i}" for i in range(5)]
    assert runs["0"].ids() == [f"old-{i}" for i in range(20)] + fresh
    assert runs["$"].ids() == fresh
    assert runs[old[9]].ids() == [f"old-{i}" for i in range(10, 20)] + fresh


def test_sigkilled_mid_run_then_restarted_catches_up_with_nothing_lost(start, r, prefix):
    stream = f"{prefix}:enriched"
    publish(r, stream, [enriched(i) for i in range(2000)])
    run1 = start("c1", "--start", "0", "--batch", "20")
    wait_until(lambda: len(run1.lines) >= 100 or run1.proc.poll() is not None, timeout=60, interval=0.01,
               what="the consumer to handle 100 articles")
    run1.stop(signal.SIGKILL)
    before = run1.ids()

    # The outage: more articles are published while the consumer is down.
    publish(r, stream, [enriched(i) for i in range(2000, 3000)])
    # What a crash leaves behind, made certain: entries this consumer name read and never acked, and entries
    # held by a consumer of another name that died (only XAUTOCLAIM gets those back).
    own = [e[0].decode() for e in r.xreadgroup(GROUP, "c1", {stream: ">"}, count=25)[0][1]]
    ghost = [e[0].decode() for e in r.xreadgroup(GROUP, "ghost", {stream: ">"}, count=25)[0][1]]

    # Restarted under its own name, with reclaiming out of reach (an hour): its own pending entries come back
    # through the re-read of its pending list alone, and the ghost's stay where they are.
    run2 = start("c1", "--claim-idle-ms", "3600000")
    wait_for(lambda: held_by(r, stream) == {"ghost": len(ghost)} and caught_up(r, stream, GROUP, pending=len(ghost)),
             run2, what="the restarted consumer to catch up")
    assert run2.stop() == 0
    # A second consumer of the group takes over the dead ghost's entries with XAUTOCLAIM.
    run3 = start("c2", "--claim-idle-ms", "1000")
    wait_caught_up(r, stream, GROUP, run3)
    assert run3.stop() == 0
    after = run2.ids()
    print(f"killed after {len(before)} articles; the restart handled {len(after)}, the ghost's taker {len(run3.ids())}")

    everything = before + after + run3.ids()
    assert set(everything) == {f"ex-{i}" for i in range(3000)}, "nothing lost"
    # At least once: only the article between its handling and its ack at the moment of the kill can repeat.
    repeated = [i for i, n in Counter(everything).items() if n > 1]
    assert len(repeated) <= 1 and set(repeated) <= set(before), repeated
    assert set(own) <= {a["entry_id"] for a in run2.articles()}
    assert sorted(a["entry_id"] for a in run3.articles()) == sorted(ghost)
    assert "pending_reread" in run2.events() and "reclaimed" in run3.events()
    assert held_by(r, stream) == {}
