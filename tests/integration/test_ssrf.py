"""The SSRF guard in the real fetcher and stage: refused URLs never reach a server and are dead-lettered with why.

Only 127.0.0.1 is ever contacted. Other addresses (10.0.0.1, 169.254.169.254, a "public" one) are either refused
before any connection, or handed to a stub connector that records them; names resolve through a stub resolver."""

from __future__ import annotations

import json
import socket

import httpcore
import pytest
import redis.asyncio as aredis

from services.fetcher import guard
from services.fetcher.app import spec
from services.fetcher.http import FetchConfig, PoliteFetcher
from services.fetcher.sources import Source
from services.fetcher.urls import SeenUrls
from shared.settings import Settings
from shared.transport import Entry, StageRunner
from tests.httpserver import LocalServer, page

PUBLIC = "93.184.216.34"  # what the stub resolver calls public; never connected to


@pytest.fixture
def server():
    with LocalServer() as s:
        s.routes["/a"] = page("<p>a local page</p>")
        s.routes["/final"] = page("<p>followed</p>")
        yield s


@pytest.fixture
def names(monkeypatch):
    """A stub DNS: the test fills it; an unknown name fails to resolve, so no real lookup ever happens."""
    table: dict[str, list] = {}
    asked: list[str] = []

    async def resolve(host: str, port: int) -> list[str]:
        asked.append(host)
        answers = table.get(host)
        if not answers:
            raise socket.gaierror(socket.EAI_NONAME, f"stub DNS does not know {host}")
        return list(answers.pop(0) if len(answers) > 1 else answers[0])

    monkeypatch.setattr(guard, "resolve", resolve)
    table["asked"] = asked  # type: ignore[assignment]
    return table


def make(redis_url: str, prefix: str, server: LocalServer, **config) -> PoliteFetcher:
    """The default guard (no private addresses), with the test server's port allowed, so that a refusal of
    127.0.0.1 is the address rule's and not the port rule's."""
    base = dict(host_interval_s=0.0, backoff_base_s=0.01, backoff_cap_s=0.05, timeout_s=5.0, max_attempts=2,
                allowed_ports=(80, 443, server.port))
    return PoliteFetcher(aredis.Redis.from_url(redis_url), prefix, FetchConfig(**{**base, **config}))


def local_source(server: LocalServer) -> Source:
    """A source whose own server (127.0.0.1) is allowed, and nothing else private."""
    return Source("local", "url", server.url("/"), allowed_hosts=("127.0.0.1",), allowed_ports=(server.port,))


# -- the fetcher -----------------------------------------------------------------------------------------------

async def test_private_addresses_are_refused_before_any_connection(server, names, redis_url, prefix):
    names["news.example"] = [["127.0.0.1"]]
    f = make(redis_url, prefix, server)
    port = server.port
    cases = {
        f"http://127.0.0.1:{port}/a": "refused: 127.0.0.1 is a loopback address",
        f"http://localhost:{port}/a": "refused: localhost is a loopback name",
        f"http://[::1]:{port}/a": "refused: ::1 is a loopback address",
        "http://10.0.0.1/a": "refused: 10.0.0.1 is a private address",
        "http://169.254.169.254/latest/meta-data/": "refused: 169.254.169.254 is a cloud metadata address",
        f"http://news.example:{port}/a": "refused: news.example resolves to 127.0.0.1, a loopback address",
        f"http://[::ffff:127.0.0.1]:{port}/a": "loopback address",
        "file:///etc/passwd": "refused: scheme 'file' is not allowed, only http(s)",
        "gopher://127.0.0.1:6379/_FLUSHALL": "refused: scheme 'gopher' is not allowed",
        f"http://user:secret@127.0.0.1:{port}/a": "refused: URLs with user info",
        "http://example.org:8080/a": "refused: port 8080 of example.org is not an allowed port",
    }
    try:
        for url, reason in cases.items():
            with pytest.raises(guard.Refused) as exc:
                await f.fetch(url)
            assert reason in str(exc.value), (url, str(exc.value))
        assert server.requests == [], "no refused URL reached the server, robots.txt included"
        assert names["asked"] == ["news.example"], "DNS only for the one name, after the static rules"
    finally:
        await f.aclose()


async def test_allow_private_lifts_the_address_rule(server, redis_url, prefix):
    f = make(redis_url, prefix, server, allow_private=True)
    try:
        assert (await f.fetch(server.url("/a"))).text == "<p>a local page</p>"
        assert (await f.fetch(f"http://localhost:{server.port}/a")).status == 200
        with pytest.raises(guard.Refused, match="port"):
            await f.fetch("http://127.0.0.1:6379/")  # the port rule still holds
    finally:
        await f.aclose()


async def test_a_redirect_from_an_allowed_server_to_a_forbidden_address_is_refused(server, names, redis_url, prefix):
    server.routes["/to-loopback"] = page("", 302, Location=f"http://127.0.0.2:{server.port}/final")
    server.routes["/to-private"] = page("", 301, Location="http://10.0.0.1/admin")
    server.routes["/to-metadata"] = page("", 307, Location="http://169.254.169.254/latest/meta-data/")
    server.routes["/to-name"] = page("", 302, Location=f"http://internal.example:{server.port}/final")
    server.routes["/to-port"] = page("", 302, Location="http://127.0.0.1:6379/")
    server.routes["/same-server"] = page("", 302, Location="/final")
    names["internal.example"] = [["10.9.8.7"]]
    f = make(redis_url, prefix, server, sources=(local_source(server),))
    try:
        # The private rule is lifted for the first hop's server only: the hop is fetched, its redirect target is not.
        for path, reason in (("/to-loopback", "refused: 127.0.0.2 is a loopback address"),
                             ("/to-private", "refused: 10.0.0.1 is a private address"),
                             ("/to-metadata", "refused: 169.254.169.254 is a cloud metadata address"),
                             ("/to-name", "refused: internal.example resolves to 10.9.8.7, a private address"),
                             ("/to-port", "refused: port 6379")):
            with pytest.raises(guard.Refused) as exc:
                await f.fetch(server.url(path), source="local")
            assert reason in str(exc.value), (path, str(exc.value))
            assert len(server.hits(path)) == 1, "the allowed first hop was fetched"
        assert server.hits("/final") == []
        result = await f.fetch(server.url("/same-server"), source="local")
        assert result.text == "<p>followed</p>" and result.redirects == [server.url("/same-server")]
        # Without the source's exception the first hop is refused too.
        with pytest.raises(guard.Refused, match="127.0.0.1 is a loopback address"):
            await f.fetch(server.url("/to-loopback"))
        assert len(server.hits("/to-loopback")) == 1
    finally:
        await f.aclose()


class ToLocal(httpcore.AsyncNetworkBackend):
    """The TCP connector under the guard's backend: records every address it is asked for, and plays the public
    host by connecting to the local test server instead; anything else fails without a connection."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.real = httpcore.AnyIOBackend()
        self.asked: list[tuple[str, int]] = []

    async def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):
        self.asked.append((host, port))
        if (host, port) == (PUBLIC, 80):
            return await self.real.connect_tcp("127.0.0.1", self.port, timeout=timeout)
        raise httpcore.ConnectError(f"stub: not connecting to {host}:{port}")

    async def sleep(self, seconds: float) -> None:
        await self.real.sleep(seconds)


async def test_dns_rebinding_the_connection_goes_to_the_vetted_address(server, names, redis_url, prefix):
    server.routes["/robots.txt"] = page("User-agent: *\nAllow: /\n", content_type="text/plain")
    # First answer public (vetted), every later one loopback: a rebinding attack.
    names["rebind.example"] = [[PUBLIC], ["127.0.0.1"]]
    f = make(redis_url, prefix, server)
    f.backend.inner = ToLocal(server.port)
    try:
        result = await f.fetch("http://rebind.example/a")
        assert result.text == "<p>a local page</p>" and result.final_url == "http://rebind.example/a"
        assert set(f.backend.inner.asked) == {(PUBLIC, 80)}, "only the vetted address was connected to"
        assert names["asked"] == ["rebind.example"], "resolved once per hop: the connect used the pinned answer"
        assert [r.headers["host"] for r in server.requests] == ["rebind.example", "rebind.example"], \
            "robots.txt and the page, with the Host header on the name"
        # The next fetch resolves again, gets 127.0.0.1, and is refused before any connection.
        with pytest.raises(guard.Refused, match="rebind.example resolves to 127.0.0.1, a loopback address"):
            await f.fetch("http://rebind.example/a", conditional=False)
        assert len(server.requests) == 2
    finally:
        await f.aclose()


async def test_rebinding_on_a_fresh_connection_is_refused_at_connect(server, names, redis_url, prefix):
    """A connection the fetch did not pin (robots.txt redirected to another name) is resolved and vetted by the
    backend itself: the second answer, 127.0.0.1, is refused there and never connected to."""
    server.routes["/robots.txt"] = page("", 302, Location="http://cdn.example/robots.txt")
    names["site.example"] = [[PUBLIC]]
    names["cdn.example"] = [["127.0.0.1"]]
    f = make(redis_url, prefix, server)
    f.backend.inner = ToLocal(server.port)
    try:
        assert (await f.fetch("http://site.example/a")).text == "<p>a local page</p>", "robots.txt unreachable: no rules"
        assert set(f.backend.inner.asked) == {(PUBLIC, 80)}
        assert "cdn.example" in names["asked"]
    finally:
        await f.aclose()


# -- the stage: refused URLs are dead letters with the reason -------------------------------------------------

async def test_the_stage_dead_letters_refused_urls_with_the_reason(server, names, redis_url, prefix, r):
    server.routes["/jump"] = page("", 302, Location=f"http://127.0.0.2:{server.port}/final")
    names["news.example"] = [["127.0.0.1"]]
    fetcher = make(redis_url, prefix, server, sources=(local_source(server),))
    settings = Settings(stream_prefix=prefix, claim_idle_ms=50)
    runner = StageRunner(spec(fetcher, SeenUrls(fetcher.redis, prefix, 60), settings), settings,
                         aredis.Redis.from_url(redis_url), "c1")
    await runner.ensure_groups()
    port = server.port
    expected = {
        server.url("/a"): "refused: 127.0.0.1 is a loopback address",
        f"http://localhost:{port}/a": "refused: localhost is a loopback name",
        f"http://[::1]:{port}/a": "refused: ::1 is a loopback address",
        "http://10.0.0.1/a": "refused: 10.0.0.1 is a private address",
        "http://169.254.169.254/latest/meta-data/": "refused: 169.254.169.254 is a cloud metadata address",
        f"http://news.example:{port}/a": "refused: news.example resolves to 127.0.0.1, a loopback address",
        server.url("/jump"): "refused: 127.0.0.2 is a loopback address",
        "file:///etc/passwd": "refused: scheme 'file' is not allowed",
        "gopher://127.0.0.1:6379/_FLUSHALL": "refused: scheme 'gopher' is not allowed",
        f"http://user:secret@127.0.0.1:{port}/a": "refused: URLs with user info",
        "http://example.org:8080/a": "refused: port 8080 of example.org is not an allowed port",
    }
    for url in expected:
        body = {"url": url, "source": "local"} if url == server.url("/jump") else {"url": url, "source": "web"}
        r.xadd(f"{prefix}:fetch", {"body": json.dumps(body)})
    try:
        reply = await runner.redis.xreadgroup(runner.group, runner.consumer, {runner.input_stream: ">"}, count=100)
        await runner.handle_batch([Entry(i.decode(), fields) for _, entries in reply for i, fields in entries])
        letters = {json.loads(f[b"body"])["original"]["body"]: json.loads(f[b"body"]) for _, f in r.xrange(f"{prefix}:dlq")}
        by_url = {json.loads(body)["url"]: letter for body, letter in letters.items()}
        assert set(by_url) == set(expected)
        for url, reason in expected.items():
            letter = by_url[url]
            assert reason in letter["error"], (url, letter["error"])
            assert letter["stage"] == "fetcher" and letter["permanent"] is True
        assert r.xlen(f"{prefix}:raw") == 0
        assert r.xpending(f"{prefix}:fetch", f"{prefix}:fetcher")["pending"] == 0
        assert {req.path for req in server.requests} == {"/robots.txt", "/jump"}, "only the allowed source's first hop"
    finally:
        await fetcher.aclose()
        await runner.redis.aclose()
