"""The PostgreSQL adapter: asyncpg, one transaction and one statement per batch for the articles (unnest of one
array per column), one each for their topics and places."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import asyncpg

from shared.logging import get_logger

from .query import ORDER, ArticleQuery, Page, as_utc, build_where, encode_cursor
from .repository import DELETE_BATCH, Change, Row, migrations, search_text, search_words, storable

log = get_logger("newsflow.storage")

# A re-delivered source identical to the kept one is not rewritten (it can be megabytes), and keeps its stored_at.
_SOURCE_UPSERT = """
INSERT INTO article_sources AS s (article_id, url, html, text, stored_at) VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (article_id) DO UPDATE SET url = excluded.url, html = excluded.html, text = excluded.text,
    stored_at = excluded.stored_at
WHERE (s.url, s.html, s.text) IS DISTINCT FROM (excluded.url, excluded.html, excluded.text)
"""

# The search vector of a title and the search text that `search_text` made for the repository's search scope.
# A tsvector holds at most 1 MB: only the start of a very long text is indexed (as in migration 0003).
_VECTOR = ("setweight(to_tsvector('english'::regconfig, left(coalesce({t}.title, ''), 2000)), 'A') "
           "|| setweight(to_tsvector('english'::regconfig, left({t}.search_text, 150000)), 'B')")

# One statement per batch: the rows come as one array per column (asyncpg sends them in binary), a row whose stored
# document has the same hash is not written at all. With search indexed inline the vector is computed here (see
# migration 0005); deferred, a new row has none yet and a rewritten one keeps its old one until the index loop
# computes the new one (migration 0006).
_UPSERT = """
WITH previous AS (
    SELECT id, source_entry_id, doc_hash FROM articles WHERE id = ANY($1::text[])
), written AS (
INSERT INTO articles AS a (id, url, source, title, text, language, published_at, word_count, duplicate_of,
                           content_hash, doc_hash, doc, stored_at, updated_at, source_entry_id, search_vector)
SELECT i.id, i.url, i.source, i.title, i.text, i.language, i.published_at, i.word_count, i.duplicate_of,
       i.content_hash, i.doc_hash, i.doc::jsonb, i.stored_at, i.stored_at, i.source_entry_id, {vector}
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::timestamptz[], $8::int[],
            $9::text[], $10::text[], $11::text[], $12::text[], $13::timestamptz[], $14::text[], $15::text[])
    AS i(id, url, source, title, text, language, published_at, word_count, duplicate_of, content_hash, doc_hash, doc,
         stored_at, source_entry_id, search_text)
LEFT JOIN previous p USING (id)
WHERE p.doc_hash IS DISTINCT FROM i.doc_hash
ON CONFLICT (id) DO UPDATE SET
    url = excluded.url, source = excluded.source, title = excluded.title, text = excluded.text,
    language = excluded.language, published_at = excluded.published_at, word_count = excluded.word_count,
    duplicate_of = excluded.duplicate_of, content_hash = excluded.content_hash, doc_hash = excluded.doc_hash,
    doc = excluded.doc, updated_at = excluded.updated_at, source_entry_id = excluded.source_entry_id{set_vector}
WHERE a.doc_hash IS DISTINCT FROM excluded.doc_hash
  -- An older stream entry of the article (a late redelivery) never overwrites a newer one.
  AND CASE WHEN a.source_entry_id ~ '^[0-9]+-[0-9]+$' AND excluded.source_entry_id ~ '^[0-9]+-[0-9]+$'
      THEN (split_part(excluded.source_entry_id, '-', 1)::bigint, split_part(excluded.source_entry_id, '-', 2)::bigint)
        >= (split_part(a.source_entry_id, '-', 1)::bigint, split_part(a.source_entry_id, '-', 2)::bigint)
      ELSE true END
RETURNING id, (xmax = 0) AS inserted
)
SELECT i.id, w.inserted, (w.id IS NULL AND p.source_entry_id = i.source_entry_id) AS redelivered,
       (p.doc_hash = i.doc_hash) AS same_doc
FROM unnest($1::text[], $11::text[], $14::text[]) AS i(id, doc_hash, source_entry_id)
LEFT JOIN written w USING (id) LEFT JOIN previous p USING (id)
"""
_UPSERT_INLINE = _UPSERT.format(vector=_VECTOR.format(t="i"), set_vector=",\n    search_vector = excluded.search_vector")
_UPSERT_DEFERRED = _UPSERT.format(vector="NULL", set_vector="")
_QUEUE = "INSERT INTO search_queue (article_id) SELECT unnest($1::text[]) ON CONFLICT DO NOTHING"

# The index loop's batch, in one transaction: queued ids (SKIP LOCKED, so storage replicas share the queue), their
# articles (SKIP LOCKED as well: an article that an upsert is rewriting now waits in the queue for the next pass,
# rather than this transaction waiting on the upsert while the upsert waits on the queue row), the vectors, and the
# queue rows of the articles indexed. The search text is made by `search_words`, as the inline upsert's is.
_PICK = "SELECT article_id FROM search_queue ORDER BY queued_at LIMIT $1 FOR UPDATE SKIP LOCKED"
_TO_INDEX = """
SELECT id, title, text, doc->'keywords' AS keywords, jsonb_path_query_array(doc, '$.entities[*].name') AS names
FROM articles WHERE id = ANY($1::text[]) FOR UPDATE SKIP LOCKED
"""
_INDEX = f"""
UPDATE articles a SET search_vector = {_VECTOR.format(t="i")}
FROM unnest($1::text[], $2::text[], $3::text[]) AS i(id, title, search_text) WHERE a.id = i.id
"""

_TOPICS = ("INSERT INTO article_topics (article_id, label, code, score) "
           "SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::real[]) ON CONFLICT DO NOTHING")
_PLACES = ("INSERT INTO article_places (article_id, name, kind, code) "
           "SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) ON CONFLICT DO NOTHING")


class PostgresRepository:
    def __init__(self, dsn: str, search_scope: str = "full", search_index: str = "deferred") -> None:
        self.dsn = dsn
        self.search_scope = search_scope
        self.search_index = search_index
        self.pool: asyncpg.Pool | None = None

    async def connect(self) -> None:
        if self.pool is None:
            self.pool = await asyncpg.create_pool(self.dsn, min_size=1, max_size=4, command_timeout=60)

    async def close(self) -> None:
        if self.pool is not None:
            pool, self.pool = self.pool, None
            await pool.close()

    @property
    def _pool(self) -> asyncpg.Pool:
        if self.pool is None:
            raise RuntimeError("repository is not connected")
        return self.pool

    async def ping(self) -> None:
        async with self._pool.acquire() as conn:
            await conn.fetchval("SELECT 1")

    async def migrate(self, target: int | None = None) -> list[str]:
        applied = []
        async with self._pool.acquire() as conn:
            # One migrator at a time across every storage replica.
            await conn.execute("SELECT pg_advisory_lock(7418800101)")
            try:
                await conn.execute(
                    "CREATE TABLE IF NOT EXISTS schema_migrations (version int PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
                )
                done = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
                for version, name, sql in migrations("postgres"):
                    if version in done or (target is not None and version > target):
                        continue
                    async with conn.transaction():
                        # The whole file in one simple-protocol query: PostgreSQL splits it itself, dollar quotes too.
                        await conn.execute(sql)
                        await conn.execute("INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", version, name)
                    applied.append(name)
            finally:
                await conn.execute("SELECT pg_advisory_unlock(7418800101)")
        return applied

    async def upsert_many(self, rows: list[Row]) -> dict[str, Change]:
        latest: dict[str, Row] = {}
        for row in rows:  # one statement cannot touch a row twice: the last version in the batch wins
            latest[row.article.id] = row
        inline = self.search_index == "inline"
        columns = list(zip(*(_record(r, self.search_scope if inline else None) for r in latest.values())))
        async with self._pool.acquire() as conn, conn.transaction():
            reply = await conn.fetch(_UPSERT_INLINE if inline else _UPSERT_DEFERRED, *columns) if columns else []
            written = [r["id"] for r in reply if r["inserted"] is not None]
            if written and not inline:
                await conn.execute(_QUEUE, written)
            updated = [r["id"] for r in reply if r["inserted"] is False]
            if updated:  # a new article has no old topics or places to forget
                await conn.execute("DELETE FROM article_topics WHERE article_id = ANY($1)", updated)
                await conn.execute("DELETE FROM article_places WHERE article_id = ANY($1)", updated)
            topics = [(i, t.label, t.code, t.score) for i in written for t in latest[i].article.topics]
            places = [(i, p.name, p.kind, p.code) for i in written for p in latest[i].article.places]
            if topics:
                await conn.execute(_TOPICS, *zip(*topics))
            if places:
                await conn.execute(_PLACES, *zip(*places))
            # Sources of the articles written now, and of those already stored with the same content (their
            # source may not be kept yet); never of a late redelivery that lost to a newer entry.
            kept = [latest[r["id"]] for r in reply if r["inserted"] is not None or r["same_doc"]]
            sources = [_source_record(row) for row in kept if row.raw_source is not None]
            if sources:
                await conn.executemany(_SOURCE_UPSERT, sources)
        result: dict[str, Change] = {}
        for r in reply:
            if r["inserted"] is not None:
                result[r["id"]] = "inserted" if r["inserted"] else "updated"
            else:
                result[r["id"]] = "redelivered" if r["redelivered"] else "unchanged"
        return result

    async def index_pending(self, limit: int = 200) -> int:
        async with self._pool.acquire() as conn, conn.transaction():
            queued = [r["article_id"] for r in await conn.fetch(_PICK, limit)]
            if not queued:
                return 0
            rows = await conn.fetch(_TO_INDEX, queued)
            if not rows:  # every one of them is being rewritten right now: the next pass takes them
                return 0
            ids = [r["id"] for r in rows]
            titles = [r["title"] for r in rows]
            texts = [search_words(r["text"] or "", json.loads(r["keywords"] or "[]"), json.loads(r["names"] or "[]"),
                                  self.search_scope) for r in rows]
            try:
                async with conn.transaction():  # a savepoint: a refused value must not stop the queue
                    await conn.execute(_INDEX, ids, titles, texts)
                indexed = len(ids)
            except _REFUSED:
                indexed = await _index_one_by_one(conn, ids, titles, texts)
            # An article PostgreSQL refused leaves the queue too: retrying it would block the queue for good.
            await conn.execute("DELETE FROM search_queue WHERE article_id = ANY($1::text[])", ids)
        return indexed

    async def search_backlog(self) -> tuple[int, float]:
        async with self._pool.acquire() as conn:
            row = await conn.fetchrow("SELECT count(*) AS n, extract(epoch FROM now() - min(queued_at)) AS age FROM search_queue")
        return int(row["n"]), max(0.0, float(row["age"] or 0.0))

    async def get(self, article_id: str) -> dict[str, Any] | None:
        async with self._pool.acquire() as conn:
            row = await conn.fetchrow("SELECT doc::text AS doc, stored_at FROM articles WHERE id = $1", article_id)
        return None if row is None else {**json.loads(row["doc"]), "stored_at": row["stored_at"].isoformat()}

    async def get_source(self, article_id: str) -> dict[str, Any] | None:
        async with self._pool.acquire() as conn:
            row = await conn.fetchrow(
                "SELECT article_id, url, html, text, stored_at FROM article_sources WHERE article_id = $1", article_id)
        return None if row is None else {**dict(row), "stored_at": row["stored_at"].isoformat()}

    async def count(self) -> int:
        async with self._pool.acquire() as conn:
            return int(await conn.fetchval("SELECT count(*) FROM articles"))

    async def ids(self) -> list[str]:
        async with self._pool.acquire() as conn:
            return [r["id"] for r in await conn.fetch("SELECT id FROM articles")]

    async def search(self, query: ArticleQuery) -> Page:
        where = build_where(query, "postgres")
        limit = f"${len(where.params) + 1}"
        sql = (f"SELECT a.doc::text AS doc, a.stored_at, a.sort_at, a.id FROM articles a "
               f"WHERE {where.sql()} {ORDER} LIMIT {limit}")
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(sql, *where.params, query.limit + 1)
        items = [{**json.loads(r["doc"]), "stored_at": r["stored_at"].isoformat()} for r in rows[: query.limit]]
        next_cursor = None
        if len(rows) > query.limit:
            last = rows[query.limit - 1]
            next_cursor = encode_cursor(last["sort_at"], last["id"])
        return Page(items=items, next_cursor=next_cursor)

    async def delete_older_than(self, cutoff: datetime, batch_size: int = DELETE_BATCH) -> int:
        # Topics, places and sources go by ON DELETE CASCADE; the search vector is a column of the row.
        sql = ("DELETE FROM articles WHERE id IN (SELECT id FROM articles WHERE stored_at < $1 LIMIT $2 "
               "FOR UPDATE SKIP LOCKED)")
        total = 0
        async with self._pool.acquire() as conn:
            while True:
                status = await conn.execute(sql, as_utc(cutoff), batch_size)
                deleted = int(status.split()[-1])
                total += deleted
                if deleted < batch_size:
                    return total


# What PostgreSQL answers for a value it cannot index (e.g. "string is too long for tsvector"), as opposed to an
# outage, which fails the pass and leaves the queue as it was.
_REFUSED = (asyncpg.exceptions.DataError, asyncpg.exceptions.ProgramLimitExceededError)


async def _index_one_by_one(conn: asyncpg.Connection, ids: list[str], titles: list[str | None], texts: list[str]) -> int:
    """Index each article in its own savepoint; an article refused is logged and stays unsearchable by its words
    (filters still find it). Returns how many were indexed."""
    indexed = 0
    for article_id, title, text in zip(ids, titles, texts):
        try:
            async with conn.transaction():
                await conn.execute(_INDEX, [article_id], [title], [text])
            indexed += 1
        except _REFUSED as exc:
            log.warning("search_index_refused", article_id=article_id, error=f"{type(exc).__name__}: {exc}"[:300])
    return indexed


def _source_record(row: Row) -> tuple[Any, ...]:
    src = row.raw_source or {}
    # PostgreSQL text cannot hold NUL, which a raw page may carry (SQLite can).
    return (row.article.id, *(storable(src.get(k), nul=True) for k in ("url", "html", "text")), row.article.stored_at)


def _record(row: Row, search_scope: str | None) -> tuple[Any, ...]:
    """A row in the order of _UPSERT's arrays; a naive time is UTC, as everywhere in storage. No search text
    without a `search_scope` (deferred indexing makes it later)."""
    a = row.article
    return (a.id, a.url, a.source, a.title, a.text, a.language, as_utc(a.published_at) if a.published_at else None,
            a.word_count, a.duplicate_of, a.content_hash, row.hash, a.model_dump_json(exclude={"stored_at"}),
            as_utc(a.stored_at), row.source_entry_id or None,
            search_text(a, search_scope) if search_scope else None)
