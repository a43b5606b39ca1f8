"""The `newsflow` command: run stages, push articles, watch streams, inspect and replay dead letters."""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from shared.topology import STAGES

COMMANDS = ("worker", "up", "ingest", "demo", "status", "tail", "dlq", "schemas", "docs", "db", "classifier")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="newsflow", description="Event-driven news ingestion on Redis Streams.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    w = sub.add_parser("worker", help="run one stage, long-running, graceful on SIGTERM")
    w.add_argument("stage", choices=(*STAGES, "gateway", "api", "webhook"),
                   help="a pipeline stage, the HTTP push gateway, the HTTP query API, or webhook delivery")

    u = sub.add_parser("up", help="run every stage, each in its own process, restarting any that dies")
    u.add_argument("--stages", default=None,
                   help="comma-separated; default cleaner,classifier,storage, plus fetcher when NEWSFLOW_SOURCES_FILE "
                        "is set, gateway when gateway tokens are configured, api when API tokens are or NEWSFLOW_API_PUBLIC is on, "
                        "webhook when NEWSFLOW_WEBHOOK_URLS is set")

    i = sub.add_parser("ingest", help="push .txt/.html/.json/.jsonl files, folders or stdin (-) to {prefix}:raw, "
                                      "and http(s) URLs to {prefix}:fetch for the fetcher")
    i.add_argument("paths", nargs="+")
    i.add_argument("--source", default=None)

    d = sub.add_parser("demo", help="run the whole pipeline on the bundled samples (or PATHs) and show the result")
    d.add_argument("paths", nargs="*")
    d.add_argument("--timeout", type=float, default=120.0)

    st = sub.add_parser("status", help="stream lengths; per group: consumers, pending, lag, oldest pending age")
    st.add_argument("--json", action="store_true", help="print the figures as one JSON object")

    t = sub.add_parser("tail", help="follow {prefix}:enriched as a downstream consumer would")
    t.add_argument("--group", help="read in this consumer group and ack, as a downstream service does")
    t.add_argument("--from-start", action="store_true", help="start at the beginning of the stream")
    t.add_argument("--json", action="store_true", help="print each body as a JSON line")
    t.add_argument("--count", type=int, default=0, help="stop after this many articles (0: never)")

    q = sub.add_parser("dlq", help="dead letters: list, show, replay, purge")
    qs = q.add_subparsers(dest="dlq_command", required=True)
    ql = qs.add_parser("list")
    ql.add_argument("--stage")
    ql.add_argument("--count", type=int, default=50)
    qsh = qs.add_parser("show")
    qsh.add_argument("id")
    qr = qs.add_parser("replay", help="re-publish to the stage's input stream, then delete from the DLQ")
    qr.add_argument("--stage")
    grp = qr.add_mutually_exclusive_group(required=True)
    grp.add_argument("--id", action="append")
    grp.add_argument("--all", action="store_true")
    qp = qs.add_parser("purge")
    qp.add_argument("--stage")
    qp.add_argument("--id", action="append")

    s = sub.add_parser("schemas", help="write the contract's JSON Schema files")
    s.add_argument("--out", default="schemas")

    dc = sub.add_parser("docs", help="write the AsyncAPI document of every stream")
    dc.add_argument("--out", default="docs/asyncapi.yaml")

    db = sub.add_parser("db", help="database tasks")
    db.add_argument("action", choices=("migrate",))

    cl = sub.add_parser("classifier", help="topic model tasks: train one on your own labelled articles")
    cl.add_argument("action", choices=("train",))
    cl.add_argument("train_args", nargs=argparse.REMAINDER, help="see `newsflow classifier train --help`")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from shared.logging import configure
    from shared.settings import Settings

    from pydantic_settings import SettingsError

    try:
        settings = Settings()
    except SettingsError as exc:  # e.g. REDIS_URL and REDIS_URL_FILE both set, or an unreadable secret file
        raise SystemExit(f"newsflow: {exc}") from None
    configure(settings.log_level, settings.log_format, stage=getattr(args, "stage", None) if args.command == "worker" else None,
              secrets=settings.secret_values())
    handler = globals()[f"cmd_{args.command}"]
    return int(handler(args, settings) or 0)


# -- running stages ---------------------------------------------------------------------------------

def cmd_worker(args: argparse.Namespace, settings: Any) -> int:
    from services.bootstrap import build_worker, redis_url, run_api, run_gateway
    from shared.logging import get_logger
    from shared.transport.app import run_worker

    url = redis_url(settings)
    # Where this worker connects; credentials in these URLs are masked by the log redaction (shared/logging.py).
    where = {"redis": url, **({"database": settings.effective_database_url()} if args.stage in ("storage", "api") else {})}
    get_logger("newsflow.cli").info("worker_starting", **where)
    if args.stage == "gateway":
        return run_gateway(settings, url)
    if args.stage == "api":
        return run_api(settings, url)
    app, _ = build_worker(args.stage, settings, url)
    run_worker(app)
    return 0


def _spawn(stage: str, env: dict[str, str], log: Any = None) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "services.cli", "worker", stage], env=env, stdout=log, stderr=log)


class Supervisor:
    """Child processes, one per stage; a child that dies is restarted with backoff until we are told to stop."""

    def __init__(self, stages: list[str], env: dict[str, str], log: Any = None,
                 stage_env: dict[str, dict[str, str]] | None = None) -> None:
        self.stages = stages
        self.env = env
        self.stage_env = stage_env or {}  # per stage, on top of env (e.g. its own metrics port)
        self.log = log  # a file for the children's output; None: ours
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.restarts: dict[str, int] = {s: 0 for s in stages}
        self.next_start: dict[str, float] = {}
        self.started: dict[str, float] = {}
        self.stopping = False

    def start(self) -> None:
        for stage in self.stages:
            self._launch(stage)

    def _launch(self, stage: str) -> None:
        self.procs[stage] = _spawn(stage, {**self.env, **self.stage_env.get(stage, {})}, self.log)
        self.started[stage] = time.monotonic()

    def poll(self) -> None:
        now = time.monotonic()
        for stage, proc in list(self.procs.items()):
            if proc.poll() is None or self.stopping:
                continue
            if stage not in self.next_start:
                if now - self.started[stage] > 60:
                    self.restarts[stage] = 0  # it ran fine for a while: this is a fresh failure, not a crash loop
                self.restarts[stage] += 1
                delay = min(30.0, 0.5 * 2 ** min(self.restarts[stage], 6))
                print(f"newsflow: {stage} exited with {proc.returncode}; restarting in {delay:.1f}s", file=sys.stderr)
                self.next_start[stage] = now + delay
            elif now >= self.next_start[stage]:
                del self.next_start[stage]
                self._launch(stage)

    def stop(self, timeout: float) -> None:
        self.stopping = True
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for proc in self.procs.values():
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()  # reclaim covers whatever it held


def _worker_env(settings: Any, url: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    from shared.settings import secret_file_vars

    env = dict(os.environ)
    env.setdefault("NEWSFLOW_STREAM_PREFIX", settings.stream_prefix)
    wanted = {"REDIS_URL": url, "DATABASE_URL": settings.effective_database_url(), **(extra or {})}
    by_var = {var: (field, files) for field, (plain, files) in secret_file_vars(type(settings)).items() for var in plain}
    for var, value in wanted.items():
        field, files = by_var.get(var, (None, []))
        if field and value == getattr(settings, field) and any(env.get(f) for f in files):
            continue  # read from a file here: the children read the same file, and the secret stays out of their environment
        for f in files:
            env.pop(f, None)  # a value of ours replaces the file's (X and X_FILE together would be refused)
        env[var] = value
    return env


def default_stages(settings: Any) -> list[str]:
    """What `newsflow up` runs: the pipeline, the fetcher when it has sources, the gateway when it has tokens,
    the query API when it has tokens or is public, webhook delivery when it has URLs."""
    optional = {"fetcher": bool(settings.sources_file),
                "gateway": bool(settings.gateway_tokens.strip() or settings.gateway_tokens_file),
                "api": bool(settings.api_tokens.strip() or settings.api_tokens_file or settings.api_public),
                "webhook": bool(settings.webhook_urls.strip())}
    return [s for s in ("gateway", "api", *STAGES, "webhook") if optional.get(s, True)]


def metrics_ports(stages: list[str], base: int) -> dict[str, int]:
    """One metrics port per stage worker on this host: base, base+1, ... in the order given (0: none at all).
    The gateway and the API serve their probes on their own ports."""
    if not base:
        return {}
    workers = [s for s in stages if s in (*STAGES, "webhook")]
    return {stage: base + i for i, stage in enumerate(workers)}


def cmd_up(args: argparse.Namespace, settings: Any) -> int:
    from services.bootstrap import redis_url

    url = redis_url(settings)
    stages = [s.strip() for s in args.stages.split(",") if s.strip()] if args.stages else default_stages(settings)
    ports = metrics_ports(stages, settings.metrics_port)
    sup = Supervisor(stages, _worker_env(settings, url),
                     stage_env={stage: {"NEWSFLOW_METRICS_PORT": str(port)} for stage, port in ports.items()})
    for stage, port in ports.items():
        print(f"newsflow: {stage} serves /healthz, /readyz and /metrics on http://{settings.metrics_host}:{port}", file=sys.stderr)
    stop = {"now": False}

    def on_signal(signum: int, _frame: Any) -> None:
        stop["now"] = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    sup.start()
    from shared.logging import redact

    print(f"newsflow: running {', '.join(stages)} on {redact(url)}; Ctrl-C stops", file=sys.stderr)
    while not stop["now"]:
        sup.poll()
        time.sleep(0.2)
    sup.stop(settings.shutdown_timeout_s + 5)
    return 0


# -- pushing and reading ----------------------------------------------------------------------------

def _redis(settings: Any) -> Any:
    import redis

    from services.bootstrap import redis_url
    from shared.transport.app import with_credentials

    # As its own ACL user when one is configured: `ops` for status and dlq, `gateway` for ingest (deploy/redis).
    url, auth = with_credentials(redis_url(settings), settings.redis_credentials())
    return redis.Redis.from_url(url, **auth)


def push_articles(r: Any, stream: str, articles: list[Any], tracer: Any = None) -> list[str]:
    """XADD each article as `body` JSON, the way any upstream scraper does, each with a `traceparent` of a new
    trace (with NEWSFLOW_TRACING on, `tracer` records its span). Returns the stream entry ids."""
    from shared import tracing

    tracer = tracer or tracing.Tracer()
    attributes = {"messaging.system": "redis", "messaging.operation.type": "send", "messaging.destination.name": stream,
                  "newsflow.stage": "ingest"}
    ids: list[str] = []
    for i in range(0, len(articles), 500):
        spans = [tracer.ingest(None, f"send {stream}", attributes) for _ in articles[i : i + 500]]
        with r.pipeline(transaction=False) as pipe:
            for article, span in zip(articles[i : i + 500], spans):
                pipe.xadd(stream, {"body": json.dumps(article, ensure_ascii=False), "traceparent": span.traceparent})
            ids.extend(x.decode() for x in pipe.execute())
        for span, entry_id in zip(spans, ids[-len(spans):]):
            tracer.end(span, attributes={"messaging.message.id": entry_id})
    return ids


def load_articles(paths: list[str], source: str | None = None) -> list[Any]:
    from services.fetcher.files import articles_from_file, articles_from_stdin, iter_paths

    out: list[Any] = []
    if paths == ["-"]:
        return list(articles_from_stdin(source))
    for path in iter_paths(paths):
        out.extend(articles_from_file(path, source))
    return out


def is_url(value: str) -> bool:
    return value.lower().startswith(("http://", "https://"))


def fetch_requests(urls: list[str], source: str | None = None) -> list[Any]:
    from services.fetcher.urls import canonicalize
    from shared.contract import FetchRequest

    out = []
    for url in urls:
        try:
            canonicalize(url)
        except ValueError as exc:
            raise SystemExit(f"newsflow ingest: {exc}") from None
        out.append(FetchRequest(url=url, source=source or "ingest").model_dump(mode="json"))
    return out


def cmd_ingest(args: argparse.Namespace, settings: Any) -> int:
    from shared import tracing
    from shared.topology import Topology

    topo = Topology(settings.stream_prefix)
    urls = [p for p in args.paths if is_url(p)]
    paths = [p for p in args.paths if not is_url(p)]
    r = _redis(settings)
    tracer = tracing.setup(settings.tracing, "newsflow-ingest")  # its spans are flushed at exit
    if paths:
        ids = push_articles(r, topo.raw, load_articles(paths, args.source), tracer)
        print(f"pushed {len(ids)} article(s) to {topo.raw}")
    if urls:
        ids = push_articles(r, topo.fetch, fetch_requests(urls, args.source), tracer)
        print(f"pushed {len(ids)} URL(s) to {topo.fetch}; `newsflow worker fetcher` fetches them")
    return 0


def cmd_status(args: argparse.Namespace, settings: Any) -> int:
    from rich.console import Console
    from rich.table import Table

    from shared.topology import Topology
    from shared.transport.admin import status

    info = status(_redis(settings), Topology(settings.stream_prefix))
    if args.json:
        print(json.dumps(info))
        return 0
    table = Table(title="newsflow streams")
    for col in ("stream", "length", "group", "consumers", "pending", "lag", "oldest pending (s)"):
        table.add_column(col)
    for stream, s in info["streams"].items():
        if not s["groups"]:
            table.add_row(stream, str(s["length"]), "-", "", "", "", "")
        for g in s["groups"]:
            table.add_row(stream, str(s["length"]), g["group"], str(g["consumers"]), str(g["pending"]), str(g["lag"]), str(g["oldest_pending_age_s"] or ""))
    Console(width=max(120, Console().width)).print(table)
    if info.get("sources"):
        src = Table(title="fetcher sources")
        for col in ("source", "kind", "last ok", "failures", "next poll in (s)", "last added", "last error"):
            src.add_column(col)
        now = time.time()
        for name, st in info["sources"].items():
            last_ok = float(st["last_ok"]) if st.get("last_ok") else None
            next_poll = float(st["next_poll"]) if st.get("next_poll") else None
            src.add_row(name, st.get("kind", ""),
                        time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(last_ok)) if last_ok else "never",
                        st.get("failures", "0"), f"{max(0.0, next_poll - now):.0f}" if next_poll else "now",
                        st.get("last_added", ""), (st.get("last_error") or "")[:60])
        Console(width=max(120, Console().width)).print(src)
    return 0


def cmd_tail(args: argparse.Namespace, settings: Any) -> int:
    from shared.topology import Topology

    r = _redis(settings)
    stream = Topology(settings.stream_prefix).enriched
    seen = 0
    last = "0" if args.from_start else "$"
    consumer = f"tail-{os.getpid()}"
    if args.group:
        try:
            r.xgroup_create(stream, args.group, id="0" if args.from_start else "$", mkstream=True)
        except Exception as exc:
            if "BUSYGROUP" not in str(exc):
                raise
    try:
        while not args.count or seen < args.count:
            if args.group:
                # Pending first ("0"), so entries read before a crash are seen again: at-least-once.
                reply = r.xreadgroup(args.group, consumer, {stream: "0"}, count=100) or []
                if not reply or not reply[0][1]:
                    reply = r.xreadgroup(args.group, consumer, {stream: ">"}, count=100, block=1000) or []
            else:
                reply = r.xread({stream: last}, count=100, block=1000) or []
            for _, entries in reply:
                for entry_id, fields in entries:
                    last = entry_id
                    body = json.loads(fields[b"body"])
                    if args.json:
                        print(json.dumps(body, ensure_ascii=False), flush=True)
                    else:
                        topics = ",".join(t["label"] for t in body.get("topics", [])[:3])
                        print(f"{entry_id.decode()}  {body['id'][:12]}  {body.get('language')}  [{topics}]  {(body.get('title') or '')[:70]}", flush=True)
                    if args.group:
                        r.xack(stream, args.group, entry_id)
                    seen += 1
                    if args.count and seen >= args.count:
                        return 0
    except KeyboardInterrupt:
        pass
    return 0


def cmd_dlq(args: argparse.Namespace, settings: Any) -> int:
    from shared.topology import Topology
    from shared.transport import admin

    r = _redis(settings)
    topo = Topology(settings.stream_prefix)
    if args.dlq_command == "list":
        for row in admin.dlq_list(r, topo, count=args.count, stage=args.stage):
            print(f"{row['id']}  {row['stage']:<10}  attempts={row['attempts']}  {row['error'][:100]}")
    elif args.dlq_command == "show":
        row = admin.dlq_show(r, topo, args.id)
        if row is None:
            print(f"no dead letter {args.id}", file=sys.stderr)
            return 1
        print(json.dumps(row, indent=2, ensure_ascii=False))
    elif args.dlq_command == "replay":
        done = admin.dlq_replay(r, topo, ids=None if args.all else args.id, stage=args.stage)
        print(f"replayed {len(done)} dead letter(s)")
    elif args.dlq_command == "purge":
        print(f"purged {admin.dlq_purge(r, topo, ids=args.id, stage=args.stage)} dead letter(s)")
    return 0


def cmd_schemas(args: argparse.Namespace, settings: Any) -> int:
    from shared.contract import write_json_schemas

    for path in write_json_schemas(args.out):
        print(path)
    return 0


def cmd_docs(args: argparse.Namespace, settings: Any) -> int:
    from shared.asyncapi import asyncapi_yaml

    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(asyncapi_yaml(settings), encoding="utf-8")
    print(args.out)
    return 0


def cmd_classifier(args: argparse.Namespace, settings: Any) -> int:
    from services.classifier.train import main as train

    return train(args.train_args)


def cmd_db(args: argparse.Namespace, settings: Any) -> int:
    import asyncio

    from services.storage.repository import open_repository

    async def migrate() -> list[str]:
        repo = open_repository(settings.effective_database_url())
        await repo.connect()
        try:
            return await repo.migrate()
        finally:
            await repo.close()

    applied = asyncio.run(migrate())
    print("applied: " + (", ".join(applied) if applied else "nothing, the schema is current"))
    return 0


def cmd_demo(args: argparse.Namespace, settings: Any) -> int:
    from services.demo import run_demo

    return run_demo(args.paths, settings, timeout=args.timeout)


if __name__ == "__main__":
    sys.exit(main())
