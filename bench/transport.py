"""Transport overhead: newsflow's three relay stages with trivial logic against a bare redis-py relay, same run.

    python bench/transport.py [--articles 20000] [--batch 100] [--repeat 2]

Both relays move the same pre-loaded articles (about 4.4 KB of JSON each) through three stages, one process per
stage: the baseline with XREADGROUP COUNT batch and a pipelined XADD + XACK, newsflow with its FastStream workers
(decode, validate, atomic ownership-checked commit, heartbeats, reclaim loop) around a pass-through stage.
Uses REDIS_URL, or an embedded Redis in a temp folder.

Each relay runs --repeat times, alternating which goes first, and the best articles/s of each is kept: on a shared
machine a neighbour's burst then costs a rerun, not the ratio. The ratio of the two runs of each round is printed
too, and their median: it shows how far one lucky run of either relay moves the headline ratio. Besides articles/s it prints the CPU each relay spent
per article and stage, in its worker processes and in the Redis server (Linux /proc and INFO cpu; the Redis figure
counts every client of that server, so give the benchmark its own). CPU time does not move with the machine's
other load the way throughput does.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import redis  # noqa: E402

STAGES = (("cleaner", "raw", "cleaned"), ("classifier", "cleaned", "classified"), ("storage", "classified", "enriched"))


def article(i: int) -> str:
    words = ("officials said the government would announce new measures on trade and energy prices "
             "after talks with regional partners in the capital on monday ").split()
    text = " ".join(words[(i + k) % len(words)] for k in range(650))
    return json.dumps({"id": f"bench-{i}", "url": f"https://bench.example/{i}", "source": "bench", "title": f"Story {i}", "text": text})


def preload(r: redis.Redis, stream: str, n: int) -> None:
    for start in range(0, n, 1000):
        with r.pipeline(transaction=False) as pipe:
            for i in range(start, min(n, start + 1000)):
                pipe.xadd(stream, {"body": article(i)})
            pipe.execute()


def wait_for(r: redis.Redis, stream: str, n: int, timeout: float = 600) -> float:
    start = time.perf_counter()
    while r.xlen(stream) < n:
        if time.perf_counter() - start > timeout:
            raise SystemExit(f"gave up: {r.xlen(stream)}/{n} on {stream}")
        time.sleep(0.01)
    return time.perf_counter() - start


def process_cpu(pids: list[int]) -> float:
    """CPU seconds (user + system) the processes have used so far; 0 where /proc is not there."""
    total = 0.0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def redis_cpu(r: redis.Redis) -> float:
    info = r.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def push_and_drain(r: redis.Redis, prefix: str, n: int, pids: list[int]) -> tuple[float, float, float]:
    """Both relays are timed alike: workers already running, from the first push to the last article out.
    Returns the seconds, and the CPU seconds the workers and the Redis server spent meanwhile."""
    time.sleep(3)  # let the workers start before the articles arrive
    cpu0, redis0 = process_cpu(pids), redis_cpu(r)
    start = time.perf_counter()
    preload(r, f"{prefix}:raw", n)
    pushed = time.perf_counter() - start
    seconds = pushed + wait_for(r, f"{prefix}:enriched", n)
    return seconds, process_cpu(pids) - cpu0, redis_cpu(r) - redis0


# -- the baseline: bare redis-py, one process per stage ----------------------------------------------

def bare_stage(url: str, src: str, dst: str, group: str, batch: int, n: int) -> None:
    r = redis.Redis.from_url(url)
    done = 0
    while done < n:
        reply = r.xreadgroup(group, "bare", {src: ">"}, count=batch, block=100)
        for _, entries in reply or []:
            with r.pipeline(transaction=False) as pipe:
                for _, fields in entries:
                    pipe.xadd(dst, fields)
                pipe.xack(src, group, *[eid for eid, _ in entries])
                pipe.execute()
            done += len(entries)


def run_bare(url: str, prefix: str, n: int, batch: int) -> tuple[float, float, float]:
    r = redis.Redis.from_url(url)
    for _, src, _ in STAGES:
        r.xgroup_create(f"{prefix}:{src}", f"{prefix}:bare", id="0", mkstream=True)
    procs = [subprocess.Popen([sys.executable, __file__, "bare-stage", url, f"{prefix}:{src}", f"{prefix}:{dst}",
                               f"{prefix}:bare", str(batch), str(n)]) for _, src, dst in STAGES]
    try:
        return push_and_drain(r, prefix, n, [p.pid for p in procs])
    finally:
        for p in procs:
            p.wait(60)


# -- newsflow: the real workers around a pass-through stage ---------------------------------------

def newsflow_stage(stage: str) -> None:
    from pydantic import BaseModel, ConfigDict

    from shared.logging import configure
    from shared.settings import Settings
    from shared.transport.app import build_app, run_worker
    from shared.transport.runner import StageSpec, each

    class Body(BaseModel):
        """The article's id, which every stage keys on, and whatever else the body holds, passed on as it came."""

        model_config = ConfigDict(extra="allow")
        id: str

    settings = Settings()
    configure("WARNING", "json", stage=stage)
    name, src, dst = next(s for s in STAGES if s[0] == stage)
    spec = StageSpec(name, src, dst, decode=lambda body: (Body.model_validate(body), []), process=each(lambda e, m: m),
                     model=Body)
    app, _ = build_app(spec, settings, settings.redis_url or "")
    run_worker(app)  # as `newsflow worker` runs a stage


def run_newsflow(url: str, prefix: str, n: int, batch: int) -> tuple[float, float, float]:
    r = redis.Redis.from_url(url)
    for name, src, _ in STAGES:  # groups first, so the timing starts with every worker able to read
        r.xgroup_create(f"{prefix}:{src}", f"{prefix}:{name}", id="0", mkstream=True)
    env = {**os.environ, "REDIS_URL": url, "NEWSFLOW_STREAM_PREFIX": prefix, "NEWSFLOW_BATCH_SIZE": str(batch),
           "NEWSFLOW_METRICS_PORT": "0",  # three workers on one host; an idle probe server costs nothing
           "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen([sys.executable, __file__, "newsflow-stage", name], env=env) for name, _, _ in STAGES]
    try:
        return push_and_drain(r, prefix, n, [p.pid for p in procs])
    finally:
        for p in procs:
            p.terminate()
            p.wait(60)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "bare-stage":
        url, src, dst, group, batch, n = sys.argv[2:]
        bare_stage(url, src, dst, group, int(batch), int(n))
        return
    if len(sys.argv) > 1 and sys.argv[1] == "newsflow-stage":
        newsflow_stage(sys.argv[2])
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--articles", type=int, default=20000)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--repeat", type=int, default=2, help="runs of each relay, alternating which goes first")
    args = ap.parse_args()
    url = os.environ.get("REDIS_URL")
    folder = None
    if not url:
        from shared import embedded

        folder = tempfile.mkdtemp(prefix="newsflow-bench-")
        url = embedded.ensure_running(folder, persistent=False)
    r = redis.Redis.from_url(url)
    print(f"transport benchmark: {args.articles} articles of {len(article(0))} bytes, 3 stages, batch {args.batch}, "
          f"redis {r.info()['redis_version']}, {os.cpu_count()} cores")
    relays = (("bare redis-py relay", run_bare), ("newsflow (pass-through stages)", run_newsflow))
    best: dict[str, tuple[float, float, float]] = {}
    paired: list[float] = []  # newsflow/bare within each round: the two ran back to back
    for round_ in range(args.repeat):
        rates: dict[str, float] = {}
        for label, run in relays if round_ % 2 == 0 else relays[::-1]:
            prefix = f"nfbench-{uuid.uuid4().hex[:8]}"
            try:
                seconds, workers, server = run(url, prefix, args.articles, args.batch)
            finally:
                keys = list(r.scan_iter(match=f"{prefix}:*"))
                if keys:
                    r.delete(*keys)
            rate = args.articles / seconds
            per = 1e6 / (args.articles * len(STAGES))
            print(f"  {label:<32} {rate:8.0f} articles/s   CPU per article and stage: workers {workers * per:5.1f} µs, "
                  f"redis {server * per:5.1f} µs")
            rates[label] = rate
            if label not in best or rate > best[label][0]:
                best[label] = (rate, workers * per, server * per)
        paired.append(rates[relays[1][0]] / rates[relays[0][0]])
    (bare, bare_w, bare_r), (ours, ours_w, ours_r) = best[relays[0][0]], best[relays[1][0]]
    print(f"  best of {args.repeat}: bare {bare:.0f}, newsflow {ours:.0f} articles/s")
    print(f"  ratio newsflow/bare: {ours / bare:.2f}")
    print(f"  ratio within each round: {', '.join(f'{p:.2f}' for p in paired)} (median {statistics.median(paired):.2f})")
    print(f"  CPU per article and stage, workers + redis: bare {bare_w + bare_r:.1f} µs, newsflow {ours_w + ours_r:.1f} µs "
          f"(ratio bare/newsflow {(bare_w + bare_r) / (ours_w + ours_r):.2f})")
    if folder:
        from shared import embedded

        embedded.stop(folder)


if __name__ == "__main__":
    main()
