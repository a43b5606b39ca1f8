"""Rows written the way an older version of the storage schema (2 to 4) held them, for the migration tests:
today's upsert writes today's schema only (since 0005 it writes the search entries itself)."""

from __future__ import annotations

from services.storage.repository import _COLUMNS as COLUMNS
from services.storage.repository import Row, SqliteRepository, _sqlite_values

_COLUMNS = ", ".join(COLUMNS)  # the columns of _sqlite_values, in its order
# The values are _sqlite_values' (times as ISO strings, the document as JSON text), cast by PostgreSQL.
_PG_VALUES = ("$1, $2, $3, $4, $5, $6, $7::text::timestamptz, $8, $9, $10, $11, $12::text::jsonb, "
              "$13::text::timestamptz, $14::text::timestamptz, $15")


async def insert_old_rows(repo, rows: list[Row]) -> None:
    """Articles with their topics and places, by plain INSERTs (the search index is whatever the schema keeps by
    itself: 0003's generated column or triggers; none before 0003)."""
    articles = [_sqlite_values(r) for r in rows]
    topics = [(r.article.id, t.label, t.code, t.score) for r in rows for t in r.article.topics]
    places = [(r.article.id, p.name, p.kind, p.code) for r in rows for p in r.article.places]
    if isinstance(repo, SqliteRepository):
        def write() -> None:
            db = repo._db
            db.executemany(f"INSERT INTO articles ({_COLUMNS}) VALUES ({', '.join('?' * 15)})", articles)
            db.executemany("INSERT INTO article_topics (article_id, label, code, score) VALUES (?, ?, ?, ?)", topics)
            db.executemany("INSERT INTO article_places (article_id, name, kind, code) VALUES (?, ?, ?, ?)", places)

        await repo._run(write)
        return
    async with repo._pool.acquire() as conn, conn.transaction():
        await conn.executemany(f"INSERT INTO articles ({_COLUMNS}) VALUES ({_PG_VALUES})", articles)
        await conn.executemany("INSERT INTO article_topics (article_id, label, code, score) VALUES ($1, $2, $3, $4)", topics)
        await conn.executemany("INSERT INTO article_places (article_id, name, kind, code) VALUES ($1, $2, $3, $4)", places)
