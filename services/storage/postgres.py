"""The PostgreSQL adapter: asyncpg, one transaction and one round trip per batch (jsonb_to_recordset)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import asyncpg

from .query import ORDER, ArticleQuery, Page, as_utc, build_where, encode_cursor
from .repository import DELETE_BATCH, Change, Row, _statements, migrations, storable

# A re-delivered source identical to the kept one is not rewritten (it can be megabytes), and keeps its stored_at.
_SOURCE_UPSERT = """
INSERT INTO article_sources AS s (article_id, url, html, text, stored_at) VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (article_id) DO UPDATE SET url = excluded.url, html = excluded.html, text = excluded.text,
    stored_at = excluded.stored_at
WHERE (s.url, s.html, s.text) IS DISTINCT FROM (excluded.url, excluded.html, excluded.text)
"""

_UPSERT = """
WITH incoming AS (
    SELECT * FROM jsonb_to_recordset($1::jsonb) AS x(
        id text, url text, source text, title text, text text, language text, published_at timestamptz,
        word_count int, duplicate_of text, content_hash text, doc_hash text, doc jsonb, stored_at timestamptz,
        source_entry_id text)
), previous AS (
    SELECT a.id, a.source_entry_id, a.doc_hash FROM articles a JOIN incoming USING (id)
), written AS (
INSERT INTO articles AS a (id, url, source, title, text, language, published_at, word_count, duplicate_of,
                           content_hash, doc_hash, doc, stored_at, updated_at, source_entry_id)
SELECT id, url, source, title, text, language, published_at, word_count, duplicate_of,
       content_hash, doc_hash, doc, stored_at, stored_at, source_entry_id FROM incoming
ON CONFLICT (id) DO UPDATE SET
    url = excluded.url, source = excluded.source, title = excluded.title, text = excluded.text,
    language = excluded.language, published_at = excluded.published_at, word_count = excluded.word_count,
    duplicate_of = excluded.duplicate_of, content_hash = excluded.content_hash, doc_hash = excluded.doc_hash,
    doc = excluded.doc, updated_at = excluded.updated_at, source_entry_id = excluded.source_entry_id
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
FROM incoming i LEFT JOIN written w USING (id) LEFT JOIN previous p USING (id)
"""


class PostgresRepository:
    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
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
                        for statement in _statements(sql):
                            await conn.execute(statement)
                        await conn.execute("INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", version, name)
                    applied.append(name)
            finally:
                await conn.execute("SELECT pg_advisory_unlock(7418800101)")
        return applied

    async def upsert_many(self, rows: list[Row]) -> dict[str, Change]:
        latest: dict[str, Row] = {}
        for row in rows:  # one statement cannot touch a row twice: the last version in the batch wins
            latest[row.article.id] = row
        payload = json.dumps([_record(r) for r in latest.values()])
        async with self._pool.acquire() as conn, conn.transaction():
            reply = await conn.fetch(_UPSERT, payload)
            changed = [r for r in reply if r["inserted"] is not None]
            ids = [r["id"] for r in changed]
            if ids:
                await conn.execute("DELETE FROM article_topics WHERE article_id = ANY($1)", ids)
                await conn.execute("DELETE FROM article_places WHERE article_id = ANY($1)", ids)
                topics = [(i, t.label, t.code, t.score) for i in ids for t in latest[i].article.topics]
                places = list({(i, p.name, p.kind, p.code): None for i in ids for p in latest[i].article.places})
                if topics:
                    await conn.executemany("INSERT INTO article_topics (article_id, label, code, score) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING", topics)
                if places:
                    await conn.executemany("INSERT INTO article_places (article_id, name, kind, code) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING", places)
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


def _source_record(row: Row) -> tuple[Any, ...]:
    src = row.raw_source or {}
    # PostgreSQL text cannot hold NUL, which a raw page may carry (SQLite can).
    return (row.article.id, *(storable(src.get(k), nul=True) for k in ("url", "html", "text")), row.article.stored_at)


def _record(row: Row) -> dict[str, Any]:
    a = row.article
    return {
        "id": a.id, "url": a.url, "source": a.source, "title": a.title, "text": a.text, "language": a.language,
        "published_at": a.published_at.isoformat() if a.published_at else None, "word_count": a.word_count,
        "duplicate_of": a.duplicate_of, "content_hash": a.content_hash, "doc_hash": row.hash,
        "doc": json.loads(a.model_dump_json(exclude={"stored_at"})), "stored_at": a.stored_at.isoformat(),
        "source_entry_id": row.source_entry_id or None,
    }
