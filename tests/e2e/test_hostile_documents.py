"""Hostile documents through real worker processes on the real Redis: the normal ones are cleaned, the hostile
ones dead-lettered with their reason, and the workers are still alive afterwards."""

from __future__ import annotations

import gzip
import json

import pytest

from tests.articles import raw_articles
from tests.conftest import worker_env
from tests.helpers import Workers, everything_in_redis, push, read_bodies, wait_until
from tests.httpserver import LocalServer, page

pytestmark = pytest.mark.e2e

PASSWD_MARKERS = ("root:x:0:0", "/usr/sbin/nologin", "daemon:x:")
MB = 1024 * 1024


def story(n: int) -> str:
    paragraphs = "".join(
        f"<p>The city council of Lyon approved budget line {n}.{k} on Tuesday after a debate that lasted most of "
        f"the afternoon, and the mayor said the vote would fund new tram lines and schools.</p>" for k in range(6))
    return f"<html><head><title>Council story {n}</title></head><body><article><h1>Council story {n}</h1>{paragraphs}</article></body></html>"


def nested(levels: int) -> str:
    return "<html><body>" + "<div>" * levels + "<p>Deep inside the page.</p>" + "</div>" * levels + "</body></html>"


def slow_page() -> str:
    """4 MB of links at every one of 195 nested levels, within the depth limit: trafilatura was still at it after
    7 minutes and 1 GB here, so only the time limit (10 s) stops it."""
    level = "".join(f"<p><a href=/{i}>{i}</a></p>" for i in range(800))
    return "<html><body>" + ("<div>" + level) * 195 + "</div>" * 195 + "</body></html>"


XXE_HTML = ('<!DOCTYPE html [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><html><head><title>Entities</title></head>'
            "<body><article>" + story(99).split("<article>")[1].split("</article>")[0] + "<p>&xxe;</p></article></body></html>")


def letters_by_id(r, prefix: str) -> dict[str, dict]:
    out = {}
    for letter in read_bodies(r, f"{prefix}:dlq"):
        original = json.loads(letter["original"]["body"])
        out[original.get("id") or original.get("url")] = letter
    return out


def test_a_cleaner_worker_dead_letters_hostile_pages_and_cleans_the_rest(redis_url, prefix, r, tmp_path):
    normal = raw_articles(20, seed=31) + [{"id": f"html-{n}", "html": story(n), "url": f"https://news.example/html/{n}"} for n in range(5)]
    hostile = {
        "deep-100000": nested(100_000),  # libxml2 stops at 256 levels: refused, not extracted from a stub
        "deep-201": nested(199),  # html, body, 199 divs, p: one level over the limit
        "slow": slow_page(),
        "empty-after-parse": "<html><body>" + "<script>x()</script>" * 1000 + "</body></html>",
    }
    batch = normal[:10] + [{"id": k, "html": v} for k, v in hostile.items()] + [{"id": "xxe", "html": XXE_HTML}] + normal[10:]
    env = worker_env(redis_url, prefix, f"sqlite:///{tmp_path / 'db.sqlite'}", tmp_path)
    workers = Workers(env, tmp_path)
    try:
        workers.start("cleaner")
        push(r, f"{prefix}:raw", batch)
        expected = len(normal) + 1  # the page with entities is cleaned, unexpanded
        wait_until(lambda: r.xlen(f"{prefix}:cleaned") + r.xlen(f"{prefix}:dlq") >= len(batch), timeout=180,
                   what="every article cleaned or dead-lettered")
        assert workers.alive() == ["cleaner-0"], workers.logs()
        cleaned = {a["id"]: a for a in read_bodies(r, f"{prefix}:cleaned")}
        assert len(cleaned) == expected and set(cleaned) == {a["id"] for a in normal} | {"xxe"}
        assert all("Lyon" in cleaned[f"html-{n}"]["text"] for n in range(5))
        letters = letters_by_id(r, prefix)
        assert set(letters) == set(hostile), letters.keys()
        assert "html nests elements more than 200 deep" in letters["deep-100000"]["error"]
        assert "html nests elements more than 200 deep" in letters["deep-201"]["error"]
        assert "extraction took longer than 10 s" in letters["slow"]["error"]
        assert "no extractable text" in letters["empty-after-parse"]["error"]
        assert all(letter["permanent"] and letter["stage"] == "cleaner" for letter in letters.values())
        assert r.xpending(f"{prefix}:raw", f"{prefix}:cleaner")["pending"] == 0
        assert not any(m in everything_in_redis(r, prefix) for m in PASSWD_MARKERS)
        # Still alive, and still working: a new article after the hostile batch is cleaned.
        push(r, f"{prefix}:raw", [{"id": "after", "html": story(7)}])
        wait_until(lambda: any(a["id"] == "after" for a in read_bodies(r, f"{prefix}:cleaned")), timeout=60, what="the article after")
        assert workers.alive() == ["cleaner-0"], workers.logs()
    finally:
        workers.stop()


XXE_FEED = """<?xml version="1.0"?>
<!DOCTYPE rss [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<rss version="2.0"><channel><title>&xxe;</title><item><title>&xxe;</title><link>{base}/xxe-item</link></item></channel></rss>"""

LAUGHS_FEED = """<?xml version="1.0"?>
<!DOCTYPE rss [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;"><!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">
<!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;"><!ENTITY e "&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;"><!ENTITY f "&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;">
<!ENTITY g "&f;&f;&f;&f;&f;&f;&f;&f;&f;&f;"><!ENTITY h "&g;&g;&g;&g;&g;&g;&g;&g;&g;&g;"><!ENTITY i "&h;&h;&h;&h;&h;&h;&h;&h;&h;&h;">]>
<rss version="2.0"><channel><title>&i;</title><item><title>&i;</title><link>{base}/laughs-item</link></item></channel></rss>"""

DTD_SITEMAP = """<?xml version="1.0"?>
<!DOCTYPE urlset SYSTEM "{base}/evil.dtd">
<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"><url><loc>{base}/dtd-item</loc></url></urlset>"""


def test_fetcher_and_cleaner_workers_survive_bombs_entity_attacks_and_deep_pages(redis_url, prefix, r, tmp_path):
    with LocalServer() as server:
        base = server.url("").rstrip("/")
        html = "text/html; charset=utf-8"
        for n in range(3):
            server.routes[f"/story/{n}"] = page(gzip.compress(story(n).encode()), content_type=html, Content_Encoding="gzip")
        server.routes["/bomb"] = page(gzip.compress(b"\0" * (10 * MB), 9), content_type=html, Content_Encoding="gzip")
        server.routes["/nested-bomb"] = page(gzip.compress(gzip.compress(b"\0" * (100 * MB), 9), 9), content_type=html,
                                             Content_Encoding="gzip, gzip")
        server.routes["/members-bomb"] = page(b"".join(gzip.compress(b" " * MB, 9) for _ in range(8)), content_type=html,
                                              Content_Encoding="gzip")
        server.routes["/brotli"] = page(b"\x1b\x03\x00\xf8\xa5\x40\x02", content_type=html, Content_Encoding="br")
        server.routes["/deep"] = page(gzip.compress(nested(100_000).encode(), 9), content_type=html, Content_Encoding="gzip")
        links = ["/story/0", "/bomb", "/story/1", "/nested-bomb", "/members-bomb", "/brotli", "/deep", "/story/2"]
        items = "".join(f"<item><title>{p}</title><link>{base}{p}</link></item>" for p in links)
        server.routes["/news.xml"] = page(f'<?xml version="1.0"?><rss version="2.0"><channel><title>n</title>{items}</channel></rss>',
                                          content_type="application/rss+xml")
        server.routes["/xxe.xml"] = page(XXE_FEED.format(base=base), content_type="application/rss+xml")
        server.routes["/laughs.xml"] = page(LAUGHS_FEED.format(base=base), content_type="application/rss+xml")
        server.routes["/sitemap.xml"] = page(DTD_SITEMAP.format(base=base), content_type="application/xml")
        server.routes["/evil.dtd"] = page('<!ENTITY passwd SYSTEM "file:///etc/passwd">', content_type="application/xml-dtd")
        sources = tmp_path / "sources.toml"
        sources.write_text("\n".join(
            f'[[sources]]\nname = "{name}"\nkind = "{kind}"\nurl = "{base}{path}"\ninterval_s = 600\n'
            for name, kind, path in (("news", "feed", "/news.xml"), ("xxe", "feed", "/xxe.xml"),
                                     ("laughs", "feed", "/laughs.xml"), ("dtd", "sitemap", "/sitemap.xml"))))
        env = worker_env(redis_url, prefix, f"sqlite:///{tmp_path / 'db.sqlite'}", tmp_path,
                         NEWSFLOW_SOURCES_FILE=str(sources), NEWSFLOW_FETCH_HOST_INTERVAL_S="0",
                         NEWSFLOW_FETCH_ALLOW_PRIVATE="1", NEWSFLOW_FETCH_ALLOWED_PORTS=str(server.port))
        workers = Workers(env, tmp_path)
        try:
            workers.start("fetcher")
            workers.start("cleaner")

            def settled() -> bool:
                states = [r.hget(f"{prefix}:sources:{name}", "last_poll") for name in ("news", "xxe", "laughs", "dtd")]
                return all(states) and r.xlen(f"{prefix}:cleaned") >= 3 and r.xlen(f"{prefix}:dlq") >= 5

            wait_until(settled, timeout=180, what="the sources polled, the stories cleaned, the hostile pages dead-lettered")
            assert sorted(workers.alive()) == ["cleaner-1", "fetcher-0"], workers.logs()
            cleaned = read_bodies(r, f"{prefix}:cleaned")
            assert sorted(a["url"] for a in cleaned) == [f"{base}/story/{n}" for n in range(3)]
            letters = {}
            for letter in read_bodies(r, f"{prefix}:dlq"):
                body = json.loads(letter["original"]["body"])
                letters[body["url"]] = letter
            assert set(letters) == {f"{base}{p}" for p in ("/bomb", "/nested-bomb", "/members-bomb", "/brotli", "/deep")}
            for path in ("/bomb", "/nested-bomb", "/members-bomb"):
                assert letters[f"{base}{path}"]["stage"] == "fetcher"
                assert "too large after decompression" in letters[f"{base}{path}"]["error"]
            assert "Content-Encoding br" in letters[f"{base}/brotli"]["error"]
            deep = letters[f"{base}/deep"]
            assert deep["stage"] == "cleaner" and "html nests elements more than 200 deep" in deep["error"]
            for name, reason in (("xxe", b"unsafe feed refused"), ("laughs", b"unsafe feed refused"), ("dtd", b"unsafe sitemap refused")):
                state = r.hgetall(f"{prefix}:sources:{name}")
                assert int(state[b"failures"]) >= 1 and reason in state[b"last_error"], (name, state)
            assert server.hits("/evil.dtd") == [] and server.hits("/xxe-item") == [] and server.hits("/laughs-item") == []
            assert not any(m in everything_in_redis(r, prefix) for m in PASSWD_MARKERS)
            for stream, group in ((f"{prefix}:fetch", f"{prefix}:fetcher"), (f"{prefix}:raw", f"{prefix}:cleaner")):
                assert r.xpending(stream, group)["pending"] == 0
            assert sorted(workers.alive()) == ["cleaner-1", "fetcher-0"], workers.logs()
        finally:
            workers.stop()
