"""The HTTP query API against a real database (a SQLite file and the real PostgreSQL) and a real Redis.

Plain requests go through httpx's ASGI transport; the event stream is read from a real uvicorn server on
127.0.0.1 started in the test (the ASGI transport buffers a whole response, so it cannot follow a stream).
"""

from __future__ import annotations

import asyncio
import json
from contextlib import asynccontextmanager
from datetime import datetime, timezone
from typing import Any, AsyncIterator

import httpx
import pytest
import redis.asyncio as aredis
import uvicorn
from fastapi import FastAPI

from services.api.app import ApiConfigError, create_app
from services.api.database import Database
from services.api.stream import Filters, matches
from services.storage.repository import Row, doc_hash, open_repository
from shared.contract import ClassifiedArticle, EnrichedArticle, Place, Topic, utcnow
from shared.settings import Settings
from tests.helpers import free_port

TOKEN = "api-read-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
DEADLINE_S = 30  # a deadline for what should take milliseconds, never an assertion on time

POLITICS = Topic(code="medtop:11000000", label="politics", score=0.9)
ECONOMY = Topic(code="medtop:04000000", label="economy, business and finance", score=0.8)
SPORT = Topic(code="medtop:15000000", label="sport", score=0.9)
SEOUL = Place(name="Seoul", kind="city", code="KR")
PARIS = Place(name="Paris", kind="city", code="FR")
TOKYO = Place(name="Tokyo", kind="city", code="JP")


# -- data ------------------------------------------------------------------------------------------------


def article(id_: str, text: str, *, title: str = "", topics: list[Topic] = (), places: list[Place] = (),  # type: ignore[assignment]
            language: str = "en", source: str = "wire-a", published: str | None = None,
            duplicate_of: str | None = None) -> ClassifiedArticle:
    return ClassifiedArticle(
        id=id_, url=f"https://news.example/{id_}", source=source, title=title or f"Story {id_}", text=text,
        language=language, word_count=len(text.split()), content_hash=f"h-{id_}", topics=list(topics),
        places=list(places), published_at=datetime.fromisoformat(published) if published else None,
        duplicate_of=duplicate_of, duplicate_score=1.0 if duplicate_of else None,
    )


def rows(articles: list[ClassifiedArticle]) -> list[Row]:
    now = utcnow()
    return [Row(EnrichedArticle(**a.model_dump(), stored_at=now), doc_hash(a), f"1-{n}") for n, a in enumerate(articles)]


CORPUS = [
    article("s1", "Parliament voted on the election law late on Tuesday after a long debate.", title="Parliament votes",
            topics=[POLITICS], places=[SEOUL], source="wire-a", published="2025-03-01T10:00:00+00:00"),
    article("s2", "The central bank raised interest rates again as inflation climbed.", title="Rates up",
            topics=[ECONOMY], places=[PARIS], source="wire-b", published="2025-03-02T10:00:00+00:00"),
    article("s3", "Le parlement a adopté la loi électorale mardi soir.", title="Loi électorale", topics=[POLITICS],
            places=[PARIS], language="fr", source="wire-a", published="2025-03-03T10:00:00+00:00"),
    article("s4", "Parliament voted on the election law late on Tuesday after a long debate, officials said.",
            title="Parliament votes (copy)", topics=[POLITICS], places=[SEOUL], source="wire-c",
            published="2025-03-04T10:00:00+00:00", duplicate_of="s1"),
    article("s5", "The team won the championship final after a late goal in the stadium.", title="Final won",
            topics=[SPORT], places=[TOKYO], source="wire-b", published="2025-03-05T10:00:00+00:00"),
]


async def seed(database_url: str, articles: list[ClassifiedArticle]) -> None:
    """Rows written the way storage writes them (the API itself cannot write)."""
    repo = open_repository(database_url)
    await repo.connect()
    try:
        await repo.migrate()
        await repo.upsert_many(rows(articles))
        await repo.index_pending(len(articles))  # PostgreSQL's deferred search indexing, done before the API reads
    finally:
        await repo.close()


@asynccontextmanager
async def api_client(settings: Settings, redis: Any, database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    database = Database.open(database_url)
    app = create_app(settings, redis, database)
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as client:
            yield client
    finally:
        await database.close()


@pytest.fixture
async def api(prefix, redis_client, database_url) -> AsyncIterator[httpx.AsyncClient]:
    await seed(database_url, CORPUS)
    async with api_client(Settings(stream_prefix=prefix, api_tokens=TOKEN), redis_client, database_url) as client:
        yield client


async def ids(client: httpx.AsyncClient, **params: Any) -> list[str]:
    resp = await client.get("/v1/articles", params=params, headers=AUTH)
    assert resp.status_code == 200, resp.text
    return sorted(a["id"] for a in resp.json()["items"])


# -- auth and configuration ------------------------------------------------------------------------------


async def test_auth_missing_wrong_and_right_token(api):
    for path in ("/v1/articles", "/v1/articles/s1", "/v1/stream"):
        missing = await api.get(path)
        assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer", path
        wrong = await api.get(path, headers={"Authorization": f"Bearer {TOKEN}x"})
        assert wrong.status_code == 401, path
        basic = await api.get(path, headers={"Authorization": f"Basic {TOKEN}"})
        assert basic.status_code == 401, path
    # Authentication comes before parameter checks: no token, no hint about the parameters either.
    assert (await api.get("/v1/articles", params={"limit": 0})).status_code == 401
    right = await api.get("/v1/articles", headers=AUTH)
    assert right.status_code == 200 and len(right.json()["items"]) == len(CORPUS)
    assert (await api.get("/v1/articles/s1", headers=AUTH)).json()["id"] == "s1"
    for path in ("/healthz", "/readyz", "/openapi.json"):
        assert (await api.get(path)).status_code == 200, path


async def test_refuses_to_start_without_tokens_unless_public(prefix, redis_client, tmp_path):
    url = f"sqlite:///{tmp_path / 'public.db'}"
    await seed(url, CORPUS[:1])
    with pytest.raises(ApiConfigError, match="NEWSFLOW_API_PUBLIC=1"):
        create_app(Settings(stream_prefix=prefix, api_tokens=""), redis_client, Database.open(url))
    with pytest.raises(ApiConfigError, match="shorter than 16"):
        create_app(Settings(stream_prefix=prefix, api_tokens="short"), redis_client, Database.open(url))
    with pytest.raises(ApiConfigError, match="NEWSFLOW_API_TOKENS_FILE"):
        create_app(Settings(stream_prefix=prefix, api_tokens_file=str(tmp_path / "missing")), redis_client, Database.open(url))
    async with api_client(Settings(stream_prefix=prefix, api_public=True), redis_client, url) as public:
        resp = await public.get("/v1/articles/s1")
        assert resp.status_code == 200 and resp.json()["id"] == "s1"


async def test_tokens_file_and_public_with_tokens_still_needs_one(prefix, redis_client, tmp_path):
    url = f"sqlite:///{tmp_path / 'file.db'}"
    await seed(url, CORPUS[:1])
    path = tmp_path / "tokens"
    path.write_text("# readers\nfile-reader-aaaaaaaaaaaaaaaa\n")
    settings = Settings(stream_prefix=prefix, api_tokens_file=str(path), api_public=True)
    async with api_client(settings, redis_client, url) as client:
        assert (await client.get("/v1/articles/s1")).status_code == 401
        ok = await client.get("/v1/articles/s1", headers={"Authorization": "Bearer file-reader-aaaaaaaaaaaaaaaa"})
        assert ok.status_code == 200


def test_up_runs_the_api_only_with_tokens_or_public(tmp_path):
    from services.cli import build_parser, default_stages

    assert "api" not in default_stages(Settings())
    for settings in (Settings(api_tokens=TOKEN), Settings(api_tokens_file=str(tmp_path / "t")), Settings(api_public=True)):
        assert default_stages(settings) == ["api", "cleaner", "classifier", "storage"]
    assert build_parser().parse_args(["worker", "api"]).stage == "api"


# -- articles ----------------------------------------------------------------------------------------------


async def test_filters_and_search(api):
    assert await ids(api, q="parliament") == ["s1", "s4"]
    assert await ids(api, q="parlement") == ["s3"]
    assert await ids(api, q="inflation") == ["s2"]
    assert await ids(api, topic="politics") == ["s1", "s3", "s4"]
    assert await ids(api, topic="sport") == ["s5"]
    assert await ids(api, place="Paris") == ["s2", "s3"]
    assert await ids(api, place="JP") == ["s5"]
    assert await ids(api, source="wire-b") == ["s2", "s5"]
    assert await ids(api, language="fr") == ["s3"]
    assert await ids(api, since="2025-03-02T00:00:00Z", until="2025-03-04T00:00:00Z") == ["s2", "s3"]
    assert await ids(api, since="2025-03-04T00:00:00+00:00") == ["s4", "s5"]
    assert await ids(api, duplicate="true") == ["s4"]
    assert await ids(api, duplicate="false") == ["s1", "s2", "s3", "s5"]
    # The acceptance query: search, topic and place together.
    assert await ids(api, q="parliament", topic="politics", place="Seoul") == ["s1", "s4"]
    assert await ids(api, q="parliament", topic="politics", place="Seoul", duplicate="false") == ["s1"]
    assert await ids(api, q="parliament", topic="sport") == []
    assert await ids(api, topic="no-such-topic") == []


async def test_article_bodies_are_the_stored_documents(api):
    resp = await api.get("/v1/articles", params={"topic": "sport"}, headers=AUTH)
    (item,) = resp.json()["items"]
    one = (await api.get("/v1/articles/s5", headers=AUTH)).json()
    for doc in (item, one):
        assert doc["title"] == "Final won" and doc["topics"][0]["code"] == "medtop:15000000"
        assert doc["places"][0] == {**TOKYO.model_dump(mode="json")}
        assert doc["stored_at"] and EnrichedArticle.model_validate(doc).id == "s5"


async def test_pagination_walks_every_article_once(prefix, redis_client, database_url):
    many = [article(f"p{n:02d}", f"Paginated story number {n}.", published=f"2025-04-{n + 1:02d}T08:00:00+00:00")
            for n in range(7)]
    await seed(database_url, many)
    async with api_client(Settings(stream_prefix=prefix, api_tokens=TOKEN), redis_client, database_url) as client:
        seen, pages, cursor = [], [], None
        while True:
            params = {"limit": 3, **({"cursor": cursor} if cursor else {})}
            resp = await client.get("/v1/articles", params=params, headers=AUTH)
            assert resp.status_code == 200, resp.text
            body = resp.json()
            pages.append(len(body["items"]))
            seen += [a["id"] for a in body["items"]]
            cursor = body["next_cursor"]
            if cursor is None:
                break
            assert len(pages) < 10, "pagination does not end"
        assert pages == [3, 3, 1]
        assert sorted(seen) == sorted(a.id for a in many) and len(seen) == len(set(seen))
        assert seen == [f"p{n:02d}" for n in reversed(range(7))], "newest first"


async def test_404_for_an_unknown_id(api):
    resp = await api.get("/v1/articles/no-such-article", headers=AUTH)
    assert resp.status_code == 404 and "no-such-article" in resp.json()["detail"]


async def test_bad_cursor_is_400(api):
    for bad in ("not-a-cursor", "eyJ4IjogMX0", "%%%", "a" * 500):
        resp = await api.get("/v1/articles", params={"cursor": bad}, headers=AUTH)
        assert resp.status_code == 400, (bad, resp.text)
        assert "cursor" in resp.json()["detail"]


async def test_bad_parameters_are_422(api):
    for params in ({"limit": 0}, {"limit": 501}, {"limit": "ten"}, {"since": "last Tuesday"}, {"until": "2025-13-01"},
                   {"duplicate": "perhaps"}, {"topc": "politics"}, {"q": "x" * 1001}):
        resp = await api.get("/v1/articles", params=params, headers=AUTH)
        assert resp.status_code == 422, (params, resp.text)
        assert resp.json()["detail"][0]["loc"][0] == "query"
    unknown = await api.get("/v1/articles", params={"topc": "politics"}, headers=AUTH)
    assert unknown.json()["detail"][0]["loc"] == ["query", "topc"]
    for params in ({"since_id": "yesterday"}, {"since_id": "1-2-3"}, {"topik": "sport"}):
        assert (await api.get("/v1/stream", params=params, headers=AUTH)).status_code == 422, params
    assert (await api.get("/v1/stream", headers={**AUTH, "Last-Event-ID": "nope"})).status_code == 422
    assert (await api.get("/v1/articles", params={"limit": 500}, headers=AUTH)).status_code == 200


async def test_the_api_cannot_write(api, database_url):
    """The database sessions the API opens are read-only, whatever code would try."""
    database = Database.open(database_url)
    try:
        repo = await database.ready()
        assert (await repo.get("s1"))["id"] == "s1"
        with pytest.raises(Exception, match="(?i)read-only|readonly"):
            await repo.upsert_many(rows([article("intruder", "Written through the API's connection.")]))
    finally:
        await database.close()
    writable = open_repository(database_url)
    await writable.connect()
    try:
        assert await writable.get("intruder") is None and await writable.count() == len(CORPUS)
    finally:
        await writable.close()
    app = create_app(Settings(api_public=True), None, Database.open(database_url))
    methods = {m for route in app.routes for m in getattr(route, "methods", ())}
    assert methods <= {"GET", "HEAD"}, "no route that could write"


async def test_readyz_and_503_when_a_dependency_is_down(prefix, redis_client, tmp_path):
    url = f"sqlite:///{tmp_path / 'ready.db'}"
    await seed(url, CORPUS[:1])
    settings = Settings(stream_prefix=prefix, api_tokens=TOKEN)
    async with api_client(settings, redis_client, url) as client:
        ready = await client.get("/readyz")
        assert ready.status_code == 200 and ready.json() == {"status": "ok", "database": "ok", "redis": "ok"}

    dead_db = f"postgresql://postgres@127.0.0.1:{free_port()}/nothing"  # nothing listens there
    async with api_client(settings, redis_client, dead_db) as client:
        ready = await client.get("/readyz")
        assert ready.status_code == 503 and ready.json()["database"] == "unreachable" and ready.json()["redis"] == "ok"
        for path in ("/v1/articles", "/v1/articles/s1"):
            resp = await client.get(path, headers=AUTH)
            assert resp.status_code == 503 and resp.headers["retry-after"], path
        assert (await client.get("/healthz")).status_code == 200

    dead_redis = aredis.Redis(host="127.0.0.1", port=free_port(), socket_connect_timeout=2)
    try:
        async with api_client(settings, dead_redis, url) as client:
            ready = await client.get("/readyz")
            assert ready.status_code == 503 and ready.json() == {"status": "unavailable", "database": "ok", "redis": "unreachable"}
            assert (await client.get("/v1/articles/s1", headers=AUTH)).status_code == 200  # reads need no Redis
            stream = await client.get("/v1/stream", headers=AUTH)
            assert stream.status_code == 503 and stream.headers["retry-after"]
    finally:
        await dead_redis.aclose()


async def test_openapi_documents_every_route_parameter_and_response(api):
    spec = (await api.get("/openapi.json")).json()
    listing = spec["paths"]["/v1/articles"]["get"]
    assert listing["summary"]
    params = {p["name"]: p for p in listing["parameters"]}
    assert set(params) == {"q", "topic", "place", "source", "language", "since", "until", "duplicate", "cursor", "limit"}
    assert all(p.get("description") for p in params.values())
    assert {"200", "400", "401", "422", "503"} <= set(listing["responses"])
    assert "ArticlePage" in json.dumps(listing["responses"]["200"])
    assert spec["paths"]["/v1/articles/{article_id}"]["get"]["responses"]["404"]
    stream = spec["paths"]["/v1/stream"]["get"]
    assert "text/event-stream" in stream["responses"]["200"]["content"]
    assert {p["name"] for p in stream["parameters"]} >= {"topic", "place", "language", "source", "since_id", "last-event-id"}
    assert spec["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"


# -- the event stream ----------------------------------------------------------------------------------------


def test_filter_matching():
    doc = json.loads(EnrichedArticle(**CORPUS[2].model_dump(), stored_at=utcnow()).model_dump_json())
    assert matches(doc, Filters())
    assert matches(doc, Filters(topic="POLITICS", place="paris", language="FR", source="wire-a"))
    assert not matches(doc, Filters(source="WIRE-A")), "source is exact, as in the search"
    assert Filters.of(topic=" ", place="") == Filters()
    assert matches(doc, Filters(topic="medtop:11000000", place="FR"))
    for miss in (Filters(topic="sport"), Filters(place="Seoul"), Filters(language="en"), Filters(source="wire-b")):
        assert not matches(doc, miss), miss
    assert not matches({"topics": "junk", "places": [1, None]}, Filters(topic="x"))


def test_heartbeat_is_fifteen_seconds():
    """The brief's heartbeat is FastAPI's own keep-alive comment: make an upgrade that changes it visible."""
    import fastapi.routing

    assert fastapi.routing._PING_INTERVAL == 15.0


@asynccontextmanager
async def serving(app: FastAPI) -> AsyncIterator[str]:
    """A real uvicorn server for `app` on 127.0.0.1, in this event loop."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="off",
                                           timeout_graceful_shutdown=5))
    task = asyncio.create_task(server.serve())
    async with asyncio.timeout(DEADLINE_S):
        while not server.started:
            assert not task.done(), "uvicorn did not start"
            await asyncio.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        app.state.stopping.set()
        server.should_exit = True
        await task


class EventReader:
    """Server-Sent Events from an open streaming response: (fields) per event, comments kept apart."""

    def __init__(self, response: httpx.Response) -> None:
        self.lines = response.aiter_lines()
        self.comments: list[str] = []

    async def next(self) -> dict[str, str] | None:
        """The next event with data (None when the stream ends); comments on the way are collected."""
        event: dict[str, str] = {}
        async for line in self.lines:
            if line == "":
                if "data" in event:
                    return event
                event = {}
                continue
            if line.startswith(":"):
                self.comments.append(line[1:].strip())
                continue
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            event[name] = f"{event[name]}\n{value}" if name == "data" and name in event else value
        return None

    async def following(self) -> None:
        """Until the server's first comment: it now reads the stream, so what is added next will come."""
        async for line in self.lines:
            if line.startswith(": following"):
                return
        raise AssertionError("the stream ended before it started following")


@pytest.fixture
async def stream_app(prefix, redis_client, tmp_path) -> AsyncIterator[FastAPI]:
    url = f"sqlite:///{tmp_path / 'stream.db'}"
    database = Database.open(url)
    app = create_app(Settings(stream_prefix=prefix, api_tokens=TOKEN), redis_client, database)
    yield app
    await database.close()


def body(doc: ClassifiedArticle) -> str:
    return EnrichedArticle(**doc.model_dump(), stored_at=utcnow()).model_dump_json()


async def publish(r: aredis.Redis, prefix: str, docs: list[ClassifiedArticle]) -> list[str]:
    return [(await r.xadd(f"{prefix}:enriched", {"body": body(d), "correlation_id": "c"})).decode() for d in docs]


async def test_stream_delivers_what_is_published_after_connecting(stream_app, prefix, redis_client):
    before = await publish(redis_client, prefix, [CORPUS[0]])
    async with serving(stream_app) as base, httpx.AsyncClient(base_url=base, timeout=DEADLINE_S) as client:
        async with asyncio.timeout(DEADLINE_S), client.stream("GET", "/v1/stream", headers=AUTH) as resp:
            assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/event-stream")
            assert resp.headers["cache-control"] == "no-cache"
            events = EventReader(resp)
            await events.following()
            entry_ids = await publish(redis_client, prefix, CORPUS[1:4])
            got = [await events.next() for _ in entry_ids]
    assert [e["id"] for e in got] == entry_ids and before[0] not in [e["id"] for e in got]
    assert [json.loads(e["data"])["id"] for e in got] == ["s2", "s3", "s4"]
    stored = await redis_client.xrange(f"{prefix}:enriched", min=entry_ids[0], max=entry_ids[0])
    assert got[0]["data"] == stored[0][1][b"body"].decode(), "data is the entry's body as published"


async def test_stream_filters(stream_app, prefix, redis_client):
    async with serving(stream_app) as base, httpx.AsyncClient(base_url=base, timeout=DEADLINE_S) as client:
        params = {"topic": "politics", "place": "Seoul", "language": "en"}
        async with asyncio.timeout(DEADLINE_S), client.stream("GET", "/v1/stream", params=params, headers=AUTH) as resp:
            events = EventReader(resp)
            await events.following()
            # Junk a stream writer could add is skipped, not fatal.
            await redis_client.xadd(f"{prefix}:enriched", {"body": b"\xff not json"})
            await redis_client.xadd(f"{prefix}:enriched", {"nobody": "here"})
            await publish(redis_client, prefix, CORPUS)  # only s1 and s4 are politics, in Seoul, in English
            got = [json.loads((await events.next())["data"])["id"] for _ in range(2)]
            assert got == ["s1", "s4"]
            await publish(redis_client, prefix, [CORPUS[4], CORPUS[0]])  # a miss, then a match: the miss never shows
            assert json.loads((await events.next())["data"])["id"] == "s1"

        async with asyncio.timeout(DEADLINE_S), client.stream("GET", "/v1/stream", params={"source": "wire-b", "since_id": "0"}, headers=AUTH) as resp:
            events = EventReader(resp)
            got = [json.loads((await events.next())["data"])["id"] for _ in range(2)]
            assert got == ["s2", "s5"], "source filter over everything the stream holds"


async def test_stream_resumes_after_last_event_id_or_since_id(stream_app, prefix, redis_client):
    entry_ids = await publish(redis_client, prefix, CORPUS)
    async with serving(stream_app) as base, httpx.AsyncClient(base_url=base, timeout=DEADLINE_S) as client:
        async def first_two(params: dict[str, str] | None = None, headers: dict[str, str] = AUTH) -> list[tuple[str, str]]:
            async with asyncio.timeout(DEADLINE_S), client.stream("GET", "/v1/stream", params=params, headers=headers) as resp:
                assert resp.status_code == 200
                events = EventReader(resp)
                return [(e["id"], json.loads(e["data"])["id"]) for e in [await events.next(), await events.next()]]

        # What an EventSource sends after a dropped connection: resume right after the last event it saw.
        assert await first_two(headers={**AUTH, "Last-Event-ID": entry_ids[1]}) == [(entry_ids[2], "s3"), (entry_ids[3], "s4")]
        assert await first_two(params={"since_id": entry_ids[2]}) == [(entry_ids[3], "s4"), (entry_ids[4], "s5")]
        # On reconnect the URL still carries the original since_id; the header says where the client really is.
        resumed = await first_two(params={"since_id": "0"}, headers={**AUTH, "Last-Event-ID": entry_ids[2]})
        assert resumed == [(entry_ids[3], "s4"), (entry_ids[4], "s5")]
        # With a filter, resuming skips the non-matching entries in between.
        async with asyncio.timeout(DEADLINE_S), client.stream("GET", "/v1/stream", params={"topic": "politics"},
                                                              headers={**AUTH, "Last-Event-ID": entry_ids[0]}) as resp:
            events = EventReader(resp)
            assert [json.loads((await events.next())["data"])["id"] for _ in range(2)] == ["s3", "s4"]


async def test_stream_stops_when_the_client_disconnects(stream_app, prefix, redis_client):
    async with serving(stream_app) as base, httpx.AsyncClient(base_url=base, timeout=DEADLINE_S) as client:
        for _ in range(3):
            async with asyncio.timeout(DEADLINE_S), client.stream("GET", "/v1/stream", headers=AUTH) as resp:
                await EventReader(resp).following()
                assert stream_app.state.open["streams"] >= 1
        # Each generator ended (its XREAD cancelled) when its client went away, without a publish to wake it.
        async with asyncio.timeout(DEADLINE_S):
            while stream_app.state.open["streams"]:
                await asyncio.sleep(0.05)
        # And the server still serves new clients.
        async with asyncio.timeout(DEADLINE_S), client.stream("GET", "/v1/stream", headers=AUTH) as resp:
            events = EventReader(resp)
            await events.following()
            (entry_id,) = await publish(redis_client, prefix, [CORPUS[0]])
            assert (await events.next())["id"] == entry_id


async def test_stream_ends_on_shutdown_and_sends_heartbeats(stream_app, prefix, monkeypatch, caplog):
    import logging

    import fastapi.routing

    monkeypatch.setattr(fastapi.routing, "_PING_INTERVAL", 0.2)  # the 15 s heartbeat, faster for the test
    async with serving(stream_app) as base, httpx.AsyncClient(base_url=base, timeout=DEADLINE_S) as client:
        async with asyncio.timeout(DEADLINE_S), client.stream("GET", "/v1/stream", headers=AUTH) as resp:
            events = EventReader(resp)
            await events.following()
            lines = []
            async for line in events.lines:
                lines.append(line)
                if lines.count(": ping") >= 2:
                    break
            stream_app.state.stopping.set()  # what the server's shutdown does
            assert await events.next() is None, "the stream ends instead of holding the shutdown up"
    assert stream_app.state.open["streams"] == 0
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, "the stream ended cleanly, not by an exception"


async def test_stream_survives_a_redis_restart(tmp_path, prefix):
    """Redis goes away under an open stream: the client stays connected, and what is published once Redis is
    back arrives, after what came before, with nothing skipped."""
    from tests.helpers import RedisServer

    server = RedisServer(tmp_path)
    server.start()
    redis = aredis.Redis.from_url(server.url, socket_connect_timeout=2)
    database = Database.open(f"sqlite:///{tmp_path / 'restart.db'}")
    app = create_app(Settings(stream_prefix=prefix, api_tokens=TOKEN), redis, database)
    try:
        async with serving(app) as base, httpx.AsyncClient(base_url=base, timeout=DEADLINE_S) as client:
            async with asyncio.timeout(2 * DEADLINE_S), client.stream("GET", "/v1/stream", headers=AUTH) as resp:
                events = EventReader(resp)
                await events.following()
                (first,) = await publish(redis, prefix, [CORPUS[0]])
                assert (await events.next())["id"] == first
                await asyncio.to_thread(server.stop)
                await asyncio.sleep(0.5)  # let the stream's read fail at least once while Redis is down
                await asyncio.to_thread(server.start)
                later = await publish(redis, prefix, CORPUS[1:3])
                assert [(await events.next())["id"] for _ in later] == later
    finally:
        await database.close()
        await redis.aclose()
        await asyncio.to_thread(server.stop)
