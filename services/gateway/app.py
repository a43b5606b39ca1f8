"""The HTTP push gateway: upstream scrapers POST articles (or URLs) instead of writing to Redis themselves.

    POST /v1/articles   one article object, a JSON array of them, or NDJSON -> {prefix}:raw
    POST /v1/fetch      {"url"}, {"urls": [...], "source"}, or an array   -> {prefix}:fetch
    GET  /healthz       the process is alive
    GET  /readyz        Redis answers PING
    GET  /asyncapi      the AsyncAPI document of every stream (YAML; /asyncapi.json: JSON), no token needed

Every /v1 request needs a bearer token (unless anonymous access is on) and is counted against that token's rate
limit (NEWSFLOW_GATEWAY_RATE_LIMIT, burst NEWSFLOW_GATEWAY_RATE_BURST; shared/ratelimit.py): over it, 429 with
Retry-After.

Each request is all or nothing: every item is validated first (parse_raw semantics for articles), and one
MULTI/EXEC adds one entry per item, so a request is either wholly on the stream (202) or not at all.
The handlers only read, call validation.py's plain functions and publish.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse, Response

from shared import tracing
from shared.contract import FetchRequest, RawArticle, dump
from shared.logging import get_logger
from shared.ratelimit import RateLimiter
from shared.http_docs import add_asyncapi_routes
from shared.settings import Settings
from shared.topology import Topology
from shared.transport.runner import is_transient_redis

from .validation import (
    RequestError,
    check_count,
    decode_items,
    decode_json,
    fetch_items,
    load_tokens,
    token_ok,
    validate_articles,
    validate_fetch,
)

log = get_logger("newsflow.gateway")

CORRELATION_HEADER = "X-Correlation-ID"
_HEADER_VALUE = re.compile(r"[\x21-\x7e]{1,200}")  # visible ASCII, as it is copied into every stream entry
READY_TIMEOUT_S = 2.0


class RateLimited(RequestError):
    """429: this token (or, without tokens, this client address) is over its rate limit."""

    def __init__(self, detail: str, retry_after: str) -> None:
        super().__init__(429, detail)
        self.retry_after = retry_after


def _body_schema(model: type[Any]) -> dict[str, Any]:
    one = model.model_json_schema()
    return {"oneOf": [one, {"type": "array", "items": one}]}


def create_app(settings: Settings, redis: Any) -> FastAPI:
    """The gateway's ASGI app. `redis` is a redis.asyncio client; its owner closes it.
    Raises validation.GatewayConfigError when no token is configured and anonymous access is not allowed."""
    tokens = load_tokens(settings)
    topology = Topology(settings.stream_prefix)
    app = FastAPI(title="newsflow gateway", version="1", description=__doc__)
    app.state.redis = redis
    # Spans of the articles it puts on a stream (NEWSFLOW_TRACING); off: only their traceparents.
    tracer = tracing.setup(settings.tracing, "newsflow-gateway")
    limiter = RateLimiter(redis, settings.stream_prefix, "gateway", settings.gateway_rate_limit,
                          settings.gateway_rate_burst, setting="NEWSFLOW_GATEWAY_RATE_LIMIT")

    async def authenticate(request: Request) -> None:
        """The token first (a wrong one costs no bucket), then that token's rate limit."""
        authorization = request.headers.get("authorization")
        if tokens and not token_ok(authorization, tokens):
            raise RequestError(401, "missing or wrong bearer token")
        decision = await limiter.check_request(authorization, request.client.host if request.client else None, bool(tokens))
        if not decision.allowed:
            raise RateLimited(limiter.refusal(decision), decision.retry_after_header())

    @app.exception_handler(RequestError)
    async def _refused(request: Request, exc: RequestError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else {}
        if exc.status == 503:
            headers["Retry-After"] = "5"
        if isinstance(exc, RateLimited):
            headers["Retry-After"] = exc.retry_after
        return JSONResponse(exc.body(), status_code=exc.status, headers=headers)

    @app.exception_handler(Exception)
    async def _crashed(request: Request, exc: Exception) -> JSONResponse:
        log.exception("gateway_error", path=request.url.path)
        return JSONResponse({"detail": "internal error"}, status_code=500)

    @app.get("/healthz", tags=["health"])
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"])
    async def readyz() -> JSONResponse:
        try:
            await asyncio.wait_for(redis.ping(), READY_TIMEOUT_S)
        except Exception as exc:  # noqa: BLE001 - any failure means not ready
            log.warning("gateway_not_ready", error=f"{type(exc).__name__}: {exc}"[:200])
            return JSONResponse({"status": "unavailable", "redis": "unreachable"}, status_code=503)
        return JSONResponse({"status": "ok"})

    @app.post(
        "/v1/articles", status_code=202, dependencies=[Depends(authenticate)], tags=["ingest"],
        summary="Put articles on {prefix}:raw",
        openapi_extra={"requestBody": {"required": True, "content": {
            "application/json": {"schema": _body_schema(RawArticle)},
            "application/x-ndjson": {"schema": {"type": "string", "description": "one article object per line"}},
        }}},
    )
    async def post_articles(request: Request) -> JSONResponse:
        meta = metadata(request)
        body = await read_body(request, settings.gateway_max_bytes)
        items = decode_items(body, request.headers.get("content-type"), settings.gateway_max_articles)
        articles, bodies, warnings = validate_articles(items, settings.max_body_bytes)
        entries = await publish(redis, topology.raw, bodies, meta, tracer)
        ids = [a.article_id() for a in articles]
        log.info("gateway_published", stream=topology.raw, count=len(entries), correlation_id=meta["correlation_id"],
                 trace_id=tracing.trace_id(meta.get("traceparent")))
        out: dict[str, Any] = {"ids": ids, "entries": entries, "correlation_id": meta["correlation_id"]}
        if warnings:
            out["warnings"] = warnings
        return JSONResponse(out, status_code=202, headers={CORRELATION_HEADER: meta["correlation_id"]})

    @app.post(
        "/v1/fetch", status_code=202, dependencies=[Depends(authenticate)], tags=["ingest"],
        summary="Put URLs on {prefix}:fetch for the fetcher",
        openapi_extra={"requestBody": {"required": True, "content": {"application/json": {"schema": {"oneOf": [
            *_body_schema(FetchRequest)["oneOf"],
            {"type": "object", "required": ["urls"], "properties": {"urls": {"type": "array", "items": {"type": "string"}}, "source": {"type": "string"}}},
        ]}}}}},
    )
    async def post_fetch(request: Request) -> JSONResponse:
        meta = metadata(request)
        body = await read_body(request, settings.gateway_max_bytes)
        items = fetch_items(decode_json(body, request.headers.get("content-type")))
        check_count(len(items), settings.gateway_max_articles)
        requests = validate_fetch(items)
        entries = await publish(redis, topology.fetch, [dump(r) for r in requests], meta, tracer)
        log.info("gateway_published", stream=topology.fetch, count=len(entries), correlation_id=meta["correlation_id"],
                 trace_id=tracing.trace_id(meta.get("traceparent")))
        return JSONResponse({"entries": entries, "urls": [r.url for r in requests], "correlation_id": meta["correlation_id"]},
                            status_code=202, headers={CORRELATION_HEADER: meta["correlation_id"]})

    add_asyncapi_routes(app, settings)  # public documentation of the streams

    return app


def metadata(request: Request) -> dict[str, str]:
    """The entry fields beside `body`: correlation_id (the header's, or a new one) and the caller's traceparent
    when it is a valid W3C one (an invalid one is ignored, as W3C Trace Context says: the articles start new
    traces); publish() gives each entry its own."""
    meta: dict[str, str] = {}
    given = request.headers.get(CORRELATION_HEADER)
    if given is not None and not _HEADER_VALUE.fullmatch(given):
        raise RequestError(400, f"{CORRELATION_HEADER} must be 1-200 visible ASCII characters")
    meta["correlation_id"] = given or uuid.uuid4().hex
    traceparent = tracing.valid(request.headers.get("traceparent"))
    if traceparent is not None:
        meta["traceparent"] = traceparent
    return meta


async def read_body(request: Request, max_bytes: int) -> bytes:
    """The body, refused with 413 as soon as it is known to be over `max_bytes`: from Content-Length before
    reading anything, else while the (chunked) stream comes in."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            length = int(declared)
        except ValueError:
            raise RequestError(400, "bad Content-Length") from None
        if length > max_bytes:
            raise RequestError(413, f"request body of {length} bytes; the limit is {max_bytes} (NEWSFLOW_GATEWAY_MAX_BYTES)")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise RequestError(413, f"request body over the limit of {max_bytes} bytes (NEWSFLOW_GATEWAY_MAX_BYTES)")
        chunks.append(chunk)
    return b"".join(chunks)


async def publish(redis: Any, stream: str, bodies: list[str], meta: dict[str, str], tracer: tracing.Tracer | None = None) -> list[str]:
    """One XADD per body in one MULTI/EXEC: the request is on the stream whole or not at all.
    Each entry's traceparent: with the caller's (meta["traceparent"]), every article of the request is in the
    caller's trace; without one, each article starts a trace of its own. Tracing on, each gets a span here."""
    if not bodies:
        return []
    tracer = tracer or tracing.Tracer()
    attributes = {"messaging.system": "redis", "messaging.operation.type": "send", "messaging.destination.name": stream,
                  "messaging.message.conversation_id": meta["correlation_id"], "newsflow.stage": "gateway"}
    spans = [tracer.ingest(meta.get("traceparent"), f"send {stream}", attributes) for _ in bodies]
    try:
        async with redis.pipeline(transaction=True) as pipe:
            for body, span in zip(bodies, spans):
                pipe.xadd(stream, {"body": body, **meta, "traceparent": span.traceparent})
            ids = await pipe.execute()
    except Exception as exc:
        for span in spans:
            tracer.end(span, error=f"not published: {type(exc).__name__}")
        log.warning("gateway_publish_failed", stream=stream, count=len(bodies), error=f"{type(exc).__name__}: {exc}"[:200])
        if is_transient_redis(exc):  # Redis down or refusing writes: the client should retry
            raise RequestError(503, "could not publish to Redis; nothing was published, retry later") from None
        raise RequestError(500, "internal error; nothing was published") from None
    entry_ids = [i.decode() if isinstance(i, bytes) else str(i) for i in ids]
    for span, entry_id in zip(spans, entry_ids):
        tracer.end(span, attributes={"messaging.message.id": entry_id})
    return entry_ids
