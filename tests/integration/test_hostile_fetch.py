"""Hostile responses against the fetcher, from a local HTTP server, with a real Redis: decompression bombs (gzip,
deflate, nested, concatenated), encodings we cannot decode, entity attacks in feeds and sitemaps, and feeds and
sitemap indexes far over the item limits."""

from __future__ import annotations

import asyncio
import gzip
import json
import tracemalloc
import zlib

import pytest
import redis.asyncio as aredis

from services.fetcher.app import spec
from services.fetcher.http import PoliteFetcher
from services.fetcher.scheduler import MAX_CHILD_SITEMAPS, Scheduler
from services.fetcher.sources import Source
from services.fetcher.urls import SeenUrls
from shared.errors import PermanentError
from shared.settings import Settings
from shared.transport import Entry, StageRunner
from tests.helpers import LAUGHS_PROLOGUE, everything_in_redis, polite_fetcher
from tests.httpserver import page

# The local test servers are on 127.0.0.1 and random ports: the SSRF guard's address and port rules are lifted.
FAST = dict(host_interval_s=0.0, backoff_base_s=0.01, backoff_cap_s=0.05, timeout_s=10.0, allow_private=True,
            allowed_ports=None, obey_robots=False)
MB = 1024 * 1024
CAP = 1 * MB
PASSWD_MARKERS = ("root:x:0:0", "/bin/bash", "/usr/sbin/nologin", "daemon:")

# Built once, before any memory is traced: 10 MB of zeros is about 10 KB of gzip.
ZEROS = b"\0" * (10 * MB)
BOMB = gzip.compress(ZEROS, 9)
NESTED_BOMB = gzip.compress(gzip.compress(b"\0" * (100 * MB), 9), 9)  # Content-Encoding: gzip, gzip
CONCATENATED_BOMB = b"".join(gzip.compress(b"\0" * (MB // 2), 9) for _ in range(20))  # 20 members of 512 KB
DEFLATE_BOMB = zlib.compress(ZEROS, 9)
HTML = "<html><head><title>A normal page</title></head><body><p>" + "A sentence of an ordinary story. " * 2000 + "</p></body></html>"


def gz(status: int, body: bytes, encoding: str = "gzip", content_type: str = "text/html; charset=utf-8", **headers: str):
    return page(body, status, content_type=content_type, Content_Encoding=encoding, **headers)


@pytest.fixture
async def fetcher(redis_url, prefix):
    async with polite_fetcher(redis_url, prefix, **FAST, max_bytes=CAP) as f:
        yield f


# -- decompression bombs ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("streamed", [False, True], ids=["content-length", "no-length"])
async def test_gzip_bomb_is_refused_once_the_decoded_size_passes_the_cap(server, fetcher, streamed):
    assert len(BOMB) < 20_000 < CAP  # on the wire it is small: only the decoded size can catch it
    extra = {"X_No_Length": "1"} if streamed else {}
    server.routes["/bomb"] = gz(200, BOMB, **extra)
    with pytest.raises(PermanentError, match=r"too large after decompression: over the 1,048,576-byte limit"):
        await fetcher.fetch(server.url("/bomb"))


async def test_a_bomb_never_takes_more_memory_than_the_cap(server, fetcher):
    """Measured with tracemalloc (allocations, not time): httpx's own decoding would inflate the whole 10 KB
    chunk at once, 10 MB; the fetcher stops within a decompression step of the 1 MB cap."""
    server.routes["/bomb"] = gz(200, BOMB)
    server.routes["/nested"] = gz(200, NESTED_BOMB, "gzip, gzip")
    server.routes["/warm-up"] = gz(200, gzip.compress(HTML.encode()))
    await fetcher.fetch(server.url("/warm-up"))  # the first request's one-time allocations (imports, connections)
    for path in ("/bomb", "/nested"):
        tracemalloc.start()
        try:
            with pytest.raises(PermanentError, match="too large after decompression"):
                await fetcher.fetch(server.url(path))
            _now, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert peak < 2 * CAP, f"{path}: peak {peak:,} bytes traced while fetching"


async def test_nested_concatenated_and_deflate_bombs_are_refused(server, fetcher):
    server.routes["/nested"] = gz(200, NESTED_BOMB, "gzip, gzip")  # 100 MB in a few hundred bytes
    server.routes["/members"] = gz(200, CONCATENATED_BOMB)
    server.routes["/deflate"] = gz(200, DEFLATE_BOMB, "deflate")
    server.routes["/x-gzip"] = gz(200, BOMB, "x-gzip")
    assert len(NESTED_BOMB) < 1000
    for path in ("/nested", "/members", "/deflate", "/x-gzip"):
        with pytest.raises(PermanentError, match="too large after decompression"):
            await fetcher.fetch(server.url(path))


async def test_compressed_pages_under_the_cap_decode_in_full(server, fetcher):
    data = HTML.encode()
    raw = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    server.routes["/gzip"] = gz(200, gzip.compress(data))
    server.routes["/gzip-stream"] = gz(200, gzip.compress(data), X_No_Length="1")
    server.routes["/nested"] = gz(200, gzip.compress(zlib.compress(data)), "deflate, gzip")
    server.routes["/zlib"] = gz(200, zlib.compress(data), "deflate")
    server.routes["/raw-deflate"] = gz(200, raw.compress(data) + raw.flush(), "deflate")
    # Several gzip members make one body (RFC 1952): all of them are decoded, not only the first.
    server.routes["/members"] = gz(200, gzip.compress(data[:5000]) + gzip.compress(data[5000:]))
    server.routes["/identity"] = gz(200, data, "identity")
    for path in ("/gzip", "/gzip-stream", "/nested", "/zlib", "/raw-deflate", "/members", "/identity"):
        result = await fetcher.fetch(server.url(path))
        assert result.text == HTML, path
    # Just under the cap after decompression is fine; one byte over is not.
    server.routes["/at-cap"] = gz(200, gzip.compress(b"a" * CAP))
    server.routes["/over-cap"] = gz(200, gzip.compress(b"a" * (CAP + 1)))
    assert len((await fetcher.fetch(server.url("/at-cap"))).content) == CAP
    with pytest.raises(PermanentError, match="too large after decompression"):
        await fetcher.fetch(server.url("/over-cap"))


async def test_encodings_we_cannot_decode_are_refused_and_never_advertised(server, fetcher):
    server.routes["/br"] = gz(200, b"\x1b\x03\x00\xf8\xa5\x40\x02", "br")
    server.routes["/zstd"] = gz(200, b"\x28\xb5\x2f\xfd", "zstd")
    server.routes["/deep"] = gz(200, gzip.compress(gzip.compress(gzip.compress(gzip.compress(b"<p>x</p>")))), "gzip, gzip, gzip, gzip")
    server.routes["/broken"] = gz(200, b"\x1f\x8b\x08\x00garbage that is not deflate data at all")
    with pytest.raises(PermanentError, match="Content-Encoding br, which the fetcher does not decode"):
        await fetcher.fetch(server.url("/br"))
    with pytest.raises(PermanentError, match="Content-Encoding zstd"):
        await fetcher.fetch(server.url("/zstd"))
    with pytest.raises(PermanentError, match="compressed 4 times over"):
        await fetcher.fetch(server.url("/deep"))
    with pytest.raises(PermanentError, match="cannot decode"):
        await fetcher.fetch(server.url("/broken"))
    accepted = {h.headers.get("accept-encoding") for h in server.requests}
    assert accepted == {"gzip, deflate"}, "brotli and zstd are not installed: never advertised"


async def test_the_stage_dead_letters_bombs_and_publishes_the_rest(server, fetcher, redis_url, prefix, r):
    server.routes["/bomb"] = gz(200, BOMB)
    server.routes["/nested"] = gz(200, NESTED_BOMB, "gzip, gzip")
    server.routes["/members"] = gz(200, CONCATENATED_BOMB)
    server.routes["/story"] = gz(200, gzip.compress(HTML.encode()))
    settings = Settings(stream_prefix=prefix, claim_idle_ms=50)
    runner = StageRunner(spec(fetcher, SeenUrls(fetcher.redis, prefix, 60), settings), settings, aredis.Redis.from_url(redis_url), "c1")
    await runner.ensure_groups()
    for path in ("/bomb", "/story", "/nested", "/members"):
        r.xadd(f"{prefix}:fetch", {"body": json.dumps({"url": server.url(path)})})
    reply = await runner.redis.xreadgroup(runner.group, runner.consumer, {runner.input_stream: ">"}, count=100)
    await runner.handle_batch([Entry(i.decode(), f) for _, entries in reply for i, f in entries])
    raw = [json.loads(f[b"body"]) for _, f in r.xrange(f"{prefix}:raw")]
    assert [a["url"] for a in raw] == [server.url("/story")] and raw[0]["html"] == HTML
    letters = {json.loads(b["original"]["body"])["url"]: b for b in (json.loads(f[b"body"]) for _, f in r.xrange(f"{prefix}:dlq"))}
    assert set(letters) == {server.url(p) for p in ("/bomb", "/nested", "/members")}
    for letter in letters.values():
        assert letter["permanent"] and letter["stage"] == "fetcher"
        assert "too large after decompression" in letter["error"]
    assert r.xpending(f"{prefix}:fetch", f"{prefix}:fetcher")["pending"] == 0
    await runner.redis.aclose()


# -- feeds and sitemaps --------------------------------------------------------------------------------------

def scheduler(fetcher: PoliteFetcher, prefix: str, sources: list[Source], **settings) -> Scheduler:
    return Scheduler(fetcher.redis, Settings(stream_prefix=prefix, **settings), sources, fetcher, SeenUrls(fetcher.redis, prefix, 60))


LAUGHS = LAUGHS_PROLOGUE + """<rss version="2.0"><channel><title>&lol9;</title>
<item><title>&lol9;</title><link>{base}/laughs/1</link><description>&lol9;</description></item></channel></rss>"""

XXE = """<?xml version="1.0"?>
<!DOCTYPE rss [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<rss version="2.0"><channel><title>&xxe;</title>
<item><title>&xxe;</title><link>{base}/xxe/1</link><description>&xxe;</description></item></channel></rss>"""

DTD_SITEMAP = """<?xml version="1.0"?>
<!DOCTYPE urlset SYSTEM "{base}/evil.dtd">
<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"><url><loc>{base}/dtd/1</loc></url></urlset>"""

DTD_FEED = """<?xml version="1.0"?>
<!DOCTYPE rss SYSTEM "{base}/evil.dtd">
<rss version="2.0"><channel><title>t</title><item><title>&passwd;</title><link>{base}/dtd-feed/1</link></item></channel></rss>"""

EVIL_DTD = '<!ENTITY passwd SYSTEM "file:///etc/passwd">'


async def test_entity_attacks_in_feeds_and_sitemaps_are_refused_and_no_dtd_is_fetched(server, fetcher, prefix, r):
    base = server.url("").rstrip("/")
    server.routes["/laughs.xml"] = page(LAUGHS.format(base=base), content_type="application/rss+xml")
    server.routes["/xxe.xml"] = page(XXE.format(base=base), content_type="application/rss+xml")
    server.routes["/xxe-utf16.xml"] = page(XXE.format(base=base).replace('"1.0"?>', '"1.0" encoding="utf-16"?>').encode("utf-16"),
                                           content_type="application/rss+xml")
    server.routes["/sitemap.xml"] = page(DTD_SITEMAP.format(base=base), content_type="application/xml")
    server.routes["/dtd-feed.xml"] = page(DTD_FEED.format(base=base), content_type="application/rss+xml")
    server.routes["/evil.dtd"] = page(EVIL_DTD, content_type="application/xml-dtd")
    sources = [Source("laughs", "feed", server.url("/laughs.xml")), Source("xxe", "feed", server.url("/xxe.xml")),
               Source("xxe16", "feed", server.url("/xxe-utf16.xml")), Source("dtd", "sitemap", server.url("/sitemap.xml")),
               Source("dtdfeed", "feed", server.url("/dtd-feed.xml"))]
    sched = scheduler(fetcher, prefix, sources)
    for source in sources:
        await sched.poll(source)
    states = {s.name: r.hgetall(f"{prefix}:sources:{s.name}") for s in sources}
    for name in ("laughs", "xxe", "xxe16"):
        assert states[name][b"failures"] == b"1"
        assert b"unsafe feed refused: it declares entities" in states[name][b"last_error"], states[name]
    assert states["dtd"][b"failures"] == b"1" and b"unsafe sitemap refused: DTDForbidden" in states["dtd"][b"last_error"]
    # A feed that only names an external DTD is read without it: its one item, the entity left unexpanded.
    assert states["dtdfeed"][b"failures"] == b"0"
    (request,) = [json.loads(f[b"body"]) for _, f in r.xrange(f"{prefix}:fetch")]
    assert request["url"] == server.url("/dtd-feed/1") and request["metadata"]["title"] == "&passwd;"
    assert server.hits("/evil.dtd") == [], "no DTD is ever fetched"
    stored = everything_in_redis(r, prefix)
    assert not any(marker in stored for marker in PASSWD_MARKERS)
    assert "lollollol" not in stored


@pytest.fixture
async def big_fetcher(redis_url, prefix):
    """The default 5 MB cap."""
    async with polite_fetcher(redis_url, prefix, **FAST) as f:
        yield f


async def test_a_feed_of_100000_items_and_a_sitemap_index_of_10000_children_are_cut_to_the_limits(server, big_fetcher, prefix, r):
    fetcher, limit = big_fetcher, 60  # over MAX_CHILD_SITEMAPS (50), so that both limits show
    # Relative links keep the 100,000-item feed under the fetcher's 5 MB cap; it is sent gzipped, as feeds are.
    feed = ('<?xml version="1.0"?><rss version="2.0"><channel><title>huge</title>'
            + "".join(f"<item><link>/f/{i}</link></item>" for i in range(100_000)) + "</channel></rss>").encode()
    assert len(feed) > 3 * MB
    server.routes["/huge.xml"] = gz(200, gzip.compress(feed), content_type="application/rss+xml")
    index = ('<?xml version="1.0"?><sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
             + "".join(f"<sitemap><loc>/sm/{i}.xml</loc></sitemap>" for i in range(10_000)) + "</sitemapindex>")
    server.routes["/index.xml"] = page(index, content_type="application/xml")
    for i in range(10_000):
        urls = "".join(f"<url><loc>/s/{i}/{k}</loc></url>" for k in range(100))
        server.routes[f"/sm/{i}.xml"] = page(f'<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{urls}</urlset>',
                                             content_type="application/xml")
    feed_source, index_source = Source("huge", "feed", server.url("/huge.xml")), Source("index", "sitemap", server.url("/index.xml"))
    sched = scheduler(fetcher, prefix, [feed_source, index_source], source_max_items=limit)
    assert await sched.poll(feed_source) == limit
    urls = [json.loads(f[b"body"])["url"] for _, f in r.xrange(f"{prefix}:fetch")]
    assert urls == [server.url(f"/f/{i}") for i in range(limit)], "the first `limit` items, in order"
    added = await sched.poll(index_source)
    children = sorted(int(h.path.split("/")[2].split(".")[0]) for h in server.requests if h.path.startswith("/sm/"))
    assert children == list(range(MAX_CHILD_SITEMAPS)), "only the first children of the index are fetched"
    assert added == MAX_CHILD_SITEMAPS * limit, "each child sitemap gives at most `limit` items"
    assert r.xlen(f"{prefix}:fetch") == limit + MAX_CHILD_SITEMAPS * limit
    assert r.hget(f"{prefix}:sources:index", "failures") == b"0"


async def test_a_gzipped_sitemap_bomb_is_refused(server, fetcher, prefix, r, monkeypatch):
    import services.fetcher.sources as sources_module

    monkeypatch.setattr(sources_module, "MAX_SITEMAP_BYTES", 2 * MB)
    # Valid XML all the way (whitespace between entries), so only the size limit can stop it; a .xml.gz file, so
    # the fetcher passes it on compressed (no Content-Encoding) and the sitemap parser inflates it.
    bomb = gzip.compress(b'<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">' + b" " * (50 * MB) + b"</urlset>", 9)
    assert len(bomb) < 100_000
    server.routes["/sitemap.xml.gz"] = page(bomb, content_type="application/x-gzip")
    source = Source("gz", "sitemap", server.url("/sitemap.xml.gz"))
    await scheduler(fetcher, prefix, [source]).poll(source)
    state = r.hgetall(f"{prefix}:sources:gz")
    assert state[b"failures"] == b"1" and b"sitemap is over 2,097,152 bytes uncompressed" in state[b"last_error"]


async def test_fetch_and_polls_keep_going_after_hostile_documents(server, fetcher, prefix, r):
    """The same fetcher, after bombs and refused feeds, still fetches and polls normally."""
    base = server.url("").rstrip("/")
    server.routes["/bomb"] = gz(200, BOMB)
    server.routes["/xxe.xml"] = page(XXE.format(base=base), content_type="application/rss+xml")
    server.routes["/ok.xml"] = page(f'<rss version="2.0"><channel><item><link>{base}/ok/1</link></item></channel></rss>',
                                    content_type="application/rss+xml")
    server.routes["/story"] = gz(200, gzip.compress(HTML.encode()))
    sources = [Source("xxe", "feed", server.url("/xxe.xml")), Source("ok", "feed", server.url("/ok.xml"))]
    sched = scheduler(fetcher, prefix, sources)
    results = await asyncio.gather(fetcher.fetch(server.url("/bomb")), fetcher.fetch(server.url("/story")),
                                   sched.poll(sources[0]), sched.poll(sources[1]), return_exceptions=True)
    assert isinstance(results[0], PermanentError) and results[1].text == HTML
    assert results[2] == 0 and results[3] == 1
