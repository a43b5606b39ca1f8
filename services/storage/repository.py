"""One repository interface, two adapters: SQLite (embedded default) and PostgreSQL (asyncpg).

`upsert_many` writes a batch in one transaction, keyed on the article id, and says per id whether the
row was inserted, updated or already held the same document, so storage can announce only real changes.
Migrations are numbered SQL files per backend, recorded in `schema_migrations`.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import resources
from typing import Any, Literal, Protocol
from urllib.parse import urlparse

from shared.contract import ClassifiedArticle, EnrichedArticle

from .query import ORDER, SQLITE_TIME, ArticleQuery, Page, as_utc, build_where, encode_cursor

# "redelivered": unchanged, but from the same stream entry as last time, so announce it again.
Change = Literal["inserted", "updated", "unchanged", "redelivered"]


def doc_hash(article: ClassifiedArticle) -> str:
    """A hash of the article's content, without timestamps of its trip, to tell a real change from a resubmission."""
    data = article.model_dump(mode="json", exclude={"stored_at", "received_at"})
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


# What full-text search indexes besides the title (NEWSFLOW_SEARCH_SCOPE; the repository computes it in its
# upsert since migration 0005). "full": every word of the text, then the keywords and entity names. "lead": the
# text's first LEAD_CHARS characters, then the keywords and entity names the classifier picked from the whole text:
# tokenizing every word is most of the cost of a write on both backends (BENCHMARKS.md, Storage), and a news story
# says who, what and where in its first paragraphs; its main names and terms further down come in with the
# keywords and entities.
SEARCH_SCOPES = ("full", "lead")
LEAD_CHARS = 1000


def check_scope(scope: str) -> str:
    if scope not in SEARCH_SCOPES:
        raise ValueError(f"search scope must be one of {SEARCH_SCOPES}, got {scope!r}")
    return scope


def search_text(article: ClassifiedArticle, scope: str = "full") -> str:
    """The text that full-text search indexes for `article` besides its title."""
    return search_words(article.text, article.keywords, [e.name for e in article.entities], scope)


def search_words(text: str, keywords: Iterable[str], entity_names: Iterable[str], scope: str = "full") -> str:
    """search_text from an article's parts (PostgreSQL's deferred indexing reads them from the stored row)."""
    if check_scope(scope) == "lead" and len(text) > LEAD_CHARS:
        cut = text[:LEAD_CHARS]
        if not text[LEAD_CHARS - 1].isspace() and not text[LEAD_CHARS].isspace():
            cut = cut.rsplit(None, 1)[0]  # the first half of a cut word is not a word
        text = cut
    return "\n".join([text, *keywords, *entity_names])


# When PostgreSQL computes the search vector of the articles it writes (NEWSFLOW_SEARCH_INDEX). "deferred": after
# the commit, by the index loop of every storage worker (migration 0006), so a new article can be found by words a
# moment after it is announced (filters find it at once). "inline": in the upsert, so an article is searchable
# before its enriched event is out, at a third of the write speed (BENCHMARKS.md, Storage). SQLite is always inline.
SEARCH_INDEXING = ("deferred", "inline")


def migrations(backend: str) -> list[tuple[int, str, str]]:
    folder = resources.files("services.storage") / "migrations" / backend
    found = []
    for item in folder.iterdir():
        if item.name.endswith(".sql"):
            version = int(item.name.split("_", 1)[0])
            found.append((version, item.name, item.read_text(encoding="utf-8")))
    return sorted(found)


@dataclass
class Row:
    article: EnrichedArticle
    hash: str
    source_entry_id: str = ""
    # The raw source to keep in article_sources (NEWSFLOW_STORE_RAW): {"url", "html", "text"}, or None.
    raw_source: dict[str, str | None] | None = None


class Repository(Protocol):
    async def connect(self) -> None: ...
    async def close(self) -> None: ...
    async def migrate(self, target: int | None = None) -> list[str]: ...
    async def upsert_many(self, rows: list[Row]) -> dict[str, Change]: ...
    async def get(self, article_id: str) -> dict[str, Any] | None: ...
    async def get_source(self, article_id: str) -> dict[str, Any] | None:
        """The kept raw source of an article: article_id, url, html, text, stored_at; None if none is kept."""
        ...
    async def count(self) -> int: ...
    async def ping(self) -> None: ...
    async def search(self, query: ArticleQuery) -> Page:
        """Stored articles matching every filter of `query`, newest first; ValueError for a bad cursor."""
        ...
    async def delete_older_than(self, cutoff: datetime) -> int:
        """Retention: delete articles stored before `cutoff` (their topics, places and search entries go
        too); returns how many."""
        ...
    async def index_pending(self, limit: int = 200) -> int:
        """Deferred search indexing: index up to `limit` queued articles; how many were indexed (0 when nothing
        waits, or on a backend that indexes in its upsert)."""
        ...
    async def search_backlog(self) -> tuple[int, float]:
        """Articles waiting for deferred search indexing, and the seconds the oldest has waited ((0, 0.0) if none)."""
        ...


# Retention deletes in batches of this many rows, each its own transaction, so storage writes go on between.
DELETE_BATCH = 1000


def open_repository(database_url: str, search_scope: str = "full", search_index: str = "deferred") -> Repository:
    """`search_scope`: what full-text search indexes of the articles this repository writes (SEARCH_SCOPES);
    `search_index`: when PostgreSQL indexes them (SEARCH_INDEXING)."""
    check_scope(search_scope)
    if search_index not in SEARCH_INDEXING:
        raise ValueError(f"search indexing must be one of {SEARCH_INDEXING}, got {search_index!r}")
    scheme = urlparse(database_url).scheme
    if scheme in ("postgres", "postgresql"):
        from .postgres import PostgresRepository

        return PostgresRepository(database_url, search_scope, search_index)
    if scheme == "sqlite":
        return SqliteRepository(sqlite_path(database_url), search_scope)
    raise ValueError(f"DATABASE_URL must be postgresql://... or sqlite:///path, got {scheme or database_url!r}")


def sqlite_path(database_url: str) -> str:
    # sqlite:///relative.db and sqlite:////absolute/path.db, as SQLAlchemy spells them
    rest = database_url.split("sqlite://", 1)[1]
    return rest[1:] if rest.startswith("/") and not rest.startswith("//") else rest[1:] if rest.startswith("//") else rest


class SqliteRepository:
    """stdlib sqlite3 on a worker thread; WAL and a busy timeout so several storage processes can share a file."""

    def __init__(self, path: str, search_scope: str = "full") -> None:
        self.path = path
        self.search_scope = search_scope
        self._conn: sqlite3.Connection | None = None
        self._lock = asyncio.Lock()

    async def _run(self, fn: Any, *args: Any) -> Any:
        async with self._lock:
            return await asyncio.to_thread(fn, *args)

    async def connect(self) -> None:
        if self._conn is not None:
            return
        import os

        if self.path != ":memory:":
            os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)

        def open_() -> sqlite3.Connection:
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute("PRAGMA busy_timeout=30000")
            return conn

        self._conn = await asyncio.to_thread(open_)

    async def close(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            await asyncio.to_thread(conn.close)

    async def ping(self) -> None:
        await self._run(lambda: self._db.execute("SELECT 1").fetchone())

    @property
    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise RuntimeError("repository is not connected")
        return self._conn

    async def migrate(self, target: int | None = None) -> list[str]:
        """Apply pending migrations, up to `target` when given."""

        def apply() -> list[str]:
            db = self._db
            db.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP)")
            done = {r[0] for r in db.execute("SELECT version FROM schema_migrations")}
            applied = []
            for version, name, sql in migrations("sqlite"):
                if version in done or (target is not None and version > target):
                    continue
                db.execute("BEGIN IMMEDIATE")
                try:
                    if version in {r[0] for r in db.execute("SELECT version FROM schema_migrations")}:
                        db.execute("ROLLBACK")
                        continue  # another process applied it while we waited for the lock
                    for statement in _statements(sql):
                        db.execute(statement)
                    db.execute("INSERT INTO schema_migrations (version, name) VALUES (?, ?)", (version, name))
                    db.execute("COMMIT")
                except BaseException:
                    db.execute("ROLLBACK")
                    raise
                applied.append(name)
            return applied

        return await self._run(apply)

    async def upsert_many(self, rows: list[Row]) -> dict[str, Change]:
        def write() -> dict[str, Change]:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                ids = [r.article.id for r in rows]
                existing: dict[str, str] = {}
                sources: dict[str, str | None] = {}
                for i in range(0, len(ids), 500):
                    chunk = ids[i : i + 500]
                    q = f"SELECT id, doc_hash, source_entry_id FROM articles WHERE id IN ({','.join('?' * len(chunk))})"
                    for article_id, hash_, source in db.execute(q, chunk).fetchall():
                        existing[article_id] = hash_
                        sources[article_id] = source
                stored_before = set(existing)  # their topics, places and search entries are replaced
                # Decide row by row, in order, then write the rows that won in a few statements.
                result: dict[str, Change] = {}
                written: dict[str, Row] = {}
                kept_sources = []
                for row in rows:
                    a = row.article
                    old = existing.get(a.id)
                    if old == row.hash:
                        same_entry = bool(row.source_entry_id) and sources.get(a.id) == row.source_entry_id
                        result.setdefault(a.id, "redelivered" if same_entry else "unchanged")
                        if row.raw_source is not None:  # the same content: its source may not be kept yet
                            kept_sources.append(_source_values(row))
                        continue
                    if old is not None and _older(row.source_entry_id, sources.get(a.id)):
                        result.setdefault(a.id, "unchanged")  # a late redelivery never overwrites a newer entry
                        continue
                    written[a.id] = row  # a later version in the batch replaces an earlier one
                    if row.raw_source is not None:
                        kept_sources.append(_source_values(row))
                    result[a.id] = "inserted" if old is None or result.get(a.id) == "inserted" else "updated"
                    existing[a.id] = row.hash
                    sources[a.id] = row.source_entry_id
                replaced = [(i,) for i in written if i in stored_before]
                db.executemany(_SQLITE_UPSERT, [_sqlite_values(r) for r in written.values()])
                db.executemany("DELETE FROM article_topics WHERE article_id = ?", replaced)
                db.executemany("DELETE FROM article_places WHERE article_id = ?", replaced)
                db.executemany("DELETE FROM articles_fts WHERE rowid = (SELECT rowid FROM articles WHERE id = ?)", replaced)
                db.executemany(
                    "INSERT OR REPLACE INTO article_topics (article_id, label, code, score) VALUES (?, ?, ?, ?)",
                    [(i, t.label, t.code, t.score) for i, r in written.items() for t in r.article.topics],
                )
                db.executemany(
                    "INSERT OR REPLACE INTO article_places (article_id, name, kind, code) VALUES (?, ?, ?, ?)",
                    [(i, p.name, p.kind, p.code) for i, r in written.items() for p in r.article.places],
                )
                db.executemany(
                    "INSERT INTO articles_fts (rowid, title, text) SELECT rowid, ?, ? FROM articles WHERE id = ?",
                    [(r.article.title, search_text(r.article, self.search_scope), i) for i, r in written.items()],
                )
                if kept_sources:
                    db.executemany(_SQLITE_SOURCE_UPSERT, kept_sources)
                db.execute("COMMIT")
                return result
            except BaseException:
                db.execute("ROLLBACK")
                raise

        return await self._run(write)

    async def get(self, article_id: str) -> dict[str, Any] | None:
        row = await self._run(lambda: self._db.execute("SELECT doc, stored_at FROM articles WHERE id = ?", (article_id,)).fetchone())
        return None if row is None else {**json.loads(row[0]), "stored_at": row[1]}

    async def get_source(self, article_id: str) -> dict[str, Any] | None:
        sql = "SELECT article_id, url, html, text, stored_at FROM article_sources WHERE article_id = ?"
        row = await self._run(lambda: self._db.execute(sql, (article_id,)).fetchone())
        return None if row is None else dict(zip(("article_id", "url", "html", "text", "stored_at"), row))

    async def count(self) -> int:
        return int((await self._run(lambda: self._db.execute("SELECT count(*) FROM articles").fetchone()))[0])

    async def ids(self) -> list[str]:
        return [r[0] for r in await self._run(lambda: self._db.execute("SELECT id FROM articles").fetchall())]

    async def search(self, query: ArticleQuery) -> Page:
        where = build_where(query, "sqlite")
        sql = (f"SELECT a.doc, a.stored_at, a.sort_at, a.id FROM articles a WHERE {where.sql()} {ORDER} LIMIT ?")
        rows = await self._run(lambda: self._db.execute(sql, [*where.params, query.limit + 1]).fetchall())
        items = [{**json.loads(doc), "stored_at": stored_at} for doc, stored_at, _, _ in rows[: query.limit]]
        next_cursor = None
        if len(rows) > query.limit:
            _, _, sort_at, article_id = rows[query.limit - 1]
            next_cursor = encode_cursor(datetime.fromisoformat(sort_at).replace(tzinfo=timezone.utc), article_id)
        return Page(items=items, next_cursor=next_cursor)

    async def delete_older_than(self, cutoff: datetime, batch_size: int = DELETE_BATCH) -> int:
        # The FTS5 rows go by trigger (migration 0005), topics, places and sources by ON DELETE CASCADE.
        sql = (f"DELETE FROM articles WHERE rowid IN (SELECT rowid FROM articles "
               f"WHERE {SQLITE_TIME.format('stored_at')} < {SQLITE_TIME.format('?')} LIMIT ?)")

        def delete_batch() -> int:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                deleted = db.execute(sql, (as_utc(cutoff).isoformat(), batch_size)).rowcount
                db.execute("COMMIT")
                return deleted
            except BaseException:
                db.execute("ROLLBACK")
                raise

        total = 0
        while True:
            deleted = await self._run(delete_batch)
            total += deleted
            if deleted < batch_size:
                return total

    async def index_pending(self, limit: int = 200) -> int:
        return 0  # the upsert writes the FTS5 rows

    async def search_backlog(self) -> tuple[int, float]:
        return 0, 0.0


_COLUMNS = ("id", "url", "source", "title", "text", "language", "published_at", "word_count", "duplicate_of",
            "content_hash", "doc_hash", "doc", "stored_at", "updated_at", "source_entry_id")

_SQLITE_UPSERT = (
    f"INSERT INTO articles ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))}) "
    "ON CONFLICT (id) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in _COLUMNS if c not in ("id", "stored_at"))
)


# A re-delivered source identical to the kept one is not rewritten (it can be megabytes), and keeps its stored_at.
_SQLITE_SOURCE_UPSERT = (
    "INSERT INTO article_sources (article_id, url, html, text, stored_at) VALUES (?, ?, ?, ?, ?) "
    "ON CONFLICT (article_id) DO UPDATE SET url = excluded.url, html = excluded.html, text = excluded.text, "
    "stored_at = excluded.stored_at WHERE article_sources.url IS NOT excluded.url "
    "OR article_sources.html IS NOT excluded.html OR article_sources.text IS NOT excluded.text"
)


def _source_values(row: Row) -> tuple[Any, ...]:
    src = row.raw_source or {}
    return (row.article.id, *(storable(src.get(k)) for k in ("url", "html", "text")), _iso(row.article.stored_at))


def storable(value: str | None, nul: bool = False) -> str | None:
    """A raw page's text as a database takes it: a lone surrogate (JSON allows "\\ud800") becomes `?`, since
    neither database holds one, and with `nul` NUL becomes U+FFFD; so one odd page cannot fail its batch."""
    if value is None:
        return None
    if nul:
        value = value.replace("\x00", "\ufffd")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        value = value.encode("utf-8", "replace").decode("utf-8")
    return value


def _older(entry_id: str | None, than: str | None) -> bool:
    """Whether stream entry `entry_id` is older than `than`; False when either is not a stream id."""
    try:
        a = tuple(int(x) for x in (entry_id or "").split("-"))
        b = tuple(int(x) for x in (than or "").split("-"))
    except ValueError:
        return False
    return len(a) == len(b) == 2 and a < b


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _sqlite_values(row: Row) -> tuple[Any, ...]:
    a = row.article
    doc = a.model_dump_json(exclude={"stored_at"})
    return (a.id, a.url, a.source, a.title, a.text, a.language, _iso(a.published_at), a.word_count, a.duplicate_of,
            a.content_hash, row.hash, doc, _iso(a.stored_at), _iso(a.stored_at), row.source_entry_id or None)


def _statements(sql: str) -> list[str]:
    """A SQLite migration's statements. A `;` inside a trigger body (BEGIN ... END;), a string or a comment does
    not end a statement: SQLite's own tokenizer says when one is complete. (PostgreSQL runs each file whole.)"""
    statements, current = [], ""
    for piece in sql.split(";"):
        current += piece + ";"
        if sqlite3.complete_statement(current):
            if re.sub(r"--[^\n]*", "", current).strip(" \t\r\n;"):
                statements.append(current.strip())
            current = ""
    return statements
