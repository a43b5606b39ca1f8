"""The fetcher as worker processes against a local feed server: every item reaches raw exactly once."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import ROOT, worker_env
from tests.helpers import Workers, read_bodies, wait_until
from tests.httpserver import LocalServer, Request, Response, conditional

pytestmark = pytest.mark.e2e

N_ITEMS = 200
N_FEEDS = 3


def article(n: int) -> bytes:
    return f"<html><head><title>Story {n}</title></head><body><p>Story number {n} happened today.</p></body></html>".encode()


def rss(urls: list[str]) -> str:
    items = "".join(f"<item><title>Story {u.rsplit('/', 1)[1]}</title><link>{u}?utm_source=rss</link></item>" for u in urls)
    return f'<?xml version="1.0"?><rss version="2.0"><channel><title>feed</title>{items}</channel></rss>'


def test_two_fetchers_three_feeds_every_item_once_and_conditional_second_polls(redis_url, prefix, r, tmp_path):
    with LocalServer() as server:
        for n in range(N_ITEMS):
            server.routes[f"/a/{n}"] = (lambda n: lambda _req: (200, {"Content-Type": "text/html; charset=utf-8"}, article(n)))(n)
        feeds = []
        for k in range(N_FEEDS):
            urls = [server.url(f"/a/{n}") for n in range(k, N_ITEMS, N_FEEDS)]
            server.routes[f"/feed-{k}.xml"] = conditional(rss(urls), etag=f'"feed-{k}-v1"', content_type="application/rss+xml")
            feeds.append(f'[[sources]]\nname = "feed-{k}"\nkind = "feed"\nurl = "{server.url(f"/feed-{k}.xml")}"\ninterval_s = 0.5\ncategory = "test"\n')
        sources = tmp_path / "sources.toml"
        sources.write_text("\n".join(feeds))
        env = worker_env(redis_url, prefix, f"sqlite:///{tmp_path / 'db.sqlite'}", tmp_path,
                         NEWSFLOW_SOURCES_FILE=str(sources), NEWSFLOW_FETCH_HOST_INTERVAL_S="0",
                         NEWSFLOW_FETCH_HOST_CONCURRENCY="8", NEWSFLOW_BATCH_SIZE="50",
                         NEWSFLOW_FETCH_ALLOW_PRIVATE="1", NEWSFLOW_FETCH_ALLOWED_PORTS=str(server.port))
        w = Workers(env, tmp_path)
        try:
            w.start("fetcher", "fetcher-a")
            w.start("fetcher", "fetcher-b")
            wait_until(lambda: r.xlen(f"{prefix}:raw") >= N_ITEMS, timeout=120, what=f"{N_ITEMS} articles on raw")

            def conditional_304s() -> bool:
                return all(
                    any(h.status == 304 and h.headers.get("if-none-match") == f'"feed-{k}-v1"' and h.headers.get("if-modified-since")
                        for h in server.hits(f"/feed-{k}.xml"))
                    for k in range(N_FEEDS)
                )

            wait_until(conditional_304s, timeout=60, what="a conditional second poll of every feed")
            wait_until(lambda: all(len(server.hits(f"/feed-{k}.xml")) >= 3 for k in range(N_FEEDS)), timeout=60, what="a third poll")
            assert w.alive() == ["fetcher-a", "fetcher-b"], w.logs()
            raw = read_bodies(r, f"{prefix}:raw")
            assert len(raw) == N_ITEMS, f"{len(raw)} entries on raw"
            assert sorted(a["url"] for a in raw) == sorted(server.url(f"/a/{n}") for n in range(N_ITEMS))
            assert all(a["metadata"]["category"] == "test" and a["source"].startswith("feed-") for a in raw)
            assert all(len(server.hits(f"/a/{n}")) == 1 for n in range(N_ITEMS)), "each page fetched once"
            # Both replicas read the group (a slow start on a busy machine may join late), and nothing is left pending.
            wait_until(lambda: {c["name"].decode() for c in r.xinfo_consumers(f"{prefix}:fetch", f"{prefix}:fetcher")}
                       == {"fetcher-a", "fetcher-b"}, timeout=60, what="both fetchers in the group")
            assert r.xpending(f"{prefix}:fetch", f"{prefix}:fetcher")["pending"] == 0
            states = {k: r.hgetall(f"{prefix}:sources:feed-{k}") for k in range(N_FEEDS)}
            assert all(s[b"failures"] == b"0" and s[b"last_ok"] for s in states.values())
            status = subprocess.run([sys.executable, "-m", "services.cli", "status", "--json"], env=env, capture_output=True,
                                    text=True, timeout=60, cwd=ROOT)
            assert set(json.loads(status.stdout)["sources"]) == {"feed-0", "feed-1", "feed-2"}, status.stderr
            polls = {k: [h.status for h in server.hits(f"/feed-{k}.xml")] for k in range(N_FEEDS)}
            print(f"\nfetcher: items={N_ITEMS} feeds={N_FEEDS} replicas=2 raw_entries={len(raw)} "
                  f"distinct_urls={len({a['url'] for a in raw})} page_fetches={sum(len(server.hits(f'/a/{n}')) for n in range(N_ITEMS))} "
                  f"feed_polls={polls}")
        finally:
            w.stop()
        assert all(p.returncode == 0 for _, _, p in w.procs), w.logs()


def test_ingest_accepts_urls_and_the_fetcher_fetches_them(redis_url, prefix, r, tmp_path):
    with LocalServer() as server:
        def story(_req: Request) -> Response:
            return 200, {"Content-Type": "text/html"}, b"<p>ingested by URL</p>"

        server.routes["/story"] = story
        (tmp_path / "wire.txt").write_text("PARIS (AFP) -- A file next to a URL.")
        env = worker_env(redis_url, prefix, f"sqlite:///{tmp_path / 'db.sqlite'}", tmp_path, NEWSFLOW_FETCH_HOST_INTERVAL_S="0",
                         NEWSFLOW_FETCH_ALLOW_PRIVATE="1", NEWSFLOW_FETCH_ALLOWED_PORTS=str(server.port))
        out = subprocess.run([sys.executable, "-m", "services.cli", "ingest", server.url("/story"), str(tmp_path / "wire.txt")],
                             env=env, capture_output=True, text=True, timeout=60, cwd=ROOT)
        assert out.returncode == 0, out.stderr
        assert f"pushed 1 URL(s) to {prefix}:fetch" in out.stdout and f"pushed 1 article(s) to {prefix}:raw" in out.stdout
        bad = subprocess.run([sys.executable, "-m", "services.cli", "ingest", "ftp://example.com/x"],
                             env=env, capture_output=True, text=True, timeout=60, cwd=ROOT)
        assert bad.returncode != 0
        w = Workers(env, tmp_path)
        try:
            w.start("fetcher")
            wait_until(lambda: r.xlen(f"{prefix}:raw") == 2, timeout=60, what="the URL fetched to raw")
            fetched = [a for a in read_bodies(r, f"{prefix}:raw") if a.get("html")]
            assert fetched[0]["url"] == server.url("/story") and fetched[0]["source"] == "ingest"
        finally:
            w.stop()
