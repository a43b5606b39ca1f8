"""The fetcher against a real Redis and local HTTP servers: politeness, conditional GET, retries, the stage, the scheduler."""

from __future__ import annotations

import asyncio
import json

import pytest
import redis.asyncio as aredis

from services.fetcher.app import spec
from services.fetcher.http import FetchConfig, PoliteFetcher
from services.fetcher.scheduler import Scheduler
from services.fetcher.sources import Source
from services.fetcher.urls import SeenUrls
from shared.errors import PermanentError, TransientError
from shared.settings import Settings
from shared.topology import Topology
from shared.transport import Entry, StageRunner, admin
from shared.transport.reclaim import reclaim_once
from tests.helpers import polite_fetcher
from tests.httpserver import conditional, page, sequence

# The local test servers are on 127.0.0.1 and random ports: the SSRF guard's address and port rules are lifted.
FAST = dict(host_interval_s=0.0, backoff_base_s=0.01, backoff_cap_s=0.05, timeout_s=5.0, allow_private=True, allowed_ports=None)


@pytest.fixture
async def fetcher(redis_url, prefix):
    async with polite_fetcher(redis_url, prefix, **FAST) as f:
        yield f


def make(redis_url: str, prefix: str, **config) -> PoliteFetcher:
    return PoliteFetcher(aredis.Redis.from_url(redis_url), prefix, FetchConfig(**{**FAST, **config}))


# -- the HTTP client ---------------------------------------------------------------------------------------

async def test_robots_disallow_is_honoured_and_cached(server, fetcher):
    server.routes["/robots.txt"] = page("User-agent: *\nDisallow: /private\n", content_type="text/plain")
    server.routes["/private/story"] = page("<p>secret</p>")
    server.routes["/public/story"] = page("<p>hello</p>")
    with pytest.raises(PermanentError, match="robots.txt disallows"):
        await fetcher.fetch(server.url("/private/story"))
    assert (await fetcher.fetch(server.url("/public/story"))).text == "<p>hello</p>"
    assert server.hits("/private/story") == []
    assert len(server.hits("/robots.txt")) == 1, "robots.txt is cached per host"


async def test_robots_for_our_agent_only(server, redis_url, prefix):
    server.routes["/robots.txt"] = page("User-agent: newsflow\nDisallow: /\n\nUser-agent: *\nAllow: /\n", content_type="text/plain")
    server.routes["/a"] = page("<p>a</p>")
    f = make(redis_url, prefix, user_agent="newsflow/0.1 (+test)")
    with pytest.raises(PermanentError, match="robots"):
        await f.fetch(server.url("/a"))
    await f.aclose()


async def test_conditional_get_after_validators_are_saved(server, fetcher):
    server.routes["/etag"] = conditional("<p>same</p>", etag='"v1"')
    first = await fetcher.fetch(server.url("/etag"))
    assert first.status == 200 and not first.not_modified
    second = await fetcher.fetch(server.url("/etag"))
    assert second.status == 200, "validators are only used once saved"
    await fetcher.save_validators(first)
    third = await fetcher.fetch(server.url("/etag"))
    assert third.not_modified and third.status == 304
    hits = server.hits("/etag")
    assert hits[-1].headers["if-none-match"] == '"v1"' and hits[-1].headers["if-modified-since"]
    assert (await fetcher.fetch(server.url("/etag"), conditional=False)).status == 200


async def test_429_with_retry_after_then_200(server, fetcher):
    server.routes["/busy"] = sequence(page("slow down", 429, Retry_After="1"), page("<p>ok</p>"))
    result = await fetcher.fetch(server.url("/busy"))
    assert result.status == 200 and result.text == "<p>ok</p>"
    first, second = server.hits("/busy")
    assert second.at - first.at >= 0.9, "Retry-After was honoured"


async def test_retry_after_too_long_is_a_transient_error(server, redis_url, prefix):
    server.routes["/later"] = page("later", 503, Retry_After="3600")
    f = make(redis_url, prefix, retry_after_max_s=5)
    with pytest.raises(TransientError, match="Retry-After"):
        await f.fetch(server.url("/later"))
    await f.aclose()


async def test_5xx_and_connection_errors_are_retried_then_transient(server, fetcher):
    server.routes["/flaky"] = sequence(page("x", 502), page("x", 500), page("<p>third time</p>"))
    assert (await fetcher.fetch(server.url("/flaky"))).text == "<p>third time</p>"
    server.routes["/down"] = page("x", 503)
    with pytest.raises(TransientError, match="after 3 attempts: HTTP 503"):
        await fetcher.fetch(server.url("/down"))
    assert len(server.hits("/down")) == 3
    from tests.helpers import free_port

    with pytest.raises(TransientError, match="ConnectError"):
        await fetcher.fetch(f"http://127.0.0.1:{free_port()}/nothing-listens")


async def test_4xx_is_permanent(server, fetcher):
    server.routes["/gone"] = page("gone", 410)
    with pytest.raises(PermanentError, match="HTTP 410"):
        await fetcher.fetch(server.url("/gone"))
    with pytest.raises(PermanentError, match="HTTP 404"):
        await fetcher.fetch(server.url("/missing"))
    assert len(server.hits("/gone")) == 1


async def test_oversized_bodies_are_refused_declared_or_streamed(server, redis_url, prefix):
    server.routes["/big"] = page("<p>" + "x" * 5000 + "</p>")
    server.routes["/big-stream"] = page("<p>" + "x" * 5000 + "</p>", X_No_Length="1")
    server.routes["/small-stream"] = page("<p>small</p>", X_No_Length="1")
    f = make(redis_url, prefix, max_bytes=2048)
    with pytest.raises(PermanentError, match="2,048-byte limit"):
        await f.fetch(server.url("/big"))
    with pytest.raises(PermanentError, match="2,048-byte limit"):
        await f.fetch(server.url("/big-stream"))
    assert (await f.fetch(server.url("/small-stream"))).text == "<p>small</p>"
    await f.aclose()


async def test_redirects_are_followed_bounded_and_the_final_url_recorded(server, redis_url, prefix):
    server.routes["/old"] = page("", 301, Location="/middle?utm_source=x")
    server.routes["/middle"] = page("", 302, Location=server.url("/new"))
    server.routes["/new"] = page("<p>new home</p>")
    f = make(redis_url, prefix)
    result = await f.fetch(server.url("/old"))
    assert result.final_url == server.url("/new") and result.text == "<p>new home</p>"
    assert result.redirects == [server.url("/old"), server.url("/middle")]
    server.routes["/loop"] = page("", 302, Location="/loop2")
    server.routes["/loop2"] = page("", 302, Location="/loop")
    with pytest.raises(PermanentError, match="redirects"):
        await f.fetch(server.url("/loop"))
    await f.aclose()


async def test_latin1_page_decoded(server, fetcher):
    text = "<html><body><p>À Zürich, les élèves ont célébré la fête.</p></body></html>"
    server.routes["/latin"] = page(text.encode("latin-1"), content_type="text/html; charset=iso-8859-1")
    server.routes["/meta"] = page(text.replace("<body>", '<head><meta charset="ISO-8859-1"></head><body>').encode("latin-1"), content_type="text/html")
    assert (await fetcher.fetch(server.url("/latin"))).text == text
    assert "célébré" in (await fetcher.fetch(server.url("/meta"))).text


async def test_per_host_concurrency_and_interval(server, redis_url, prefix):
    server.routes["/p"] = page("<p>p</p>")
    f = make(redis_url, prefix, host_interval_s=0.2, host_concurrency=1)
    await asyncio.gather(*(f.fetch(server.url(f"/p?n={i}")) for i in range(4)))
    hits = sorted(r.at for r in server.requests if r.path.startswith("/p"))
    assert all(b - a >= 0.18 for a, b in zip(hits, hits[1:])), hits
    await f.aclose()


# -- the stage -----------------------------------------------------------------------------------------------

def make_runner(redis_url: str, prefix: str, fetcher: PoliteFetcher, **overrides) -> StageRunner:
    settings = Settings(stream_prefix=prefix, claim_idle_ms=overrides.pop("claim_idle_ms", 50), **overrides)
    seen = SeenUrls(fetcher.redis, prefix, settings.fetch_seen_ttl_s)
    return StageRunner(spec(fetcher, seen, settings), settings, aredis.Redis.from_url(redis_url), "c1")


async def run_batch(runner: StageRunner) -> None:
    reply = await runner.redis.xreadgroup(runner.group, runner.consumer, {runner.input_stream: ">"}, count=100)
    await runner.handle_batch([Entry(i.decode(), f) for _, entries in reply for i, f in entries])


def bodies(r, stream: str) -> list[dict]:
    return [json.loads(f[b"body"]) for _, f in r.xrange(stream)]


async def test_stage_publishes_raw_skips_seen_and_dead_letters_permanent_failures(server, fetcher, redis_url, prefix, r):
    server.routes["/robots.txt"] = page("User-agent: *\nDisallow: /private\n", content_type="text/plain")
    server.routes["/story"] = page("<html><body><p>A story.</p></body></html>")
    server.routes["/old"] = page("", 301, Location="/moved")
    server.routes["/moved"] = page("<p>moved</p>")
    server.routes["/gone"] = page("gone", 404)
    server.routes["/image"] = page(b"\x89PNG", content_type="image/png")
    runner = make_runner(redis_url, prefix, fetcher)
    await runner.ensure_groups()
    fetch = f"{prefix}:fetch"
    story_req = {"url": server.url("/story?utm_source=feed"), "source": "s1", "language": "en", "category": "world",
                 "metadata": {"title": "A title", "published_at": "2025-03-04T10:00:00Z", "feed": "f"}}
    reqs = [
        story_req,
        {**story_req, "url": server.url("/story#comments")},  # the same page: one of the two is skipped
        {"url": server.url("/old")},
        {"url": server.url("/gone")},
        {"url": server.url("/private/x")},
        {"url": server.url("/image")},
        {"url": "ftp://example.com/x"},
        {"source": "no url"},
    ]
    for req in reqs:
        r.xadd(fetch, {"body": json.dumps(req)})
    await run_batch(runner)
    raw = bodies(r, f"{prefix}:raw")
    assert sorted(a["url"] for a in raw) == [server.url("/moved"), server.url("/story")]
    raw.sort(key=lambda a: a["url"] != server.url("/story"))
    story, moved = raw
    assert story["html"].startswith("<html>") and story["source"] == "s1" and story["language"] == "en"
    assert story["title"] == "A title" and story["published_at"].startswith("2025-03-04T10:00:00")
    assert story["metadata"]["category"] == "world" and story["metadata"]["status"] == 200 and story["metadata"]["fetched_at"]
    assert story["metadata"]["feed"] == "f"
    assert moved["metadata"]["redirects"] == [server.url("/old")] and moved["metadata"]["requested_url"] == server.url("/old")
    letters = {json.loads(b["original"]["body"]).get("url", "none"): b for b in bodies(r, f"{prefix}:dlq")}
    assert "HTTP 404" in letters[server.url("/gone")]["error"]
    assert "robots.txt" in letters[server.url("/private/x")]["error"]
    assert "image/png" in letters[server.url("/image")]["error"]
    assert "http(s)" in letters["ftp://example.com/x"]["error"]
    assert "url" in letters["none"]["error"]
    assert all(letter["stage"] == "fetcher" and letter["permanent"] for letter in letters.values())
    assert len(server.hits("/story")) == 1
    assert r.xpending(fetch, f"{prefix}:fetcher")["pending"] == 0


async def test_304_on_a_second_fetch_publishes_nothing(server, fetcher, redis_url, prefix, r):
    server.routes["/etag"] = conditional("<p>unchanged</p>", etag='"abc"')
    runner = make_runner(redis_url, prefix, fetcher)
    await runner.ensure_groups()
    r.xadd(f"{prefix}:fetch", {"body": json.dumps({"url": server.url("/etag")})})
    await run_batch(runner)
    assert r.xlen(f"{prefix}:raw") == 1
    await runner.spec.process.__self__.seen.release(server.url("/etag"))  # the seen window ran out
    r.xadd(f"{prefix}:fetch", {"body": json.dumps({"url": server.url("/etag")})})
    await run_batch(runner)
    assert r.xlen(f"{prefix}:raw") == 1 and r.xlen(f"{prefix}:dlq") == 0
    assert [h.status for h in server.hits("/etag")] == [200, 304]
    assert r.xpending(f"{prefix}:fetch", f"{prefix}:fetcher")["pending"] == 0


async def test_5xx_retries_via_reclaim_then_dead_letter_without_blocking_batch_mates(server, fetcher, redis_url, prefix, r):
    server.routes["/down"] = page("x", 503)
    server.routes["/fine"] = page("<p>fine</p>")
    runner = make_runner(redis_url, prefix, fetcher, max_deliveries=2)
    await runner.ensure_groups()
    r.xadd(f"{prefix}:fetch", {"body": json.dumps({"url": server.url("/down")})})
    r.xadd(f"{prefix}:fetch", {"body": json.dumps({"url": server.url("/fine")})})
    await run_batch(runner)
    assert [b["url"] for b in bodies(r, f"{prefix}:raw")] == [server.url("/fine")]
    assert r.xpending(f"{prefix}:fetch", f"{prefix}:fetcher")["pending"] == 1
    for _ in range(2):
        await asyncio.sleep(0.1)
        await reclaim_once(runner)
    (letter,) = bodies(r, f"{prefix}:dlq")
    assert letter["permanent"] is False and "HTTP 503" in letter["error"] and letter["attempts"] == 3
    assert len(server.hits("/down")) == 2 * 3, "two deliveries of three attempts each"
    assert r.xpending(f"{prefix}:fetch", f"{prefix}:fetcher")["pending"] == 0
    assert not r.exists(SeenUrls(r, prefix, 1).key(server.url("/down"))), "a later poll may try the URL again"


# -- the scheduler -------------------------------------------------------------------------------------------

FEED = """<?xml version="1.0"?><rss version="2.0"><channel><title>F</title>{items}</channel></rss>"""


def feed(urls: list[str]) -> str:
    return FEED.format(items="".join(f"<item><title>t{i}</title><link>{u}</link></item>" for i, u in enumerate(urls)))


async def test_scheduler_enqueues_unseen_items_polls_conditionally_and_records_state(server, fetcher, redis_url, prefix, r):
    server.routes["/feed.xml"] = conditional(feed([server.url(f"/a/{i}?utm_medium=rss") for i in range(5)]), etag='"f1"', content_type="application/rss+xml")
    server.routes["/index.xml"] = page(f"""<sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">
        <sitemap><loc>{server.url('/sm-1.xml')}</loc></sitemap></sitemapindex>""", content_type="application/xml")
    server.routes["/sm-1.xml"] = page(f"""<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9" xmlns:news="http://www.google.com/schemas/sitemap-news/0.9">
        <url><loc>{server.url('/a/3')}</loc></url>
        <url><loc>{server.url('/n/1')}</loc><news:news><news:publication><news:language>fr</news:language></news:publication>
        <news:title>Titre</news:title></news:news></url></urlset>""", content_type="application/xml")
    server.routes["/broken.xml"] = page("oops", 500)
    settings = Settings(stream_prefix=prefix, source_max_backoff_s=600)
    seen = SeenUrls(fetcher.redis, prefix, 60)
    sources = [Source("feed", "feed", server.url("/feed.xml"), interval_s=0.01, category="c"),
               Source("sitemaps", "sitemap", server.url("/index.xml"), interval_s=0.01),
               Source("broken", "feed", server.url("/broken.xml"), interval_s=10)]
    sched = Scheduler(fetcher.redis, settings, sources, fetcher, seen, tick_s=0.01)
    # Serially, so the sitemap sees the feed's items on the stream (seen-set dedup is for fetched URLs).
    assert await sched.poll(sources[0]) == 5
    assert await sched.poll(sources[1]) == 1  # /n/1: /a/3 is already queued
    assert await sched.poll(sources[2]) == 0
    reqs = bodies(r, f"{prefix}:fetch")
    assert [q["url"] for q in reqs[:5]] == [server.url(f"/a/{i}") for i in range(5)]
    assert reqs[0]["source"] == "feed" and reqs[0]["category"] == "c" and reqs[0]["metadata"]["title"] == "t0"
    assert reqs[-1]["url"] == server.url("/n/1") and reqs[-1]["language"] == "fr" and reqs[-1]["metadata"]["title"] == "Titre"
    # Second poll: the feed answers 304; the sitemap's URLs are queued already.
    assert await sched.run_once() == 2  # the broken source is not due yet (backing off)
    assert server.hits("/feed.xml")[-1].status == 304 and len(server.hits("/sm-1.xml")) == 2
    assert r.xlen(f"{prefix}:fetch") == 6
    # Once the queued marker is gone, only URLs nobody fetched within the seen window are queued again.
    r.delete(*r.keys(f"{prefix}:queued:url:*"))
    await seen.claim(server.url("/n/1"), "fetched")
    assert await sched.poll(sources[1]) == 1 and bodies(r, f"{prefix}:fetch")[-1]["url"] == server.url("/a/3")
    info = admin.status(r, Topology(prefix))
    assert f"{prefix}:fetch" in info["streams"]
    st = info["sources"]
    assert st["feed"]["failures"] == "0" and st["feed"]["last_ok"] and st["feed"]["kind"] == "feed"
    assert st["broken"]["failures"] == "1" and "HTTP 500" in st["broken"]["last_error"]
    assert float(st["broken"]["next_poll"]) - float(st["broken"]["last_poll"]) == pytest.approx(20.0)


async def test_scheduler_lock_lets_one_replica_poll(server, fetcher, redis_url, prefix, r):
    server.routes["/feed.xml"] = page(feed([server.url("/a/1")]), content_type="application/rss+xml")
    settings = Settings(stream_prefix=prefix)
    sources = [Source("feed", "feed", server.url("/feed.xml"), interval_s=60)]
    seen = SeenUrls(fetcher.redis, prefix, 60)
    a = Scheduler(fetcher.redis, settings, sources, fetcher, seen)
    b = Scheduler(fetcher.redis, settings, sources, fetcher, seen)
    polled = await asyncio.gather(a.run_once(), b.run_once(), a.run_once())
    assert sum(polled) == 1 and len(server.hits("/feed.xml")) == 1 and r.xlen(f"{prefix}:fetch") == 1


async def test_files_source_pushes_to_raw_once(tmp_path, fetcher, prefix, r):
    (tmp_path / "a.txt").write_text("PARIS (AFP) -- A wire story.")
    (tmp_path / "b.html").write_text("<p>a page</p>")
    settings = Settings(stream_prefix=prefix)
    src = Source("inbox", "files", path=str(tmp_path), interval_s=1, language="fr", category="wire")
    sched = Scheduler(fetcher.redis, settings, [src], fetcher, SeenUrls(fetcher.redis, prefix, 60))
    assert await sched.poll(src) == 2
    assert await sched.poll(src) == 0
    raw = bodies(r, f"{prefix}:raw")
    assert {a["source"] for a in raw} == {"inbox"} and raw[0]["language"] == "fr" and raw[0]["metadata"]["category"] == "wire"


async def test_a_slow_server_times_out_and_is_retried_then_transient(server, redis_url, prefix):
    import time as _time

    def slow(_req):
        _time.sleep(1.0)
        return 200, {"Content-Type": "text/html"}, b"<p>too late</p>"

    server.routes["/slow"] = slow
    fetcher = make(redis_url, prefix, timeout_s=0.2, max_attempts=2)
    with pytest.raises(TransientError, match="after 2 attempts"):
        await fetcher.fetch(server.url("/slow"))
    from tests.helpers import wait_until

    wait_until(lambda: len(server.hits("/slow")) == 2, timeout=10, what="both slow requests logged by the server")
