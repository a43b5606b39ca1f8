"""bench/transport.py, bench/storage.py, bench/scaling.py and bench/pipeline.py run end to end with tiny sizes and print their figures.

Only the shape of the output and the exit status are checked, never a speed: the figures are the benchmarks'
business (BENCHMARKS.md), not the tests'.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys

import pytest
import redis

from tests.conftest import ROOT

pytestmark = pytest.mark.e2e

NUMBER = r"[\d,]+(?:\.\d+)?"
UNREACHABLE_PG = "postgresql://postgres@127.0.0.1:1/none"


def bench(script: str, *args: str, timeout: float = 240, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("NEWSFLOW_") and k != "DATABASE_URL"}
    environ.update(env)
    return subprocess.run([sys.executable, str(ROOT / "bench" / script), *args], cwd=ROOT, env=environ,
                          capture_output=True, text=True, timeout=timeout)


def lines_like(output: str, pattern: str) -> list[re.Match[str]]:
    return [m for line in output.splitlines() if (m := re.fullmatch(pattern, line.strip()))]


def schema_exists(url: str, name: str) -> bool:
    import asyncpg

    async def probe() -> bool:
        conn = await asyncpg.connect(url)
        try:
            return bool(await conn.fetchval("SELECT count(*) FROM pg_namespace WHERE nspname = $1", name))
        finally:
            await conn.close()

    return asyncio.run(probe())


def test_storage_prints_rows_per_second_and_the_ratios_then_drops_its_schema(pg_base_url):
    done = bench("storage.py", "--rows", "30", "--single-rows", "5", "--batches", "1,10", "--repeat", "1",
                 DATABASE_URL=pg_base_url)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    for backend, methods in (("postgresql", ("newsflow repository", "newsflow repository, search inline",
                                             "newsflow repository, inline lead", "newsflow index loop, every word",
                                             "asyncpg executemany", "asyncpg copy_records_to_table",
                                             "asyncpg executemany, articles table")),
                             ("sqlite", ("newsflow repository", "newsflow repository, search lead",
                                         "sqlite3 executemany"))):
        for method in methods:
            rows = lines_like(out, rf"{backend}\s+{re.escape(method)}\s+({NUMBER})\s+({NUMBER})")
            assert len(rows) == 1, (backend, method, out)
            assert all(float(v.replace(",", "")) > 0 for v in rows[0].groups())
    for ratio in ("repository/executemany at batch 10 (postgresql)", "repository/copy at batch 10 (postgresql)"):
        assert lines_like(out, rf"ratio {re.escape(ratio)}: {NUMBER} \(search inline: {NUMBER}, inline lead: {NUMBER}\)"), (ratio, out)
    assert lines_like(out, rf"ratio repository/executemany at batch 10 \(sqlite\): {NUMBER} \(search lead: {NUMBER}\)"), out
    assert lines_like(out, rf"deferred search indexing \(postgresql\): the index loop indexes {NUMBER} articles/s; "
                           rf"upsert then index, one after the other: {NUMBER} rows/s \(ratio to executemany {NUMBER}\)"), out
    schema = re.search(r"schema (nfbench_\w+), dropped", out)
    assert schema, out
    assert not schema_exists(pg_base_url, schema.group(1))


def test_storage_without_postgresql_says_so_and_still_measures_sqlite():
    done = bench("storage.py", "--rows", "20", "--single-rows", "3", "--batches", "1,10", "--repeat", "1",
                 "--data", str(ROOT / "no-such-folder"), DATABASE_URL=UNREACHABLE_PG)
    assert done.returncode == 0, done.stderr
    assert "postgresql skipped: no PostgreSQL at 127.0.0.1:1/none" in done.stdout
    assert "from the bundled samples" in done.stdout
    assert lines_like(done.stdout, rf"sqlite\s+newsflow repository\s+{NUMBER}\s+{NUMBER}")
    assert lines_like(done.stdout, rf"ratio repository/executemany at batch 10 \(sqlite\): {NUMBER} \(search lead: {NUMBER}\)")
    assert "(postgresql)" not in done.stdout


def test_transport_prints_both_relays_and_the_ratios(redis_url):
    r = redis.Redis.from_url(redis_url)
    before = set(r.scan_iter(match="nfbench-*"))
    done = bench("transport.py", "--articles", "300", "--repeat", "2", REDIS_URL=redis_url)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    for label in ("bare redis-py relay", "newsflow (pass-through stages)"):
        assert len(lines_like(out, rf"{re.escape(label)}\s+{NUMBER} articles/s\s+CPU per article and stage: .*")) == 2, out
    assert lines_like(out, rf"ratio newsflow/bare: {NUMBER}"), out
    assert lines_like(out, rf"ratio within each round: {NUMBER}, {NUMBER} \(median {NUMBER}\)"), out
    assert set(r.scan_iter(match="nfbench-*")) <= before, "the benchmark leaves no streams behind"


def test_scaling_prints_each_worker_count_and_the_speed_up(redis_url):
    done = bench("scaling.py", "--articles", "12", "--workers", "1,2", "--batch", "3", REDIS_URL=redis_url)
    assert done.returncode == 0, done.stderr + done.stdout
    out = done.stdout
    assert lines_like(out, rf"bare trafilatura \S+ extract\s+{NUMBER} articles/s \({NUMBER} per CPU second\), in this process")
    assert lines_like(out, rf"cleaner clean\(\), no Redis\s+{NUMBER} articles/s .*")
    assert lines_like(out, rf"1 cleaner worker\s+{NUMBER} articles/s")
    assert lines_like(out, rf"2 cleaner workers\s+{NUMBER} articles/s")
    assert lines_like(out, rf"speed-up 2 workers/1 worker: {NUMBER}")
    if "real pages" in out:  # the extraction benchmark is beside the clone: the acceptance ratio is printed
        assert lines_like(out, rf"ratio 1 worker/bare trafilatura: {NUMBER}")


def test_scaling_reports_a_worker_that_cannot_start(redis_url):
    done = bench("scaling.py", "--articles", "4", "--workers", "1", "--batch", "2", REDIS_URL=redis_url,
                 NEWSFLOW_BLOCK_MS="not-a-number")  # the workers' settings refuse it
    assert done.returncode != 0
    assert "worker cleaner-0 exited with" in done.stderr


def test_pipeline_prints_capacity_latency_per_kind_and_peak_rss(redis_url):
    done = bench("pipeline.py", "--articles", "30", "--duration", "2", "--loads", "50,90", REDIS_URL=redis_url)
    assert done.returncode == 0, done.stderr + done.stdout
    out = done.stdout
    assert lines_like(out, rf"capacity: 30 articles in {NUMBER} s: {NUMBER} articles/s")
    for load in ("50%", "90%"):
        text = lines_like(out, rf"{load} \({NUMBER}/s for \d+ s\)\s+plain text\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)")
        assert len(text) == 1, (load, out)
        count, p50, p95, p99 = (int(v) for v in text[0].groups())
        assert count > 0 and p50 <= p95 <= p99
    html = lines_like(out, r"html\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)")
    assert len(html) == 2, out
    assert len(lines_like(out, r"producer's worst lag behind schedule \d+ ms")) == 2
    cpu = lines_like(out, r"CPU: cleaner-0 \d+%, classifier-1 \d+%, storage-2 \d+%; whole machine \d+% of \d+%")
    assert len(cpu) == 3, out  # the capacity run and each load
    assert lines_like(out, r"worker\s+start\s+capacity\s+50%\s+90%")
    for worker in ("cleaner-0", "classifier-1", "storage-2"):
        rss = lines_like(out, rf"{worker}\s+({NUMBER})\s+({NUMBER})\s+({NUMBER})\s+({NUMBER})")
        assert len(rss) == 1, (worker, out)
        assert all(float(v) > 0 for v in rss[0].groups())


def test_pipeline_on_an_unreachable_postgresql_stops_before_starting_workers(redis_url):
    done = bench("pipeline.py", "--articles", "5", "--duration", "1", "--database", "postgresql",
                 REDIS_URL=redis_url, DATABASE_URL=UNREACHABLE_PG, timeout=60)
    assert done.returncode != 0
    assert "no PostgreSQL at 127.0.0.1:1/none" in done.stderr
