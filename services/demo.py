"""`newsflow demo`: the whole pipeline, three worker processes, on the bundled samples or given files."""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
import uuid
from importlib import resources
from pathlib import Path
from typing import Any

from shared import embedded
from shared.contract import parse_raw
from shared.logging import redact
from shared.topology import Topology


def bundled_samples() -> list[str]:
    folder = resources.files("services") / "samples"
    return sorted(str(p) for p in folder.iterdir() if p.name[0] not in "._")


def run_demo(paths: list[str], settings: Any, timeout: float = 120.0) -> int:
    import redis
    from rich.console import Console

    from services.cli import Supervisor, _worker_env, load_articles, push_articles

    console = Console()
    articles = load_articles(paths or bundled_samples())
    expected: dict[str, str] = {}
    for article in articles:
        try:
            raw, _ = parse_raw(article)
            expected[raw.article_id()] = raw.title or ""
        except ValueError as exc:
            console.print(f"[yellow]skipping an input that breaks the contract:[/] {exc}")
    if not expected:
        console.print("[red]nothing to ingest[/]")
        return 1

    workdir = Path(tempfile.mkdtemp(prefix="newsflow-demo-"))
    if settings.redis_url:
        url, prefix = settings.redis_url, f"newsflow-demo-{uuid.uuid4().hex[:8]}"
    else:
        url, prefix = embedded.ensure_running(workdir, persistent=False), "newsflow"
    topo = Topology(prefix)
    db_url = settings.database_url or f"sqlite:///{workdir / 'newsflow.db'}"
    env = _worker_env(settings, url, {
        "NEWSFLOW_STREAM_PREFIX": prefix, "DATABASE_URL": db_url, "NEWSFLOW_DATA_DIR": str(workdir),
        "LOG_FORMAT": "json", "LOG_LEVEL": "WARNING",
        "NEWSFLOW_METRICS_PORT": "0",  # a demo needs no probes, and a fixed port could be taken
    })
    log_path = workdir / "workers.log"
    log_file = open(log_path, "ab")
    sup = Supervisor(["cleaner", "classifier", "storage"], env, log=log_file)
    r = redis.Redis.from_url(url)
    ok = False
    try:
        sup.start()
        console.print(f"newsflow demo: {len(expected)} article(s), workers on {redact(url)}")
        push_articles(r, topo.raw, articles)
        enriched, dead = _wait(r, topo, set(expected), timeout, sup)
        _show(console, [enriched[i] for i in expected if i in enriched])
        for letter in dead:
            console.print(f"[red]dead letter[/] from {letter['stage']}: {letter['error']}")
        missing = set(expected) - set(enriched)
        ok = not missing
        if missing:
            console.print(f"[red]{len(missing)} article(s) did not arrive; worker log: {log_path}[/]")
        else:
            console.print(f"[green]all {len(expected)} article(s) enriched and stored[/] in {redact(db_url)}")
    finally:
        sup.stop(10)
        log_file.close()
        if settings.redis_url:
            r.delete(*topo.all_streams(), *r.keys(f"{prefix}:*"))
        else:
            embedded.stop(workdir)
        if ok:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0 if ok else 1


def _wait(r: Any, topo: Topology, ids: set[str], timeout: float, sup: Any) -> tuple[dict[str, dict[str, Any]], list[dict[str, Any]]]:
    enriched: dict[str, dict[str, Any]] = {}
    dead: list[dict[str, Any]] = []
    cursors = {topo.enriched: "0", topo.dlq: "0"}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and len(enriched) + len(dead) < len(ids):
        sup.poll()
        if max(sup.restarts.values()) >= 3:
            print("newsflow demo: a worker keeps crashing; see the worker log", file=sys.stderr)
            break
        for stream, entries in r.xread(cursors, count=500, block=500) or []:
            name = stream.decode()
            for entry_id, fields in entries:
                cursors[name] = entry_id
                body = json.loads(fields[b"body"])
                if name == topo.enriched and body["id"] in ids:
                    enriched[body["id"]] = body
                elif name == topo.dlq:
                    dead.append(body)
    return enriched, dead


def _show(console: Any, rows: list[dict[str, Any]]) -> None:
    from rich.table import Table

    table = Table(title="newsflow demo: enriched articles", show_lines=True)
    for col in ("title", "dateline", "lang", "topics", "places", "words", "dup of"):
        table.add_column(col, overflow="fold")
    for a in rows:
        d = a.get("dateline") or {}
        dateline = ", ".join(x for x in (d.get("city"), d.get("country")) if x)
        if d.get("agency"):
            dateline += f" ({d['agency']})"
        topics = ", ".join(f"{t['label']} {t['score']:.2f}" for t in a.get("topics", [])[:3])
        places = ", ".join(f"{p['name']} ({p['code']})" if p.get("code") else p["name"] for p in a.get("places", [])[:6])
        table.add_row((a.get("title") or "")[:80], dateline, a.get("language", ""), topics, places, str(a.get("word_count", "")), (a.get("duplicate_of") or "")[:12])
    console.print(table)
