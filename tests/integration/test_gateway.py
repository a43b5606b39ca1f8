"""The HTTP push gateway against a real Redis, in process (httpx + ASGITransport)."""

from __future__ import annotations

import json
from typing import Any, AsyncIterator

import httpx
import pytest
import redis.asyncio as aredis

from services.gateway.app import create_app
from services.gateway.validation import GatewayConfigError
from shared import tracing
from shared.contract import RawArticle, stable_id
from shared.settings import Settings
from tests.helpers import free_port

TOKEN = "test-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
WIRE = "GENEVA (Reuters) -- Negotiators agreed on a draft text early on Saturday after two weeks of talks."


def settings_for(prefix: str, **extra: Any) -> Settings:
    return Settings(stream_prefix=prefix, gateway_tokens=TOKEN, **extra)


def client_for(settings: Settings, redis: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(settings, redis)), base_url="http://gateway")


@pytest.fixture
async def gw(prefix: str, redis_client: aredis.Redis) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(settings_for(prefix, gateway_max_bytes=4096, gateway_max_articles=5), redis_client) as c:
        yield c


def article(n: int, **extra: Any) -> dict[str, Any]:
    return {"id": f"gw-{n}", "url": f"https://example.org/{n}", "text": f"{WIRE} ({n})", "source": "test", **extra}


# -- auth ------------------------------------------------------------------------------------------------


async def test_auth_missing_wrong_and_right(gw, r, prefix):
    missing = await gw.post("/v1/articles", json=article(1))
    assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
    wrong = await gw.post("/v1/articles", json=article(1), headers={"Authorization": f"Bearer {TOKEN}x"})
    assert wrong.status_code == 401 and wrong.headers["www-authenticate"] == "Bearer"
    basic = await gw.post("/v1/articles", json=article(1), headers={"Authorization": f"Basic {TOKEN}"})
    assert basic.status_code == 401
    fetch = await gw.post("/v1/fetch", json={"url": "https://example.org/"})
    assert fetch.status_code == 401
    assert r.xlen(f"{prefix}:raw") == 0 and r.xlen(f"{prefix}:fetch") == 0
    right = await gw.post("/v1/articles", json=article(1), headers=AUTH)
    assert right.status_code == 202, right.text
    assert right.json()["ids"] == ["gw-1"]
    assert r.xlen(f"{prefix}:raw") == 1


async def test_no_tokens_refuses_to_start_unless_anonymous_is_allowed(prefix, redis_client, r):
    with pytest.raises(GatewayConfigError, match="NEWSFLOW_GATEWAY_ALLOW_ANONYMOUS=1"):
        create_app(Settings(stream_prefix=prefix, gateway_tokens=""), redis_client)
    async with client_for(Settings(stream_prefix=prefix, gateway_tokens="", gateway_allow_anonymous=True), redis_client) as c:
        assert (await c.post("/v1/articles", json=article(1))).status_code == 202


async def test_tokens_file_is_read_at_start(prefix, redis_client, tmp_path):
    path = tmp_path / "tokens"
    path.write_text("# rotated 2024-05\nfile-token-aaaaaaaaaaaaaaaa\n\nfile-token-bbbbbbbbbbbbbbbb  # the old one\n")
    async with client_for(Settings(stream_prefix=prefix, gateway_tokens_file=str(path)), redis_client) as c:
        for token in ("file-token-aaaaaaaaaaaaaaaa", "file-token-bbbbbbbbbbbbbbbb"):
            assert (await c.post("/v1/articles", json=article(1), headers={"Authorization": f"Bearer {token}"})).status_code == 202
        assert (await c.post("/v1/articles", json=article(1), headers=AUTH)).status_code == 401
    with pytest.raises(GatewayConfigError, match="NEWSFLOW_GATEWAY_TOKENS_FILE"):
        create_app(Settings(stream_prefix=prefix, gateway_tokens_file=str(tmp_path / "missing")), redis_client)
    with pytest.raises(GatewayConfigError, match="shorter than 16"):
        create_app(Settings(stream_prefix=prefix, gateway_tokens="short"), redis_client)


# -- limits ----------------------------------------------------------------------------------------------


async def test_413_on_content_length_over_the_limit(gw, r, prefix):
    big = article(1, text=WIRE + " x" * 3000)
    resp = await gw.post("/v1/articles", json=big, headers=AUTH)
    assert int(resp.request.headers["content-length"]) > 4096
    assert resp.status_code == 413 and "NEWSFLOW_GATEWAY_MAX_BYTES" in resp.json()["detail"]
    assert r.xlen(f"{prefix}:raw") == 0


async def test_413_on_a_chunked_body_over_the_limit(gw, r, prefix):
    async def chunks() -> AsyncIterator[bytes]:
        yield b'[{"id": "chunked", "text": "'
        for _ in range(10):
            yield b"y" * 1000
        yield b'"}]'

    resp = await gw.post("/v1/articles", content=chunks(), headers={**AUTH, "Content-Type": "application/json"})
    assert "content-length" not in resp.request.headers
    assert resp.request.headers["transfer-encoding"] == "chunked"
    assert resp.status_code == 413
    assert r.xlen(f"{prefix}:raw") == 0

    async def small() -> AsyncIterator[bytes]:
        yield json.dumps(article(1)).encode()

    ok = await gw.post("/v1/articles", content=small(), headers={**AUTH, "Content-Type": "application/json"})
    assert ok.status_code == 202, ok.text


async def test_413_on_too_many_articles(gw, r, prefix):
    resp = await gw.post("/v1/articles", json=[article(n) for n in range(6)], headers=AUTH)
    assert resp.status_code == 413 and "NEWSFLOW_GATEWAY_MAX_ARTICLES" in resp.json()["detail"]
    ndjson = "\n".join(json.dumps({"text": f"t{n}"}) for n in range(6))
    resp = await gw.post("/v1/articles", content=ndjson, headers={**AUTH, "Content-Type": "application/x-ndjson"})
    assert resp.status_code == 413
    resp = await gw.post("/v1/fetch", json={"urls": [f"https://example.org/{n}" for n in range(6)]}, headers=AUTH)
    assert resp.status_code == 413
    assert r.xlen(f"{prefix}:raw") == 0 and r.xlen(f"{prefix}:fetch") == 0


# -- validation ------------------------------------------------------------------------------------------


async def test_422_names_index_and_field_and_publishes_nothing(gw, r, prefix):
    batch = [article(0), {"id": "no-content", "title": "only a title"}, article(2, html=123), article(3)]
    resp = await gw.post("/v1/articles", json=batch, headers=AUTH)
    assert resp.status_code == 422, resp.text
    errors = resp.json()["errors"]
    assert {"index": 2, "loc": ["html"]} in [{"index": e["index"], "loc": e["loc"]} for e in errors]
    missing = [e for e in errors if e["index"] == 1]
    assert missing and missing[0]["loc"] == [] and "'html' or 'text'" in missing[0]["msg"]
    assert {e["index"] for e in errors} == {1, 2}
    assert "Traceback" not in resp.text
    assert r.xlen(f"{prefix}:raw") == 0


async def test_lenient_optional_fields_are_accepted_with_a_warning(gw, r, prefix):
    resp = await gw.post("/v1/articles", json=[article(0, published_at="last Tuesday-ish", metadata="oops")], headers=AUTH)
    assert resp.status_code == 202, resp.text
    assert {w["index"] for w in resp.json()["warnings"]} == {0}
    (_, fields), = r.xrange(f"{prefix}:raw")
    assert json.loads(fields[b"body"])["published_at"] == "last Tuesday-ish"  # as received; the cleaner drops it


async def test_invalid_json_is_422_and_a_non_object_too(gw, r, prefix):
    resp = await gw.post("/v1/articles", content=b'{"text": "unterminated', headers={**AUTH, "Content-Type": "application/json"})
    assert resp.status_code == 422 and resp.json()["detail"].startswith("invalid JSON")
    resp = await gw.post("/v1/articles", content=b"[" * 2000 + b"]" * 2000, headers={**AUTH, "Content-Type": "application/json"})
    assert resp.status_code == 422
    resp = await gw.post("/v1/articles", json=["just a string"], headers=AUTH)
    assert resp.status_code == 422 and resp.json()["errors"] == [{"index": 0, "loc": [], "msg": "an article must be a JSON object, got a string"}]
    bad_line = json.dumps(article(0)) + "\n{nope\n"
    resp = await gw.post("/v1/articles", content=bad_line, headers={**AUTH, "Content-Type": "application/x-ndjson"})
    assert resp.status_code == 422 and resp.json()["errors"][0]["index"] == 1 and resp.json()["errors"][0]["line"] == 2
    resp = await gw.post("/v1/articles", content=b"text", headers={**AUTH, "Content-Type": "text/plain"})
    assert resp.status_code == 415
    resp = await gw.post("/v1/articles", json=article(0), headers={**AUTH, "X-Correlation-ID": "has space"})
    assert resp.status_code == 400
    assert r.xlen(f"{prefix}:raw") == 0


# -- publishing ------------------------------------------------------------------------------------------


async def test_ndjson_happy_path(gw, r, prefix):
    items = [article(0), {"url": "https://example.org/no-id", "html": "<p>" + WIRE + "</p>"}, {"text": WIRE}]
    body = "\n".join(json.dumps(i) for i in items[:2]) + "\n\n" + json.dumps(items[2]) + "\n"
    headers = {**AUTH, "Content-Type": "application/x-ndjson", "X-Correlation-ID": "batch-42",
               "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}
    resp = await gw.post("/v1/articles", content=body, headers=headers)
    assert resp.status_code == 202, resp.text
    out = resp.json()
    assert out["ids"] == [RawArticle.model_validate(i).article_id() for i in items]
    assert out["ids"][1] == stable_id("https://example.org/no-id", "")
    assert out["ids"][2] == stable_id(None, WIRE)
    assert resp.headers["x-correlation-id"] == "batch-42"
    entries = r.xrange(f"{prefix}:raw")
    assert [e.decode() for e, _ in entries] == out["entries"]
    for (_, fields), item in zip(entries, items):
        assert json.loads(fields[b"body"]) == item
        assert fields[b"correlation_id"] == b"batch-42"
        assert fields[b"traceparent"] == headers["traceparent"].encode()
        assert set(fields) == {b"body", b"correlation_id", b"traceparent"}


async def test_single_object_gets_a_generated_correlation_id(gw, r, prefix):
    resp = await gw.post("/v1/articles", json=article(7), headers=AUTH)
    assert resp.status_code == 202
    (_, fields), = r.xrange(f"{prefix}:raw")
    assert fields[b"correlation_id"].decode() == resp.json()["correlation_id"] == resp.headers["x-correlation-id"]
    # No traceparent header: the article starts a trace of its own (shared/tracing.py).
    assert tracing.parse(fields[b"traceparent"]) is not None


async def test_fetch_happy_path(gw, r, prefix):
    resp = await gw.post("/v1/fetch", json={"urls": ["https://example.org/a", "http://example.org/b"], "source": "site-x"}, headers=AUTH)
    assert resp.status_code == 202, resp.text
    assert len(resp.json()["entries"]) == 2
    resp = await gw.post("/v1/fetch", json={"url": "https://example.org/c", "language": "de"}, headers=AUTH)
    assert resp.status_code == 202
    resp = await gw.post("/v1/fetch", json=["https://example.org/d", {"url": "https://example.org/e", "category": "tech"}], headers=AUTH)
    assert resp.status_code == 202
    bodies = [json.loads(f[b"body"]) for _, f in r.xrange(f"{prefix}:fetch")]
    assert [b["url"] for b in bodies] == [f"{s}://example.org/{c}" for s, c in zip("https http https https https".split(), "abcde")]
    assert bodies[0]["source"] == bodies[1]["source"] == "site-x"
    assert bodies[2]["language"] == "de" and bodies[4]["category"] == "tech"
    assert r.xlen(f"{prefix}:raw") == 0


async def test_fetch_refuses_a_bad_scheme(gw, r, prefix):
    resp = await gw.post("/v1/fetch", json={"urls": ["https://example.org/ok", "ftp://example.org/file", "javascript:alert(1)"]}, headers=AUTH)
    assert resp.status_code == 422, resp.text
    errors = resp.json()["errors"]
    assert [(e["index"], e["loc"]) for e in errors] == [(1, ["url"]), (2, ["url"])]
    assert "http(s)" in errors[0]["msg"]
    assert r.xlen(f"{prefix}:fetch") == 0


# -- health ----------------------------------------------------------------------------------------------


async def test_healthz_and_readyz(gw):
    assert (await gw.get("/healthz")).json() == {"status": "ok"}
    ready = await gw.get("/readyz")
    assert ready.status_code == 200


async def test_readyz_503_and_publish_503_when_redis_is_unreachable(prefix):
    down = aredis.Redis.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=1)
    try:
        async with client_for(settings_for(prefix), down) as c:
            assert (await c.get("/healthz")).status_code == 200
            ready = await c.get("/readyz")
            assert ready.status_code == 503
            resp = await c.post("/v1/articles", json=article(1), headers=AUTH)
            assert resp.status_code == 503 and resp.headers["retry-after"]
            assert "Traceback" not in resp.text and "ConnectionError" not in resp.text
    finally:
        await down.aclose()


async def test_openapi_lists_the_routes(gw):
    paths = (await gw.get("/openapi.json")).json()["paths"]
    assert {"/v1/articles", "/v1/fetch", "/healthz", "/readyz"} <= set(paths)


async def test_a_lone_surrogate_is_422_not_a_retry_forever(gw, r, prefix):
    body = '[{"text": "fine"}, {"text": "bad \\ud800 text"}]'
    resp = await gw.post("/v1/articles", content=body, headers={**AUTH, "Content-Type": "application/json"})
    assert resp.status_code == 422
    assert resp.json()["errors"][0]["index"] == 1 and "surrogate" in resp.json()["errors"][0]["msg"]
    assert r.xlen(f"{prefix}:raw") == 0
