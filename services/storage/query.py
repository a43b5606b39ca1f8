"""The article query: what `Repository.search` takes and returns, and the parts both backends share.

Filters combine with AND. Results come newest first by (COALESCE(published_at, stored_at), id), in pages
joined by an opaque keyset cursor, so a page never repeats or skips a row that was there when paging began.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator

MAX_LIMIT = 500


class ArticleQuery(BaseModel):
    q: str | None = Field(None, max_length=1000, description=(
        "Full-text search on the title, the text (all of it, or its first 1,000 characters with "
        "NEWSFLOW_SEARCH_SCOPE=lead), keywords and entity names (words, \"a phrase\", or, -word)."))
    topic: str | None = Field(None, description='An IPTC topic label ("politics"), key ("conflict") or code ("medtop:11000000"); case-insensitive.')
    place: str | None = Field(None, description='A place name ("North Korea") or ISO 3166-1 code ("KP"); case-insensitive.')
    source: str | None = Field(None, description="The article's source, exactly.")
    language: str | None = Field(None, description="ISO 639-1 code, e.g. en.")
    since: datetime | None = Field(None, description="Published (else stored) at or after this time; naive times are UTC.")
    until: datetime | None = Field(None, description="Published (else stored) before this time; naive times are UTC.")
    duplicate: bool | None = Field(None, description="True: only duplicates (duplicate_of set); False: only originals.")
    cursor: str | None = Field(None, max_length=2000, description="Opaque: the next_cursor of the previous page.")
    limit: int = Field(50, ge=1, le=MAX_LIMIT, description="Articles per page.")

    @field_validator("q", "topic", "place", "source", "language", "cursor")
    @classmethod
    def _blank_is_none(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if "\x00" in value:  # PostgreSQL text cannot hold it: refuse it here rather than fail the query
            raise ValueError("must not contain NUL characters")
        # `?topic=` from a query string means no filter, not "articles with an empty topic".
        return value.strip() or None

    @field_validator("language")
    @classmethod
    def _lower(cls, value: str | None) -> str | None:
        return value.lower() if value else value

    @field_validator("since", "until")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        try:
            return as_utc(value) if value is not None else None
        except OverflowError:  # 9999-12-31T23:00-05:00 is past datetime's range in UTC
            raise ValueError("out of range in UTC") from None


class Page(BaseModel):
    items: list[dict[str, Any]]
    next_cursor: str | None = None


def as_utc(value: datetime) -> datetime:
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


# -- cursors ----------------------------------------------------------------------------------------------

def encode_cursor(sort_at: datetime, article_id: str) -> str:
    raw = json.dumps([as_utc(sort_at).isoformat(), article_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """The sort key of the last row of the previous page; ValueError for anything we did not hand out."""
    try:
        raw = base64.b64decode(cursor + "=" * (-len(cursor) % 4), altchars=b"-_", validate=True)
        sort_at, article_id = json.loads(raw)
        if not isinstance(sort_at, str) or not isinstance(article_id, str):
            raise TypeError("not two strings")
        return as_utc(datetime.fromisoformat(sort_at)), article_id
    except (binascii.Error, UnicodeDecodeError, ValueError, TypeError, OverflowError) as exc:
        raise ValueError(f"invalid cursor: {exc}") from None


# -- topics -----------------------------------------------------------------------------------------------

def topic_terms(topic: str) -> list[str]:
    """What a topic filter may match, case-insensitively, in article_topics.label or .code: the input
    itself and, for a short IPTC key such as "conflict", its label and code."""
    from services.classifier.topics import IPTC_TOPICS

    iptc = IPTC_TOPICS.get(topic.lower())
    return [topic, *iptc] if iptc is not None else [topic]


# -- SQLite full-text ------------------------------------------------------------------------------------

_FTS_TOKEN = re.compile(r'(-?)"([^"]*)"?|(\S+)')


def fts5_query(q: str) -> str | None:
    """A user's search as an FTS5 expression that cannot be a syntax error, close to PostgreSQL's
    websearch_to_tsquery: words are ANDed, "quoted words" are a phrase, `or` between words is OR, `-word`
    excludes. Every term is an FTS5 string, so FTS5 operators, column filters and stray quotes in the input
    are plain words. None when nothing searchable is left (punctuation only, or only exclusions)."""
    groups: list[tuple[list[str], list[str]]] = [([], [])]
    for match in _FTS_TOKEN.finditer(q):
        negated, phrase, word = match.group(1) == "-", match.group(2), match.group(3)
        if word is not None:
            if word.lower() == "or":
                if groups[-1][0] or groups[-1][1]:
                    groups.append(([], []))
                continue
            negated, phrase = word.startswith("-") and len(word) > 1, word
            if negated:
                phrase = phrase[1:]
        # A term with no letter or digit has no token for FTS5's tokenizer to find: drop it.
        if not any(c.isalnum() for c in phrase):
            continue
        quoted = '"' + phrase.replace('"', '""') + '"'
        groups[-1][1 if negated else 0].append(quoted)
    # FTS5's NOT is binary, so a group of exclusions alone cannot be said; such a group is dropped.
    parts = [" AND ".join(pos) + "".join(f" NOT {n}" for n in neg) for pos, neg in groups if pos]
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else " OR ".join(f"({p})" for p in parts)


# -- the WHERE clause, shared by both dialects -------------------------------------------------------------

SQLITE_TIME = "strftime('%Y-%m-%dT%H:%M:%f', {})"  # UTC, milliseconds: the form of SQLite's sort_at column


@dataclass
class Where:
    """Conditions on `articles a` and their parameters, numbered for asyncpg ($1) or positional for sqlite3 (?)."""

    dialect: Literal["sqlite", "postgres"]
    params: list[Any] = field(default_factory=list)
    conditions: list[str] = field(default_factory=list)

    def p(self, value: Any, cast: str = "") -> str:
        self.params.append(value)
        if self.dialect == "sqlite":
            return "?"
        return f"${len(self.params)}{cast}"

    def time(self, value: datetime) -> str:
        # SQLite compares its text timestamps in one normal form, made by SQLite itself on both sides.
        if self.dialect == "sqlite":
            return SQLITE_TIME.format(self.p(as_utc(value).isoformat()))
        return self.p(value, "::timestamptz")

    def sql(self) -> str:
        return " AND ".join(self.conditions) if self.conditions else "TRUE"


def build_where(query: ArticleQuery, dialect: Literal["sqlite", "postgres"]) -> Where:
    """Every condition of `query`, cursor included, on `articles a`, whose sort key is the column `sort_at`
    (COALESCE(published_at, stored_at)) and whose full-text column is `search_vector` (PostgreSQL) or the
    FTS5 table `articles_fts` on the same rowid (SQLite). Raises ValueError for a bad cursor."""
    w = Where(dialect)
    if query.q:
        if dialect == "postgres":
            w.conditions.append(f"a.search_vector @@ websearch_to_tsquery('english', {w.p(query.q, '::text')})")
        else:
            expression = fts5_query(query.q)
            if expression is None:
                w.conditions.append("1 = 0")  # nothing searchable in q: nothing matches, as on PostgreSQL
            else:
                w.conditions.append(f"a.rowid IN (SELECT rowid FROM articles_fts WHERE articles_fts MATCH {w.p(expression)})")
    if query.topic:
        terms = topic_terms(query.topic)
        labels = ", ".join(f"lower({w.p(t, '::text')})" for t in terms)
        codes = ", ".join(f"lower({w.p(t, '::text')})" for t in terms)
        w.conditions.append(
            "EXISTS (SELECT 1 FROM article_topics t WHERE t.article_id = a.id "
            f"AND (lower(t.label) IN ({labels}) OR lower(t.code) IN ({codes})))"
        )
    if query.place:
        name, code = w.p(query.place, "::text"), w.p(query.place, "::text")
        w.conditions.append(
            "EXISTS (SELECT 1 FROM article_places pl WHERE pl.article_id = a.id "
            f"AND (lower(pl.name) = lower({name}) OR lower(pl.code) = lower({code})))"
        )
    if query.source:
        w.conditions.append(f"a.source = {w.p(query.source)}")
    if query.language:
        w.conditions.append(f"a.language = {w.p(query.language)}")
    if query.duplicate is not None:
        w.conditions.append("a.duplicate_of IS NOT NULL" if query.duplicate else "a.duplicate_of IS NULL")
    if query.since is not None:
        w.conditions.append(f"a.sort_at >= {w.time(query.since)}")
    if query.until is not None:
        w.conditions.append(f"a.sort_at < {w.time(query.until)}")
    if query.cursor is not None:
        sort_at, article_id = decode_cursor(query.cursor)
        w.conditions.append(f"(a.sort_at, a.id) < ({w.time(sort_at)}, {w.p(article_id, '::text')})")
    return w


ORDER = "ORDER BY a.sort_at DESC, a.id DESC"
