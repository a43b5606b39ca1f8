"""The `newsflow` command as a user runs it: demo on embedded defaults, ingest, status, tail and dlq."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, worker_env
from tests.helpers import Workers, read_bodies, wait_until

pytestmark = pytest.mark.e2e
SAMPLE = ROOT.parent / "shared" / "samples" / "wire-ap-2022-11-08-north-korea.txt"

WIRE = """date 2024-02-19
KYIV, Ukraine (AP) — Ukraine's foreign minister said on Monday that Russia had launched dozens of drones at the port of Odesa overnight, and urged allies in Europe and the United States to speed up deliveries of air defence systems.

Officials in Kyiv said the attack damaged grain warehouses. The Kremlin did not comment. The foreign minister was speaking before talks with NATO officials in Brussels.

Copyright 2024 The Associated Press. All rights reserved.
"""


def run_cli(args: list[str], env: dict[str, str], timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "services.cli", *args], env=env, capture_output=True, text=True, timeout=timeout, cwd=ROOT)


def bare_env(tmp_path: Path) -> dict[str, str]:
    """No REDIS_URL, no DATABASE_URL: what a fresh machine has."""
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL") and not k.startswith("NEWSFLOW_")}
    env.update(NEWSFLOW_DATA_DIR=str(tmp_path / "data"), PYTHONPATH=str(ROOT), COLUMNS="200")
    return env


def test_demo_on_embedded_defaults_shows_the_bundled_samples(tmp_path):
    out = run_cli(["demo"], bare_env(tmp_path))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "all 5 article(s) enriched and stored" in out.stdout
    for words in ("Storm floods streets in Lisbon", "Late penalty wins", "Geneva", "Frankfurt"):
        assert words in out.stdout, words


def test_demo_on_a_wire_story_shows_title_dateline_and_places(tmp_path):
    story = tmp_path / "kyiv.txt"
    story.write_text(WIRE)
    out = run_cli(["demo", str(story)], bare_env(tmp_path))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Kyiv, Ukraine (AP)" in out.stdout
    assert "Ukraine (UA)" in out.stdout and "Russia (RU)" in out.stdout


@pytest.mark.skipif(not SAMPLE.exists(), reason="the shared sample is not beside the project")
def test_demo_on_the_shared_spun_wire_sample(tmp_path):
    out = run_cli(["demo", str(SAMPLE)], bare_env(tmp_path))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Seoul, South Korea (AP)" in out.stdout
    assert "North Korea (KP)" in out.stdout


def test_ingest_status_tail_and_dlq_commands(redis_url, prefix, r, tmp_path):
    env = worker_env(redis_url, prefix, f"sqlite:///{tmp_path / 'cli.db'}", tmp_path, NEWSFLOW_CLAIM_IDLE_MS="1500")
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "kyiv.txt").write_text(WIRE)
    (folder / "batch.jsonl").write_text(json.dumps({"id": "j1", "text": "PARIS (AFP) -- The French government said on Monday it would raise the minimum wage."}) + "\n" + json.dumps({"id": "bad", "title": "no text"}) + "\n")
    out = run_cli(["ingest", str(folder)], env)
    assert out.returncode == 0 and "pushed 3 article(s)" in out.stdout, out.stderr
    w = Workers(env, tmp_path)
    try:
        for stage in ("cleaner", "classifier", "storage"):
            w.start(stage)
        wait_until(lambda: len(read_bodies(r, f"{prefix}:enriched")) >= 2, timeout=120, what="two articles enriched")
        wait_until(lambda: r.xlen(f"{prefix}:dlq") >= 1, timeout=60, what="one dead letter")
        status = run_cli(["status"], env)
        assert status.returncode == 0 and "pending" in status.stdout
        info = json.loads(run_cli(["status", "--json"], env).stdout)["streams"]
        assert info[f"{prefix}:raw"]["length"] == 3 and info[f"{prefix}:dlq"]["length"] == 1
        assert info[f"{prefix}:raw"]["groups"][0]["group"] == f"{prefix}:cleaner"
        tail = run_cli(["tail", "--from-start", "--json", "--count", "2"], env, timeout=60)
        assert tail.returncode == 0
        assert {json.loads(line)["id"] for line in tail.stdout.splitlines()} >= {"j1"}
        listed = run_cli(["dlq", "list"], env)
        assert "cleaner" in listed.stdout and "one of 'html' or 'text'" in listed.stdout
        letter_id = listed.stdout.split()[0]
        shown = json.loads(run_cli(["dlq", "show", letter_id], env).stdout)
        assert json.loads(shown["original"]["body"]) == {"id": "bad", "title": "no text", "source": "file"}
        assert "replayed 1" in run_cli(["dlq", "replay", "--id", letter_id], env).stdout
        wait_until(lambda: r.xlen(f"{prefix}:dlq") >= 1, timeout=60, what="the replayed letter to fail again")
        assert "purged 1" in run_cli(["dlq", "purge"], env).stdout
    finally:
        w.stop()


def test_up_runs_every_stage_restarts_a_dead_one_and_stops_on_sigterm(redis_url, prefix, r, tmp_path):
    import signal

    import psutil

    env = worker_env(redis_url, prefix, f"sqlite:///{tmp_path / 'up.db'}", tmp_path)
    up = subprocess.Popen([sys.executable, "-m", "services.cli", "up"], env=env, cwd=ROOT,
                          stdout=open(tmp_path / "up.log", "wb"), stderr=subprocess.STDOUT)
    try:
        def children() -> list[psutil.Process]:
            out = []
            for c in psutil.Process(up.pid).children():
                try:
                    if "worker" in c.cmdline():
                        out.append(c)
                except (psutil.ZombieProcess, psutil.NoSuchProcess):
                    pass  # a killed worker `up` has not reaped yet
            return out

        wait_until(lambda: len(children()) == 3, timeout=60, what="three workers")
        push_cleaner = [c for c in children() if "cleaner" in c.cmdline()][0]
        push_cleaner.kill()
        wait_until(lambda: len(children()) == 3 and push_cleaner.pid not in {c.pid for c in children()}, timeout=60, what="the cleaner restarted")
        r.xadd(f"{prefix}:raw", {"body": json.dumps({"id": "up-1", "text": WIRE})})
        wait_until(lambda: r.xlen(f"{prefix}:enriched") >= 1, timeout=120, what="an article through `up`")
        pids = [c.pid for c in children()]
        up.send_signal(signal.SIGTERM)
        assert up.wait(60) == 0
        assert not [p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
    finally:
        if up.poll() is None:
            up.kill()


def test_a_replayed_dead_letter_flows_to_enriched_once_the_cause_is_fixed(redis_url, prefix, r, tmp_path):
    env = worker_env(redis_url, prefix, f"sqlite:///{tmp_path / 'replay.db'}", tmp_path)
    w = Workers(env, tmp_path)
    try:
        cleaner = w.start("cleaner", "cleaner-small-limit", NEWSFLOW_MAX_BODY_BYTES="2048")
        w.start("classifier")
        w.start("storage")
        long_story = {"id": "long-1", "text": WIRE * 5}  # over the 2 KiB limit this deployment was given
        r.xadd(f"{prefix}:raw", {"body": json.dumps(long_story)})
        wait_until(lambda: r.xlen(f"{prefix}:dlq") == 1, timeout=60, what="the oversized article dead-lettered")
        # The fix: redeploy the cleaner with a sensible limit, then replay.
        cleaner.send_signal(signal.SIGTERM)
        cleaner.wait(30)
        w.start("cleaner", "cleaner-fixed")
        out = run_cli(["dlq", "replay", "--all", "--stage", "cleaner"], env)
        assert "replayed 1" in out.stdout, out.stderr
        wait_until(lambda: [b["id"] for b in read_bodies(r, f"{prefix}:enriched")] == ["long-1"], timeout=60, what="the replayed article enriched")
        assert r.xlen(f"{prefix}:dlq") == 0
    finally:
        w.stop()
