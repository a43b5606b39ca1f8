"""The HTTP query API: stored articles, searched and filtered, and new ones as they are announced. Read-only.

    GET /v1/articles        full-text search and filters, newest first, cursor pagination
    GET /v1/articles/{id}   one article
    GET /v1/stream          new enriched articles as Server-Sent Events, filtered
    GET /healthz            the process is alive
    GET /readyz             the database and Redis answer
    GET /asyncapi           the AsyncAPI document of every stream (YAML; /asyncapi.json: JSON), no token needed

Every `/v1` route needs `Authorization: Bearer <token>` with a token of NEWSFLOW_API_TOKENS (or
NEWSFLOW_API_TOKENS_FILE), unless the API was started public (NEWSFLOW_API_PUBLIC=1, no tokens), and is counted
against that token's rate limit (NEWSFLOW_API_RATE_LIMIT, burst NEWSFLOW_API_RATE_BURST; public: per client address):
over it, 429 with Retry-After. An unexpected error is a bare 500 `internal error`, never a traceback.
The API never writes: no route does, and the database sessions it opens are read-only.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated, Any, AsyncIterator

from fastapi import Depends, FastAPI, Header, HTTPException, Path, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.sse import EventSourceResponse, ServerSentEvent
from pydantic import BaseModel, Field, ValidationError

from services.storage.query import MAX_LIMIT, ArticleQuery, decode_cursor
from shared.contract import EnrichedArticle
from shared.logging import get_logger
from shared.ratelimit import RateLimiter
from shared.http_docs import add_asyncapi_routes
from shared.settings import Settings
from shared.tokens import TokenConfigError, read_tokens, token_ok
from shared.topology import Topology
from shared.transport.runner import is_transient_redis

from .database import Database, DatabaseUnavailable
from .stream import ENTRY_ID, Filters, follow, newest_id

log = get_logger("newsflow.api")

READY_TIMEOUT_S = 2.0


class ApiConfigError(ValueError):
    """The API cannot start with this configuration."""


def load_tokens(settings: Settings) -> list[str]:
    """NEWSFLOW_API_TOKENS plus NEWSFLOW_API_TOKENS_FILE; with none, the API starts only when NEWSFLOW_API_PUBLIC is on."""
    try:
        tokens = read_tokens(settings.api_tokens, settings.api_tokens_file, what="API token", file_setting="NEWSFLOW_API_TOKENS_FILE")
    except TokenConfigError as exc:
        raise ApiConfigError(str(exc)) from None
    if not tokens and not settings.api_public:
        raise ApiConfigError("no API tokens configured: set NEWSFLOW_API_TOKENS or NEWSFLOW_API_TOKENS_FILE, "
                             "or NEWSFLOW_API_PUBLIC=1 to let anyone who can reach the API read every article")
    if tokens and settings.api_public:
        log.warning("api_public_ignored", reason="tokens are configured, so every /v1 request needs one")
    return tokens


# -- response models (OpenAPI) --------------------------------------------------------------------------


class ArticlePage(BaseModel):
    items: list[EnrichedArticle] = Field(description="Stored enriched articles, as announced on `{prefix}:enriched`.")
    next_cursor: str | None = Field(description="Pass as `cursor` (with the same filters) for the next page; null on the last page.")


class ErrorBody(BaseModel):
    detail: Any = Field(description="What was wrong: a sentence, or (422) a list of the bad parameters.")


class Readiness(BaseModel):
    status: str
    database: str
    redis: str


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    text = {400: "Bad cursor", 401: "Missing or wrong bearer token", 404: "No such article",
            422: "Invalid or unknown parameter", 429: "Over this token's rate limit; retry after Retry-After seconds",
            503: "The database or Redis is unavailable; retry (Retry-After)"}
    return {code: {"model": ErrorBody, "description": text[code]} for code in codes}


# -- parameters -----------------------------------------------------------------------------------------

TopicQ = Annotated[str | None, Query(max_length=200, description="A topic label (`politics`), short IPTC key (`conflict`) or IPTC Media Topic code (`medtop:11000000`); case-insensitive.")]
PlaceQ = Annotated[str | None, Query(max_length=200, description="A place name (`Seoul`) or an ISO 3166-1 alpha-2 country code (`KR`); case-insensitive.")]
SourceQ = Annotated[str | None, Query(max_length=500, description="The article's `source` (feed, site or scraper name), exactly.")]
LanguageQ = Annotated[str | None, Query(max_length=20, description="ISO 639-1 language code (`en`), or `und`.")]

ARTICLE_PARAMS = frozenset({"q", "topic", "place", "source", "language", "since", "until", "duplicate", "cursor", "limit"})
STREAM_PARAMS = frozenset({"topic", "place", "source", "language", "since_id"})


def known_params(allowed: frozenset[str]) -> Any:
    """A dependency refusing query parameters the route does not know: a misspelt filter would otherwise be
    ignored silently and return everything."""

    async def check(request: Request) -> None:
        unknown = sorted(set(request.query_params) - allowed)
        if unknown:
            raise RequestValidationError([
                {"type": "extra_forbidden", "loc": ("query", name), "msg": f"unknown parameter; known: {', '.join(sorted(allowed))}", "input": None}
                for name in unknown
            ])

    return Depends(check)


# -- the app --------------------------------------------------------------------------------------------


def create_app(settings: Settings, redis: Any, database: Database) -> FastAPI:
    """The API's ASGI app. `redis` is a redis.asyncio client and `database` the repository (read-only); their
    owner closes them. `app.state.stopping`, once set, ends every open event stream (graceful shutdown).
    Raises ApiConfigError when no token is configured and the API is not public."""
    tokens = load_tokens(settings)
    topology = Topology(settings.stream_prefix)
    app = FastAPI(title="newsflow query API", version="1", description=__doc__)
    app.state.redis = redis
    app.state.database = database
    app.state.stopping = asyncio.Event()
    app.state.open = {"streams": 0}

    bearer = HTTPBearer(auto_error=False, description="A read-only token of NEWSFLOW_API_TOKENS.")
    limiter = RateLimiter(redis, settings.stream_prefix, "api", settings.api_rate_limit, settings.api_rate_burst,
                          setting="NEWSFLOW_API_RATE_LIMIT")

    # `bearer` puts the scheme in the OpenAPI document; the check itself is token_ok's, in constant time.
    async def authenticate(request: Request, _: HTTPAuthorizationCredentials | None = Depends(bearer)) -> None:
        if not token_ok(request.headers.get("authorization"), tokens):
            raise HTTPException(401, "missing or wrong bearer token", headers={"WWW-Authenticate": "Bearer"})

    async def rate_limit(request: Request) -> None:
        """After authenticate (a wrong token costs no bucket): one token from this caller's bucket."""
        decision = await limiter.check_request(request.headers.get("authorization"),
                                               request.client.host if request.client else None, bool(tokens))
        if not decision.allowed:
            raise HTTPException(429, limiter.refusal(decision), headers={"Retry-After": decision.retry_after_header()})

    auth = [Depends(authenticate), Depends(rate_limit)] if tokens else [Depends(rate_limit)]

    @app.exception_handler(Exception)
    async def _crashed(request: Request, exc: Exception) -> JSONResponse:
        log.exception("api_error", path=request.url.path)
        return JSONResponse({"detail": "internal error"}, status_code=500)

    @app.exception_handler(DatabaseUnavailable)
    async def _db_down(request: Request, exc: DatabaseUnavailable) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=503, headers={"Retry-After": "5"})

    @app.get("/healthz", tags=["health"], summary="The process is alive")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"], summary="The database and Redis answer", response_model=Readiness,
             responses={503: {"model": Readiness, "description": "Not ready: the database or Redis does not answer"}})
    async def readyz() -> JSONResponse:
        async def db() -> None:
            await database.call("ping")

        checks = {"database": db, "redis": redis.ping}
        state: dict[str, str] = {}
        for name, check in checks.items():
            try:
                await asyncio.wait_for(check(), READY_TIMEOUT_S)
                state[name] = "ok"
            except Exception as exc:  # noqa: BLE001 - any failure means not ready
                log.warning("api_not_ready", dependency=name, error=f"{type(exc).__name__}: {exc}"[:200])
                state[name] = "unreachable"
        ok = all(v == "ok" for v in state.values())
        return JSONResponse({"status": "ok" if ok else "unavailable", **state}, status_code=200 if ok else 503)

    add_asyncapi_routes(app, settings)  # public documentation of the streams

    @app.get(
        "/v1/articles", tags=["articles"], dependencies=[*auth, known_params(ARTICLE_PARAMS)],
        summary="Search and filter stored articles", response_model=ArticlePage, responses=_errors(400, 401, 422, 429, 503),
        description="Newest first. Every filter that is given must hold. Pages are at most `limit` articles; "
                    "follow `next_cursor` (with the same filters) until it is null.",
    )
    async def list_articles(
        q: Annotated[str | None, Query(max_length=1000, description='Full-text search in title and text (NEWSFLOW_SEARCH_SCOPE says how much of the text): words (all must occur), "a phrase", `or`, `-word` to exclude.')] = None,
        topic: TopicQ = None,
        place: PlaceQ = None,
        source: SourceQ = None,
        language: LanguageQ = None,
        since: Annotated[datetime | None, Query(description="Published (or, without a date, stored) at or after this ISO 8601 time.")] = None,
        until: Annotated[datetime | None, Query(description="Published (or, without a date, stored) before this ISO 8601 time.")] = None,
        duplicate: Annotated[bool | None, Query(description="true: only articles marked as duplicates (`duplicate_of` set); false: only originals.")] = None,
        cursor: Annotated[str | None, Query(max_length=2000, description="`next_cursor` of the previous page, as received (opaque).")] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Articles per page.")] = 50,
    ) -> JSONResponse:
        try:
            query = ArticleQuery(q=q, topic=topic, place=place, source=source, language=language, since=since,
                                 until=until, duplicate=duplicate, cursor=cursor, limit=limit)
        except ValidationError as exc:
            raise RequestValidationError([{**e, "loc": ("query", *e["loc"])} for e in exc.errors(include_url=False, include_context=False)]) from None
        if query.cursor is not None:
            try:
                decode_cursor(query.cursor)
            except ValueError as exc:
                raise HTTPException(400, f"bad cursor ({exc}); pass a next_cursor exactly as received") from None
        page = await database.call("search", query)
        return JSONResponse(jsonable_encoder({"items": page.items, "next_cursor": page.next_cursor}))

    @app.get(
        "/v1/articles/{article_id:path}", tags=["articles"], dependencies=auth,
        summary="One stored article by id", response_model=EnrichedArticle, responses=_errors(401, 404, 429, 503),
    )
    async def get_article(article_id: Annotated[str, Path(max_length=200, description="The article's `id`.")]) -> JSONResponse:
        doc = await database.call("get", article_id)
        if doc is None:
            raise HTTPException(404, f"no article {article_id!r}")
        return JSONResponse(jsonable_encoder(doc))

    async def start_after(
        since_id: Annotated[str | None, Query(pattern=ENTRY_ID.pattern, description="Start after this stream entry id (an event's `id`); `0`: everything the stream still holds.")] = None,
        last_event_id: Annotated[str | None, Header(pattern=ENTRY_ID.pattern, description="Set by EventSource on reconnect: resume after this event id. Wins over `since_id`.")] = None,
    ) -> str:
        """Where the stream starts, resolved before the response begins, so a Redis outage is a 503."""
        if last_event_id or since_id:
            return last_event_id or since_id  # type: ignore[return-value]
        try:
            return await asyncio.wait_for(newest_id(redis, topology.enriched), READY_TIMEOUT_S)
        except Exception as exc:
            if not is_transient_redis(exc):
                raise
            log.warning("api_stream_redis_unavailable", error=f"{type(exc).__name__}: {exc}"[:200])
            raise HTTPException(503, "Redis is not available; retry later", headers={"Retry-After": "5"}) from None

    @app.get(
        "/v1/stream", tags=["stream"], dependencies=[*auth, known_params(STREAM_PARAMS)], response_class=EventSourceResponse,
        summary="New enriched articles as Server-Sent Events", responses=_errors(401, 422, 429, 503),
        description="One event per new article that passes the filters: `id` is its `{prefix}:enriched` entry id, "
                    "`data` the article JSON. Starts after the newest article unless `Last-Event-ID` or `since_id` "
                    "says where to resume; a comment line is sent every 15 s when nothing else is.",
    )
    async def stream(
        after: str = Depends(start_after),  # a closure: Annotated[...] would be an unresolvable forward reference here
        topic: TopicQ = None,
        place: PlaceQ = None,
        source: SourceQ = None,
        language: LanguageQ = None,
    ) -> AsyncIterator[ServerSentEvent]:
        filters = Filters.of(topic=topic, place=place, language=language, source=source)
        async for event in follow(redis, topology.enriched, after, filters, app.state.stopping, app.state.open):
            yield event

    return app
