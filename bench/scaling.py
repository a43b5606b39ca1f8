"""The CPU-heavy stage with 1 and 2 workers: `newsflow worker cleaner` processes in one group, on real pages.

    python bench/scaling.py [--articles 724] [--workers 1,2] [--data PATH]

The articles are the 181 real news pages of the extraction benchmark (../shared/benchdata/article-extraction,
or --data), cycled under new ids up to --articles (a repeated page is an exact duplicate of its first copy:
marked, not dropped, and spared the near-duplicate check), or the bundled samples in services/samples when the
benchmark is absent. For each worker count, a fresh stream prefix holding the articles, and that many
`newsflow worker cleaner` processes (NEWSFLOW_METRICS_PORT=0) joined to one group positioned after them; once
every worker has started, the group is moved back to the first article and the clock runs until the last article
is out (cleaned or dead-lettered), so neither start-up nor pushing the articles is counted. Printed: articles/s
per worker count, the workers' articles per CPU second (their user + system time), and the speed-up over one
worker.

Baselines of the same run, in this process on one core, on the same articles, each warmed up on one page first:
bare `trafilatura.extract` (the cleaner's extraction library with its default settings) and the cleaner's own
`clean()` without Redis, printed in wall-clock and in CPU time. Bare trafilatura runs again after the workers,
and the acceptance ratio (1 worker / bare trafilatura) is taken against the mean of its two passes, in wall-clock
and per CPU second: on a shared machine the load changes during the run, and CPU time is what it disturbs least.
The Redis server's CPU is in neither. Uses REDIS_URL, or an embedded Redis in a temp folder.
"""

from __future__ import annotations

import argparse
import gzip
import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import redis  # noqa: E402

from shared.settings import Settings  # noqa: E402

DEFAULT_DATA = ROOT.parent / "shared" / "benchdata" / "article-extraction"
SAMPLES = ROOT / "services" / "samples"


# -- helpers shared with bench/pipeline.py ----------------------------------------------------------

def load_pages(data: Path) -> list[dict[str, Any]]:
    """The benchmark's pages as raw articles ({"html", "url"}), in a fixed order; [] when absent."""
    if not (data / "ground-truth.json").is_file():
        return []
    truth = json.loads((data / "ground-truth.json").read_text(encoding="utf-8"))
    return [{"html": gzip.decompress((data / "html" / f"{pid}.html.gz").read_bytes()).decode("utf-8"),
             "url": truth[pid].get("url")} for pid in sorted(truth)]


def bundled_samples() -> list[dict[str, Any]]:
    from services.fetcher.files import articles_from_file, iter_paths

    return [{k: v for k, v in a.items() if k != "id"} for p in iter_paths([str(SAMPLES)]) for a in articles_from_file(p)]


@contextmanager
def bench_redis() -> Iterator[str]:
    """REDIS_URL, or an embedded Redis in a temp folder (stopped afterwards)."""
    url = os.environ.get("REDIS_URL")
    if url:
        yield url
        return
    from shared import embedded

    with tempfile.TemporaryDirectory(prefix="newsflow-bench-redis-") as folder:
        url = embedded.ensure_running(folder, persistent=False)
        try:
            yield url
        finally:
            embedded.stop(folder)


def drop_prefix(r: redis.Redis, prefix: str) -> None:
    keys = list(r.scan_iter(match=f"{prefix}:*", count=1000))
    for i in range(0, len(keys), 500):
        r.delete(*keys[i : i + 500])


class Workers:
    """`newsflow worker STAGE` processes with their logs in `logdir`; stopped with SIGTERM (then SIGKILL)."""

    def __init__(self, url: str, prefix: str, logdir: Path, **extra: str) -> None:
        self.env = dict(os.environ)  # NEWSFLOW_* settings of the caller pass through (e.g. NEWSFLOW_BATCH_SIZE)
        self.env.update(REDIS_URL=url, NEWSFLOW_STREAM_PREFIX=prefix, NEWSFLOW_DATA_DIR=str(logdir),
                        NEWSFLOW_METRICS_PORT="0", LOG_FORMAT="json", LOG_LEVEL="INFO",
                        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])), **extra)
        self.logdir = logdir
        self.procs: list[tuple[str, subprocess.Popen[bytes]]] = []

    def start(self, stage: str) -> subprocess.Popen[bytes]:
        name = f"{stage}-{len(self.procs)}"
        with open(self.logdir / f"{name}.log", "ab") as log:
            proc = subprocess.Popen([sys.executable, "-m", "services.cli", "worker", stage], cwd=ROOT,
                                    env={**self.env, "NEWSFLOW_CONSUMER": name}, stdout=log, stderr=log)
        self.procs.append((name, proc))
        return proc

    def check(self) -> None:
        for name, proc in self.procs:
            if proc.poll() is not None:
                log = (self.logdir / f"{name}.log").read_text(errors="replace")[-3000:]
                raise SystemExit(f"worker {name} exited with {proc.returncode}:\n{log}")

    def wait_started(self, timeout: float = 120) -> None:
        """Until every worker has logged `worker_started`: warmed up, its subscriber reading. (A consumer shows in
        the group only once it has read an entry, so the group cannot tell.)"""
        deadline = time.monotonic() + timeout
        while not all('"worker_started"' in (self.logdir / f"{name}.log").read_text(errors="replace")
                      for name, _ in self.procs):
            self.check()
            if time.monotonic() > deadline:
                raise SystemExit(f"gave up waiting for the workers to start; logs in {self.logdir}")
            time.sleep(0.05)

    def stop(self, timeout: float = 30) -> None:
        for _, proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for _, proc in self.procs:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def push(r: redis.Redis, stream: str, bodies: list[str]) -> list[bytes]:
    """XADD in pipelines of 100; the entry ids."""
    ids: list[bytes] = []
    for start in range(0, len(bodies), 100):
        with r.pipeline(transaction=False) as pipe:
            for body in bodies[start : start + 100]:
                pipe.xadd(stream, {"body": body})
            ids.extend(pipe.execute())
    return ids


def wait_count(r: redis.Redis, streams: list[str], n: int, check: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while sum(r.xlen(s) for s in streams) < n:
        check()
        if time.monotonic() > deadline:
            raise SystemExit(f"gave up: {sum(r.xlen(s) for s in streams)}/{n} entries on {', '.join(streams)}")
        time.sleep(0.01)


# -- this benchmark ---------------------------------------------------------------------------------

def articles(pages: list[dict[str, Any]], n: int, tag: str) -> list[str]:
    return [json.dumps({**pages[i % len(pages)], "id": f"{tag}-{i}", "source": "bench"}) for i in range(n)]


BARE, CLEAN = "bare", "clean"


def baselines(pages: list[dict[str, Any]], n: int, names: tuple[str, ...] = (BARE, CLEAN)) -> dict[str, tuple[float, float]]:
    """(wall, cpu) seconds for the in-process baselines `names` (BARE, CLEAN) over the same `n` articles, each
    warmed up first as a worker is before it reads: trafilatura's first call loads what it needs (about 0.1 s),
    and the cleaner's warm_up pays its own one-time costs (about a second)."""
    import trafilatura

    from services.cleaner.transform import clean, warm_up
    from shared.contract import RawArticle
    from shared.errors import PermanentError

    logging.getLogger("trafilatura").setLevel(logging.ERROR)
    raws = [RawArticle.model_validate(pages[i % len(pages)]) for i in range(n)]

    def cleaner(raw: RawArticle, i: int) -> None:
        try:
            clean(raw, article_id=f"b{i}")
        except PermanentError:
            pass

    def bare(raw: RawArticle, i: int) -> None:
        if raw.html:
            trafilatura.extract(raw.html)

    out = {}
    for name in names:
        fn = {BARE: bare, CLEAN: cleaner}[name]
        if name == CLEAN:
            warm_up()
        else:
            fn(raws[0], -1)
        wall, cpu = time.perf_counter(), time.process_time()
        for i, raw in enumerate(raws):
            fn(raw, i)
        out[name] = (time.perf_counter() - wall, time.process_time() - cpu)
    return out


def cpu_seconds(procs: list[subprocess.Popen[bytes]]) -> float:
    """User + system CPU seconds the processes have used so far."""
    import psutil

    return sum(sum(psutil.Process(p.pid).cpu_times()[:2]) for p in procs)


def run_workers(url: str, bodies_for: Any, n: int, count: int, logdir: Path, **extra: str) -> tuple[float, float]:
    """Seconds from the release of the `n` articles to the last of them out of `count` cleaner workers, and the
    CPU seconds the workers used in that time.

    The articles are in the stream before the clock starts, behind the group's position ($), and released by
    moving the group back to 0: pushing 130 MB while the clock runs took a third of a second of the machine's
    two cores from the workers. A worker blocked on its read sees them at its next poll (NEWSFLOW_BLOCK_MS)."""
    r = redis.Redis.from_url(url)
    prefix = f"nfbench-{uuid.uuid4().hex[:8]}"
    raw, group = f"{prefix}:raw", f"{prefix}:cleaner"
    push(r, raw, bodies_for(prefix))
    r.xgroup_create(raw, group, id="$", mkstream=True)
    workers = Workers(url, prefix, logdir, **extra)
    try:
        for _ in range(count):
            workers.start("cleaner")
        workers.wait_started()
        procs = [proc for _, proc in workers.procs]
        start, cpu = time.perf_counter(), cpu_seconds(procs)
        r.xgroup_setid(raw, group, id="0")
        wait_count(r, [f"{prefix}:cleaned", f"{prefix}:dlq"], n, workers.check, timeout=max(120, n))
        return time.perf_counter() - start, cpu_seconds(procs) - cpu
    finally:
        workers.stop()
        drop_prefix(r, prefix)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--articles", type=int, default=724, help="articles per run (default 724: each page 4 times)")
    parser.add_argument("--workers", default="1,2", help="worker counts, comma-separated (default 1,2)")
    parser.add_argument("--batch", type=int, help="NEWSFLOW_BATCH_SIZE for the workers (default: the setting's)")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help=f"benchmark folder (default {DEFAULT_DATA})")
    args = parser.parse_args(argv)
    counts = [int(c) for c in args.workers.split(",")]
    pages = load_pages(args.data)
    origin = f"{len(pages)} real pages from {args.data}"
    if not pages:
        pages = bundled_samples()
        origin = f"the {len(pages)} bundled samples in {SAMPLES} (no benchmark at {args.data})"
    n = args.articles
    size = sum(len(json.dumps(pages[i % len(pages)])) for i in range(n)) / n / 1024

    with bench_redis() as url, tempfile.TemporaryDirectory(prefix="newsflow-bench-") as folder:
        r = redis.Redis.from_url(url)
        print(f"scaling benchmark: the cleaner on {n} articles cycled from {origin}, {size:.0f} KB each on average; "
              f"batch {args.batch or Settings().batch_size}, redis {r.info()['redis_version']}, {os.cpu_count()} cores")
        import trafilatura

        labels = {BARE: f"bare trafilatura {trafilatura.__version__} extract", CLEAN: "cleaner clean(), no Redis"}
        base = baselines(pages, n)
        for name, (wall, cpu) in base.items():
            print(f"  {labels[name]:<36} {n / wall:8.1f} articles/s ({n / cpu:.1f} per CPU second), in this process")
        results, cpu_rates = {}, {}
        for count in counts:
            extra = {"NEWSFLOW_BATCH_SIZE": str(args.batch)} if args.batch else {}
            seconds, cpu = run_workers(url, lambda prefix: articles(pages, n, prefix), n, count, Path(folder), **extra)
            results[count], cpu_rates[count] = n / seconds, n / cpu
            label = f"{count} cleaner worker{'s' if count > 1 else ''}"
            print(f"  {label:<36} {results[count]:8.1f} articles/s")
        print("  per CPU second of the workers: " + ", ".join(f"{c} {'workers' if c > 1 else 'worker'} {cpu_rates[c]:.1f}" for c in counts))
        if 1 in results and all(p.get("html") for p in pages):  # bare trafilatura compares only on pages
            # Bare trafilatura again, after the workers: on a shared machine the load changes over the run, and the
            # ratio compares the worker with the mean of a pass before it and a pass after it.
            again = baselines(pages, n, (BARE,))[BARE]
            print(f"  {labels[BARE] + ' again':<36} {n / again[0]:8.1f} articles/s ({n / again[1]:.1f} per CPU second), in this process")
            bare_wall, bare_cpu = (base[BARE][0] + again[0]) / 2, (base[BARE][1] + again[1]) / 2
            print(f"  ratio 1 worker/bare trafilatura: {results[1] / (n / bare_wall):.2f}")
            print(f"  ratio 1 worker/bare trafilatura per CPU second: {cpu_rates[1] / (n / bare_cpu):.2f}")
        if 1 in results:
            for count in counts:
                if count != 1:
                    print(f"  speed-up {count} workers/1 worker: {results[count] / results[1]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
