"""The whole pipeline on realistic mixed input: capacity, then end-to-end latency under open-loop load, and memory.

    python bench/pipeline.py [--articles 2000] [--duration 30] [--loads 50,90] [--html-share 0.5]
                             [--cleaners 1] [--classifiers 1] [--database sqlite|postgresql]

Input: real news pages (the 181 of ../shared/benchdata/article-extraction, or --data; the bundled HTML sample when
absent) and plain wire copy: the bundled sample texts in services/samples (and the shared AP story when present),
cycled under new ids and mixed in a fixed random order, --html-share of them pages. A repeated text or page is an
exact duplicate of its first copy: the cleaner marks it (it is stored and announced like any article) and spares
it the near-duplicate check, about 2 ms an article for distinct stories. (Copies altered by a sentence each would
all be near duplicates of five stories, whose shared index buckets grow with every copy: a worst case, not mixed
input.) The cleaner, classifier and storage run as separate `newsflow worker` processes (NEWSFLOW_METRICS_PORT=0),
on SQLite in a temp folder, or with --database postgresql on DATABASE_URL (else the local test database) in a
fresh schema dropped at the end. Uses REDIS_URL, or an embedded Redis in a temp folder.

1. Capacity: with the workers started, --articles articles are pushed at once and the clock runs from the first
   push to the last article out of storage (enriched or dead-lettered): sustained articles/s.
2. Open-loop load at each of --loads percent of that capacity for --duration seconds: a paced producer adds one
   article every 1/rate seconds whatever the pipeline does (it never waits for the pipeline, so a slow pipeline
   shows as latency, not as a lower rate). End-to-end latency per article is the time its enriched entry was added
   minus the time its raw entry was added, both read from the stream entry ids (Redis's clock, milliseconds);
   p50/p95/p99 printed for plain-text and HTML articles apart. The producer's worst lag behind its schedule is
   printed too: when it is not small, the load was not what it says.
3. Memory: every worker's RSS (with any child processes) sampled with psutil every 0.2 s through all phases;
   printed at start (warmed up, idle) and at its peak in each phase, so growth from phase to phase shows.

After each phase, the CPU each worker used (a share of one core) and the whole machine's (of all its cores): on a
shared machine, other work shows there, and a stage near 100% is the bottleneck.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import random
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import psutil  # noqa: E402
import redis  # noqa: E402

from bench.scaling import DEFAULT_DATA, SAMPLES, Workers, bench_redis, drop_prefix, load_pages, push  # noqa: E402

AP_SAMPLE = ROOT.parent / "shared" / "samples" / "wire-ap-2022-11-08-north-korea.txt"


# -- input --------------------------------------------------------------------------------------------

def wire_templates() -> list[dict[str, Any]]:
    """Plain-text articles from the bundled samples (and the shared AP story)."""
    from services.fetcher.files import articles_from_file, iter_paths

    paths = [str(SAMPLES)] + ([str(AP_SAMPLE)] if AP_SAMPLE.is_file() else [])
    found = [a for p in iter_paths(paths) for a in articles_from_file(p, "bench") if a.get("text")]
    return [{k: v for k, v in a.items() if k in ("text", "title", "source", "published_at")} for a in found]


def html_templates(data: Path) -> list[dict[str, Any]]:
    pages = load_pages(data)
    if pages:
        return pages
    from services.fetcher.files import articles_from_file

    return [{"html": a["html"]} for p in sorted(SAMPLES.glob("*.htm*")) for a in articles_from_file(p, "bench")]


@dataclass
class Input:
    wire: list[dict[str, Any]]
    pages: list[dict[str, Any]]
    html_share: float
    rng: random.Random = field(default_factory=lambda: random.Random(20250301))
    made: int = 0

    def bodies(self, n: int, tag: str) -> list[tuple[str, str]]:
        """`n` (kind, body JSON) pairs, kind "text" or "html", ids `tag-kind-k`."""
        out = []
        for _ in range(n):
            k = self.made
            self.made += 1
            if self.rng.random() < self.html_share:
                item = {**self.pages[k % len(self.pages)], "source": "bench-web"}
                kind = "html"
            else:
                item = dict(self.wire[k % len(self.wire)])
                kind = "text"
            item.update(id=f"{tag}-{kind}-{k}", url=item.get("url") or f"https://bench.example/{tag}/{k}")
            out.append((kind, json.dumps(item)))
        return out


# -- measurement --------------------------------------------------------------------------------------

class RssSampler(threading.Thread):
    """RSS (the process and its children) per worker, sampled every `interval` seconds: at start, and the peak of
    each phase (`phase()` closes one)."""

    def __init__(self, procs: dict[str, int], interval: float = 0.2) -> None:
        super().__init__(daemon=True)
        self.procs = {name: psutil.Process(pid) for name, pid in procs.items()}
        self.interval = interval
        self.first: dict[str, int] = {}
        self.peak: dict[str, int] = {name: 0 for name in procs}
        self.phases: list[tuple[str, dict[str, int]]] = []
        self.lock = threading.Lock()
        self.done = threading.Event()

    def sample(self) -> None:
        for name, proc in self.procs.items():
            try:
                rss = proc.memory_info().rss + sum(c.memory_info().rss for c in proc.children(recursive=True))
            except psutil.Error:
                continue  # gone: the worker check reports it
            with self.lock:
                self.first.setdefault(name, rss)
                self.peak[name] = max(self.peak[name], rss)

    def phase(self, label: str) -> None:
        self.sample()
        with self.lock:
            self.phases.append((label, dict(self.peak)))
            self.peak = {name: 0 for name in self.procs}

    def run(self) -> None:
        while not self.done.wait(self.interval):
            self.sample()


class CpuUse:
    """CPU used by each worker (with children) and by the whole machine between `start()` and `line()`."""

    def __init__(self, procs: dict[str, int]) -> None:
        self.procs = {name: psutil.Process(pid) for name, pid in procs.items()}

    def _cpu(self, proc: psutil.Process) -> float:
        try:
            return sum(sum(p.cpu_times()[:2]) for p in [proc, *proc.children(recursive=True)])
        except psutil.Error:
            return 0.0

    def start(self) -> None:
        psutil.cpu_percent(None)
        self.at = time.perf_counter()
        self.before = {name: self._cpu(p) for name, p in self.procs.items()}

    def line(self) -> str:
        machine = psutil.cpu_percent(None) * (psutil.cpu_count() or 1)
        wall = time.perf_counter() - self.at
        used = ", ".join(f"{name} {(self._cpu(p) - self.before[name]) / wall:.0%}" for name, p in self.procs.items())
        return f"CPU: {used}; whole machine {machine:.0f}% of {100 * (psutil.cpu_count() or 1)}%"


def entry_ms(entry_id: bytes | str) -> int:
    return int((entry_id.decode() if isinstance(entry_id, bytes) else entry_id).split("-")[0])


def out_count(r: redis.Redis, prefix: str) -> int:
    return int(r.xlen(f"{prefix}:enriched")) + int(r.xlen(f"{prefix}:dlq"))


def wait_out(r: redis.Redis, prefix: str, target: int, workers: Workers, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while out_count(r, prefix) < target:
        workers.check()
        if time.monotonic() > deadline:
            raise SystemExit(f"gave up: {out_count(r, prefix)}/{target} articles out of storage after {timeout:.0f} s")
        time.sleep(0.01)


def entry_times(r: redis.Redis, prefix: str, after: str, stream: str = "enriched") -> dict[str, int]:
    """Article id -> time (ms) its entry on `stream` was added, for entries after id `after`."""
    out: dict[str, int] = {}
    start = f"({after}" if after != "-" else "-"
    while True:
        batch = r.xrange(f"{prefix}:{stream}", min=start, count=1000)
        if not batch:
            return out
        for entry_id, fields in batch:
            out.setdefault(json.loads(fields[b"body"])["id"], entry_ms(entry_id))
        start = f"({batch[-1][0].decode()}"


def tail_line(r: redis.Redis, prefix: str, after: dict[str, str], sent: dict[str, tuple[str, int]],
              arrived: dict[str, int]) -> str:
    """Where the slowest 5% of plain-text articles spent their time: the median of each hop between the times
    their entries were added to raw, cleaned, classified and enriched."""
    cleaned = entry_times(r, prefix, after["cleaned"], "cleaned")
    classified = entry_times(r, prefix, after["classified"], "classified")
    text = sorted((arrived[i] - t, i) for i, (k, t) in sent.items() if k == "text" and i in arrived)
    tail = [i for _, i in text[int(len(text) * 0.95):] if i in cleaned and i in classified]
    if not tail:
        return "plain text, slowest 5%: -"
    hops = [("cleaner", [cleaned[i] - sent[i][1] for i in tail]),
            ("classifier", [classified[i] - cleaned[i] for i in tail]),
            ("storage", [arrived[i] - classified[i] for i in tail])]
    return "plain text, slowest 5%, median ms per stage: " + ", ".join(
        f"{name} {percentile(v, 50):.0f}" for name, v in hops)


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def last_id(r: redis.Redis, stream: str) -> str:
    entries = r.xrevrange(stream, count=1)
    return entries[0][0].decode() if entries else "-"


def open_loop(r: redis.Redis, prefix: str, bodies: list[tuple[str, str]], rate: float) -> tuple[dict[str, tuple[str, int]], float]:
    """Add one body every 1/rate s on a fixed schedule; {article id: (kind, raw entry ms)} and the worst lag (s)."""
    sent: dict[str, tuple[str, int]] = {}
    worst = 0.0
    start = time.perf_counter()
    for k, (kind, body) in enumerate(bodies):
        due = start + k / rate
        now = time.perf_counter()
        if due > now:
            time.sleep(due - now)
        else:
            worst = max(worst, now - due)
        entry_id = r.xadd(f"{prefix}:raw", {"body": body})
        sent[json.loads(body)["id"]] = (kind, entry_ms(entry_id))
    return sent, worst


# -- main ---------------------------------------------------------------------------------------------

def database(args: argparse.Namespace, folder: Path) -> tuple[str, str, Any]:
    """The worker's DATABASE_URL, a description, and a cleanup."""
    if args.database == "sqlite":
        return f"sqlite:///{folder / 'pipeline.db'}", "SQLite", lambda: None
    from bench.storage import pg_base_url, pg_reachable, pg_schema

    base = pg_base_url()
    reason = asyncio.run(pg_reachable(base))
    if reason:
        raise SystemExit(f"no PostgreSQL at {base.split('@')[-1]}: {reason}; set DATABASE_URL or use --database sqlite")
    schema = f"nfbench_{uuid.uuid4().hex[:10]}"
    url = asyncio.run(pg_schema(base, True, schema))
    return url, f"PostgreSQL (schema {schema}, dropped after)", lambda: asyncio.run(pg_schema(base, False, schema))


def run(args: argparse.Namespace, url: str, folder: Path) -> None:
    r = redis.Redis.from_url(url)
    source = Input(wire_templates(), html_templates(args.data), args.html_share)
    prefix = f"nfbench-{uuid.uuid4().hex[:8]}"
    db_url, db_name, drop_db = database(args, folder)
    stages = [("cleaner", args.cleaners), ("classifier", args.classifiers), ("storage", 1)]
    workers = Workers(url, prefix, folder, DATABASE_URL=db_url)
    sampler = None
    try:
        for stage, count in stages:
            for _ in range(count):
                workers.start(stage)
        workers.wait_started(timeout=180)
        sampler = RssSampler({name: proc.pid for name, proc in workers.procs})
        sampler.sample()
        sampler.start()
        cpu = CpuUse({name: proc.pid for name, proc in workers.procs})
        print(f"pipeline benchmark: {', '.join(f'{s} x{c}' for s, c in stages)} as separate processes, {db_name}; "
              f"redis {r.info()['redis_version']}, {os.cpu_count()} cores")
        print(f"input: {args.html_share:.0%} real HTML pages ({len(source.pages)} distinct), the rest plain wire copy "
              f"({len(source.wire)} sample texts), each under a new id")

        # 1. capacity
        bodies = [body for _, body in source.bodies(args.articles, "cap")]
        base = out_count(r, prefix)
        cpu.start()
        start = time.perf_counter()
        push(r, f"{prefix}:raw", bodies)
        wait_out(r, prefix, base + len(bodies), workers, timeout=max(300.0, args.articles))
        seconds = time.perf_counter() - start
        capacity = len(bodies) / seconds
        print(f"capacity: {len(bodies)} articles in {seconds:.1f} s: {capacity:.1f} articles/s")
        print(f"  {cpu.line()}")
        sampler.phase("capacity")

        # 2. latency under open-loop load
        print("end-to-end latency (ms), raw entry added -> enriched entry added:")
        print(f"  {'load':<26} {'kind':<11} {'articles':>8} {'p50':>7} {'p95':>7} {'p99':>7}")
        for load in args.loads:
            rate = capacity * load / 100
            n = max(1, round(rate * args.duration))
            bodies_k = source.bodies(n, f"load{load}")
            after = last_id(r, f"{prefix}:enriched")
            after_stage = {name: last_id(r, f"{prefix}:{name}") for name in ("cleaned", "classified")}
            base = out_count(r, prefix)
            cpu.start()
            sent, worst = open_loop(r, prefix, bodies_k, rate)
            wait_out(r, prefix, base + n, workers, timeout=max(300.0, 2 * args.duration))
            arrived = entry_times(r, prefix, after)
            label = f"{load}% ({rate:.1f}/s for {n / rate:.0f} s)"
            for kind in ("text", "html"):
                lat = [arrived[i] - t for i, (k, t) in sent.items() if k == kind and i in arrived]
                if lat:
                    figures = "".join(f"{percentile(lat, p):7.0f}" for p in (50, 95, 99))
                else:
                    figures = f"{'-':>7}" * 3
                name = "plain text" if kind == "text" else "html"
                print(f"  {label:<26} {name:<11} {len(lat):>8}{figures}")
                label = ""
            print(f"  {'':<26} {tail_line(r, prefix, after_stage, sent, arrived)}")
            missing = [i for i in sent if i not in arrived]
            note = f", {len(missing)} dead-lettered (not counted)" if missing else ""
            print(f"  {'':<26} producer's worst lag behind schedule {worst * 1000:.0f} ms{note}")
            print(f"  {'':<26} {cpu.line()}")
            sampler.phase(f"{load}%")

        # 3. memory
        sampler.done.set()
        sampler.join()
        print("RSS per worker (MB, with children; sampled every 0.2 s): at start, and the peak of each phase")
        print(f"  {'worker':<14} {'start':>8}" + "".join(f"{label:>10}" for label, _ in sampler.phases))
        for name, _ in workers.procs:
            row = "".join(f"{peak[name] / 2**20:10.1f}" for _, peak in sampler.phases)
            print(f"  {name:<14} {sampler.first.get(name, 0) / 2**20:8.1f}{row}")
    finally:
        if sampler is not None:
            sampler.done.set()
        workers.stop()
        drop_prefix(r, prefix)
        drop_db()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--articles", type=int, default=2000, help="articles of the capacity run (default 2000)")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds of each open-loop load (default 30)")
    parser.add_argument("--loads", default="50,90", help="loads, percent of the capacity, comma-separated (default 50,90)")
    parser.add_argument("--html-share", type=float, default=0.5, help="share of HTML pages in the input (default 0.5)")
    parser.add_argument("--cleaners", type=int, default=1, help="cleaner processes (default 1)")
    parser.add_argument("--classifiers", type=int, default=1, help="classifier processes (default 1)")
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite",
                        help="storage's database: SQLite in a temp folder (default), or PostgreSQL at DATABASE_URL "
                             "(else postgresql://postgres@127.0.0.1:5432/test) in a fresh schema")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help=f"benchmark pages (default {DEFAULT_DATA})")
    args = parser.parse_args(argv)
    args.loads = [float(x) if "." in x else int(x) for x in args.loads.split(",")]
    with bench_redis() as url, tempfile.TemporaryDirectory(prefix="newsflow-bench-") as folder:
        run(args, url, Path(folder))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
