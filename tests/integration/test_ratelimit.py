"""Per-token rate limits on the push gateway and the query API (shared/ratelimit.py), against a real Redis and
the apps in process; plus: a crash in a handler is a bare 500, never a traceback, in both apps."""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
import redis.asyncio as aredis

from services.api.app import create_app as create_api
from services.gateway.app import create_app as create_gateway
from shared.ratelimit import RateLimiter, token_identity
from shared.settings import Settings
from tests.helpers import free_port

TOKEN = "ratelimit-token-0123456789abcdef"
OTHER = "ratelimit-token-other-0123456789"
WIRE = "GENEVA (Reuters) -- Negotiators agreed on a draft text early on Saturday after two weeks of talks."


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def article(n: int) -> dict[str, Any]:
    return {"id": f"rl-{n}", "text": f"{WIRE} ({n})"}


class FakeDatabase:
    """Stands in for services/api/database.Database: no article exists (404); `boom` makes every call crash."""

    def __init__(self, boom: bool = False) -> None:
        self.boom = boom

    async def call(self, method: str, *args: Any) -> Any:
        if self.boom:
            raise RuntimeError("secret internal detail in /srv/newsflow/services/storage/query.py line 12")
        if method == "search":
            return SimpleNamespace(items=[], next_cursor=None)
        return None


def gateway(settings: Settings, redis: Any, client: tuple[str, int] = ("127.0.0.1", 123)) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=create_gateway(settings, redis), client=client, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://gateway")


def api(settings: Settings, redis: Any, database: Any = None, client: tuple[str, int] = ("127.0.0.1", 123)) -> httpx.AsyncClient:
    app = create_api(settings, redis, database or FakeDatabase())
    transport = httpx.ASGITransport(app=app, client=client, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://api")


async def statuses(client: httpx.AsyncClient, n: int, token: str = TOKEN) -> list[int]:
    out = []
    for i in range(n):
        out.append((await client.post("/v1/articles", json=article(i), headers=bearer(token))).status_code)
    return out


# -- the gateway ---------------------------------------------------------------------------------------------


async def test_a_token_over_its_burst_gets_429_with_retry_after_and_nothing_published(prefix, redis_client, r):
    settings = Settings(stream_prefix=prefix, gateway_tokens=f"{TOKEN},{OTHER}", gateway_rate_limit=0.5, gateway_rate_burst=3)
    async with gateway(settings, redis_client) as gw:
        assert await statuses(gw, 3) == [202, 202, 202]
        refused = await gw.post("/v1/articles", json=article(9), headers=bearer(TOKEN))
        assert refused.status_code == 429, refused.text
        assert refused.headers["retry-after"] == "2", "one request every 2 s: the next token is about 2 s away"
        assert "NEWSFLOW_GATEWAY_RATE_LIMIT" in refused.json()["detail"]
        fetch = await gw.post("/v1/fetch", json={"url": "https://example.org/"}, headers=bearer(TOKEN))
        assert fetch.status_code == 429, "one bucket per token, for every route"
        assert r.xlen(f"{prefix}:raw") == 3 and r.xlen(f"{prefix}:fetch") == 0
        # Another token has its own bucket, and wrong tokens (401) take nothing from anybody's.
        for _ in range(10):
            assert (await gw.post("/v1/articles", json=article(0), headers=bearer(OTHER + "x"))).status_code == 401
        assert await statuses(gw, 4, OTHER) == [202, 202, 202, 429]
        assert (await gw.get("/healthz")).status_code == 200 and (await gw.get("/readyz")).status_code == 200, \
            "probes are never limited"


async def test_replicas_share_one_bucket_per_token(prefix, redis_url, r):
    settings = Settings(stream_prefix=prefix, gateway_tokens=TOKEN, gateway_rate_limit=0.2, gateway_rate_burst=4)
    one, two = aredis.Redis.from_url(redis_url), aredis.Redis.from_url(redis_url)
    try:
        async with gateway(settings, one) as a, gateway(settings, two) as b:
            got = []
            for i in range(8):
                got.append((await (a if i % 2 else b).post("/v1/articles", json=article(i), headers=bearer(TOKEN))).status_code)
    finally:
        await one.aclose()
        await two.aclose()
    assert got == [202] * 4 + [429] * 4, got
    assert r.xlen(f"{prefix}:raw") == 4


async def test_the_bucket_refills_at_the_rate(prefix, redis_client):
    settings = Settings(stream_prefix=prefix, gateway_tokens=TOKEN, gateway_rate_limit=20, gateway_rate_burst=1)
    async with gateway(settings, redis_client) as gw:
        assert await statuses(gw, 2) == [202, 429]
        for _ in range(200):  # a deadline, not a timing assertion: a token comes back after about 50 ms
            status = (await gw.post("/v1/articles", json=article(5), headers=bearer(TOKEN))).status_code
            if status == 202:
                break
            assert status == 429
            await asyncio.sleep(0.02)
        assert status == 202


async def test_keys_name_a_digest_of_the_token_and_expire(prefix, redis_client, r):
    settings = Settings(stream_prefix=prefix, gateway_tokens=TOKEN, gateway_rate_limit=1, gateway_rate_burst=5)
    async with gateway(settings, redis_client) as gw:
        await statuses(gw, 2)
    keys = [k.decode() for k in r.scan_iter(match=f"{prefix}:ratelimit:*")]
    assert keys == [f"{prefix}:ratelimit:gateway:{token_identity('Bearer ' + TOKEN)}"]
    assert TOKEN not in keys[0]
    assert 0 < r.pttl(keys[0]) <= 2000, "the key lives only until the bucket is full again"


async def test_rate_zero_turns_the_limit_off(prefix, redis_client, r):
    settings = Settings(stream_prefix=prefix, gateway_tokens=TOKEN, gateway_rate_limit=0, gateway_rate_burst=1)
    async with gateway(settings, redis_client) as gw:
        assert set(await statuses(gw, 12)) == {202}
    assert list(r.scan_iter(match=f"{prefix}:ratelimit:*")) == []


async def test_an_anonymous_gateway_limits_each_client_address(prefix, redis_client):
    settings = Settings(stream_prefix=prefix, gateway_allow_anonymous=True, gateway_rate_limit=0.5, gateway_rate_burst=2)
    async with gateway(settings, redis_client, ("192.0.2.1", 5000)) as a, gateway(settings, redis_client, ("192.0.2.2", 5000)) as b:
        assert [(await a.post("/v1/articles", json=article(i))).status_code for i in range(3)] == [202, 202, 429]
        assert [(await b.post("/v1/articles", json=article(i))).status_code for i in range(3)] == [202, 202, 429]


async def test_without_redis_the_limit_lets_requests_through(prefix):
    dead = aredis.Redis(host="127.0.0.1", port=free_port(), socket_connect_timeout=1)
    settings = Settings(stream_prefix=prefix, gateway_tokens=TOKEN, gateway_rate_limit=1, gateway_rate_burst=1)
    try:
        async with gateway(settings, dead) as gw:
            # Not 429 and not 500: the limiter steps aside, and publishing says Redis is down (retry).
            assert await statuses(gw, 2) == [503, 503]
        async with api(Settings(stream_prefix=prefix, api_tokens=TOKEN, api_rate_limit=1, api_rate_burst=1), dead) as client:
            assert [(await client.get("/v1/articles/x", headers=bearer(TOKEN))).status_code for _ in range(3)] == [404] * 3
    finally:
        await dead.aclose()


# -- the query API -------------------------------------------------------------------------------------------


async def test_api_token_over_its_burst_gets_429_on_every_route(prefix, redis_client):
    settings = Settings(stream_prefix=prefix, api_tokens=f"{TOKEN},{OTHER}", api_rate_limit=0.25, api_rate_burst=3)
    async with api(settings, redis_client) as client:
        assert (await client.get("/v1/articles", headers=bearer(TOKEN))).status_code == 200
        assert (await client.get("/v1/articles/x", headers=bearer(TOKEN))).status_code == 404
        assert (await client.get("/v1/articles", params={"limit": 0}, headers=bearer(TOKEN))).status_code == 422
        for path in ("/v1/articles", "/v1/articles/x", "/v1/stream"):
            refused = await client.get(path, headers=bearer(TOKEN))
            assert refused.status_code == 429, (path, refused.text)
            assert refused.headers["retry-after"] == "4" and "NEWSFLOW_API_RATE_LIMIT" in refused.json()["detail"]
        assert (await client.get("/v1/articles", headers=bearer(OTHER))).status_code == 200, "another token's bucket"
        assert (await client.get("/v1/articles")).status_code == 401, "no token: 401 before any limit"
        assert (await client.get("/healthz")).status_code == 200


async def test_a_public_api_limits_each_client_address(prefix, redis_client):
    settings = Settings(stream_prefix=prefix, api_public=True, api_rate_limit=0.5, api_rate_burst=2)
    async with api(settings, redis_client, client=("198.51.100.7", 1)) as a, api(settings, redis_client, client=("198.51.100.8", 1)) as b:
        assert [(await a.get("/v1/articles/x")).status_code for _ in range(3)] == [404, 404, 429]
        assert (await b.get("/v1/articles/x")).status_code == 404


async def test_openapi_documents_the_429(prefix, redis_client):
    async with api(Settings(stream_prefix=prefix, api_tokens=TOKEN), redis_client) as client:
        spec = (await client.get("/openapi.json")).json()
    for path in ("/v1/articles", "/v1/articles/{article_id}", "/v1/stream"):
        assert "429" in spec["paths"][path]["get"]["responses"], path


async def test_the_limiter_itself(prefix, redis_client):
    limiter = RateLimiter(redis_client, prefix, "api", rate=2, burst=2)
    first, second, third = [await limiter.check("t-abc") for _ in range(3)]
    assert first.allowed and second.allowed and not third.allowed
    assert 0 < third.retry_after_s <= 0.5 and third.retry_after_header() == "1", "at least 1 s: HTTP has no fractions"
    assert (await limiter.check("t-other")).allowed
    off = RateLimiter(redis_client, prefix, "api", rate=0, burst=1)
    assert not off.enabled and all([(await off.check("t-abc")).allowed for _ in range(5)])


# -- no stack traces in responses ----------------------------------------------------------------------------


async def test_a_crash_in_a_gateway_handler_is_a_bare_500(prefix, redis_client, monkeypatch):
    import services.gateway.app as gateway_app

    def crash(*_args: Any, **_kwargs: Any) -> Any:
        raise RuntimeError("secret internal detail in /srv/newsflow/services/gateway/validation.py line 42")

    monkeypatch.setattr(gateway_app, "validate_articles", crash)
    async with gateway(Settings(stream_prefix=prefix, gateway_tokens=TOKEN), redis_client) as gw:
        resp = await gw.post("/v1/articles", json=article(1), headers=bearer(TOKEN))
    assert resp.status_code == 500
    assert resp.json() == {"detail": "internal error"}
    for leak in ("Traceback", "RuntimeError", "secret internal detail", ".py"):
        assert leak not in resp.text


async def test_a_crash_in_an_api_handler_is_a_bare_500(prefix, redis_client):
    async with api(Settings(stream_prefix=prefix, api_tokens=TOKEN), redis_client, FakeDatabase(boom=True)) as client:
        for path in ("/v1/articles", "/v1/articles/x"):
            resp = await client.get(path, headers=bearer(TOKEN))
            assert resp.status_code == 500, path
            assert resp.json() == {"detail": "internal error"}
            for leak in ("Traceback", "RuntimeError", "secret internal detail", ".py"):
                assert leak not in resp.text, path
        # CORS stays off: no Access-Control-* headers, even for a cross-origin preflight.
        pre = await client.options("/v1/articles", headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"})
        assert not [h for h in pre.headers if h.lower().startswith("access-control-")]
    async with gateway(Settings(stream_prefix=prefix, gateway_tokens=TOKEN), redis_client) as gw:
        got = await gw.post("/v1/articles", json=article(1), headers={**bearer(TOKEN), "Origin": "https://evil.example"})
        assert got.status_code == 202 and not [h for h in got.headers if h.lower().startswith("access-control-")]
        assert json.loads(got.text)["ids"] == ["rl-1"]
