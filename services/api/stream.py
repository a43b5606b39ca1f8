"""`GET /v1/stream`: new enriched articles as Server-Sent Events, read from `{prefix}:enriched`.

Every client is a plain reader (XREAD BLOCK from the last entry it saw, no consumer group), so clients
never take entries from each other or from the downstream groups, and nothing is acked or left pending.
An event's `id` is the stream entry id and its `data` the entry's `body` JSON as storage published it;
a client resumes after an id with `Last-Event-ID` (what a browser's EventSource sends on reconnect) or
`since_id`. Resuming works as far back as the stream still holds entries (NEWSFLOW_STREAM_RETENTION_S);
older articles are for `GET /v1/articles?since=...`.

The matching of an article against the filters is a plain function (`matches`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from dataclasses import dataclass
from typing import Any, AsyncIterator

from fastapi.sse import ServerSentEvent

from services.storage.query import topic_terms
from shared.logging import get_logger
from shared.transport.runner import is_transient_redis

log = get_logger("newsflow.api")

# A stream entry id as XREAD takes it ("1718000000000-0"; "0" for the start of the stream).
ENTRY_ID = re.compile(r"^\d{1,20}(-\d{1,20})?$")
BLOCK_MS = 10_000  # one XREAD waits this long at most; shutdown does not wait for it (see `follow`)
READ_COUNT = 100
MAX_BACKOFF_S = 5.0


@dataclass(frozen=True)
class Filters:
    """What a client follows; None matches everything. The same rules as the search's filters
    (services/storage/query.py): topic and place case-insensitive, language lower-case, source exact."""

    topic: str | None = None  # a topic label (`politics`), short IPTC key (`conflict`) or code (`medtop:11000000`)
    place: str | None = None  # a place name (`Seoul`) or ISO 3166-1 country code (`KR`)
    language: str | None = None  # ISO 639-1
    source: str | None = None

    @classmethod
    def of(cls, **given: str | None) -> Filters:
        """Blank values are no filter, as in the search (`?topic=` filters nothing)."""
        return cls(**{k: (v.strip() or None) if v is not None else None for k, v in given.items()})


def _same(a: Any, b: str) -> bool:
    return isinstance(a, str) and a.casefold() == b.casefold()


def matches(article: dict[str, Any], filters: Filters) -> bool:
    """Whether an enriched article (the `body` JSON) passes every filter that is set."""
    if filters.language is not None and article.get("language") != filters.language.lower():
        return False
    if filters.source is not None and article.get("source") != filters.source:
        return False
    if filters.topic is not None:
        terms = topic_terms(filters.topic)
        topics = [t for t in article.get("topics") or [] if isinstance(t, dict)]
        if not any(_same(t.get("label"), term) or _same(t.get("code"), term) for t in topics for term in terms):
            return False
    if filters.place is not None:
        places = [p for p in article.get("places") or [] if isinstance(p, dict)]
        if not any(_same(p.get("name"), filters.place) or _same(p.get("code"), filters.place) for p in places):
            return False
    return True


def decode_entry(fields: dict[bytes, bytes]) -> tuple[str, dict[str, Any]] | None:
    """The entry's body (text, and parsed), or None when it is not a JSON object (never published by storage,
    but a stream is writable by anyone with Redis access)."""
    raw = fields.get(b"body")
    if raw is None:
        return None
    try:
        text = raw.decode("utf-8")
        article = json.loads(text)
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    return (text, article) if isinstance(article, dict) else None


async def newest_id(redis: Any, stream: str) -> str:
    """Where a client that asked for nothing older starts: after the stream's newest entry ("0-0" when empty).
    A concrete id, not "$": every later XREAD continues from it, so nothing added between reads is missed."""
    newest = await redis.xrevrange(stream, count=1)
    if not newest:
        return "0-0"
    entry_id = newest[0][0]
    return entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)


async def _read_or_stop(redis: Any, stream: str, after: str, stopping: asyncio.Event) -> list[Any] | None:
    """One XREAD BLOCK, given up at once when the server starts shutting down (None then)."""
    read = asyncio.ensure_future(redis.xread({stream: after}, count=READ_COUNT, block=BLOCK_MS))
    stop = asyncio.ensure_future(stopping.wait())
    try:
        await asyncio.wait({read, stop}, return_when=asyncio.FIRST_COMPLETED)
    except BaseException:  # the client went away (FastAPI cancels us): the read goes too
        read.cancel()
        raise
    finally:
        stop.cancel()
    if not read.done():
        read.cancel()  # stopping; redis-py drops the connection of a cancelled blocking command
        return None
    return read.result() or []


async def follow(redis: Any, stream: str, after: str, filters: Filters, stopping: asyncio.Event,
                 opened: dict[str, int] | None = None) -> AsyncIterator[ServerSentEvent]:
    """The event stream of one client: a first comment once it is following (clients and tests can wait for
    it), then one event per matching entry after `after`, until the server stops or the client goes away
    (FastAPI cancels the generator then). A Redis outage is waited out and reading resumes where it stopped.
    `opened["streams"]` counts the open streams (app.state.open: for debugging and tests)."""
    if opened is not None:
        opened["streams"] = opened.get("streams", 0) + 1
    last, delay = after, 0.2
    try:
        yield ServerSentEvent(comment=f"following {stream} after {last}")
        while not stopping.is_set():
            try:
                reply = await _read_or_stop(redis, stream, last, stopping)
            except Exception as exc:
                if not is_transient_redis(exc):
                    raise
                log.warning("api_stream_redis_unavailable", error=f"{type(exc).__name__}: {exc}"[:200], retry_in_s=delay)
                with contextlib.suppress(asyncio.TimeoutError):  # a wait that shutdown cuts short
                    await asyncio.wait_for(stopping.wait(), delay)
                delay = min(delay * 2, MAX_BACKOFF_S)
                continue
            delay = 0.2
            for _, entries in reply or []:
                for entry_id, fields in entries:
                    last = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
                    decoded = decode_entry(fields)
                    if decoded is not None and matches(decoded[1], filters):
                        yield ServerSentEvent(raw_data=decoded[0], id=last)
    finally:
        if opened is not None:
            opened["streams"] -= 1
