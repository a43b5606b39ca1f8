"""Storage upserts/s: the project's repository against bare asyncpg (and bare sqlite3), same rows, same run.

    python bench/storage.py [--rows 5000] [--single-rows 1000] [--batches 1,100,1000] [--repeat 2]
                            [--backends postgresql,sqlite]

The rows are real enriched articles: the 181 news pages of the extraction benchmark (../shared/benchdata/
article-extraction, or --data; the bundled samples when absent) run through the cleaner and the classifier once,
then copied under new ids with a numbered sentence added to the text, so every row is a new article of the usual
size (topics, places, entities, keywords, several KB of JSON). Each measurement
writes --rows rows (--single-rows at batch 1: one transaction per row is slow) in batches of the given size, one
transaction per batch, into empty tables, and the rows/s are wall-clock (the database is another process).

- newsflow repository: `open_repository(url)`, `migrate()`, then `upsert_many(rows)` per batch, as the storage
  stage calls it, with its defaults: the upsert with change detection, topics and places rows and indexes; on
  PostgreSQL the search vector is computed after the commit (NEWSFLOW_SEARCH_INDEX=deferred), so the upsert only
  queues the article ids for it.
- newsflow index loop, every word (PostgreSQL): that deferred indexing. The rows are upserted first, untimed, then
  the queue is drained as a storage worker's index loop drains it; the batch size does not apply. The last line
  combines it with the upsert: the rows/s of both one after the other, an estimate of what a sustained load gets
  when the index loop must keep up (a low one: the two run side by side in separate database backends, so spare
  cores do better).
- newsflow repository, search inline (PostgreSQL): NEWSFLOW_SEARCH_INDEX=inline, the vector of every word computed in
  the upsert; inline lead: the same with NEWSFLOW_SEARCH_SCOPE=lead.
- asyncpg executemany: `INSERT ... ON CONFLICT (id) DO UPDATE` of the same columns into a plain table with the
  same columns and primary key (no secondary index, no search vector, no topics or places tables), one
  connection, the Row objects turned into tuples inside the timing (the JSON document included).
- asyncpg copy_records_to_table: the same tuples into the same plain table with COPY (insert only).
- newsflow repository, search lead (SQLite): the same with NEWSFLOW_SEARCH_SCOPE=lead (search indexes the title, the
  first 1,000 characters of the text and the keywords and entity names, not every word).
- asyncpg executemany, articles table: the first baseline into the repository's own `articles` table, with the
  search vector the repository writes by default (of the title and of `search_text`: every word, the keywords and
  entity names) and its indexes, no topics or places rows: not a baseline, it tells the schema's cost from the
  adapter's.
- sqlite3 executemany: the SQLite counterpart of the first baseline, into a plain table in its own file.

PostgreSQL is DATABASE_URL, else postgresql://postgres@127.0.0.1:5432/test, in a fresh schema dropped at the
end; without one the PostgreSQL rows are skipped with the reason. SQLite uses files in a temp folder. Each
measurement is repeated --repeat times, alternating which method goes first, and the best is kept.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import logging
import os
import platform
import sqlite3
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import asyncpg  # noqa: E402

from services.storage.app import INDEX_BATCH  # noqa: E402
from services.storage.repository import Row, doc_hash, open_repository, search_text  # noqa: E402
from shared.contract import ClassifiedArticle, EnrichedArticle, RawArticle, utcnow  # noqa: E402

DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/test"
DEFAULT_DATA = ROOT.parent / "shared" / "benchdata" / "article-extraction"
SAMPLES = ROOT / "services" / "samples"
AP_SAMPLE = ROOT.parent / "shared" / "samples" / "wire-ap-2022-11-08-north-korea.txt"

COLUMNS = ("id", "url", "source", "title", "text", "language", "published_at", "word_count", "duplicate_of",
           "content_hash", "doc_hash", "doc", "stored_at", "updated_at", "source_entry_id")
PLAIN_PG = """CREATE TABLE bare_articles (
    id text PRIMARY KEY, url text, source text, title text, text text NOT NULL, language text NOT NULL,
    published_at timestamptz, word_count int NOT NULL, duplicate_of text, content_hash text NOT NULL,
    doc_hash text NOT NULL, doc jsonb NOT NULL, stored_at timestamptz NOT NULL, updated_at timestamptz NOT NULL,
    source_entry_id text)"""
PLAIN_SQLITE = """CREATE TABLE bare_articles (
    id TEXT PRIMARY KEY, url TEXT, source TEXT, title TEXT, text TEXT NOT NULL, language TEXT NOT NULL,
    published_at TEXT, word_count INTEGER NOT NULL, duplicate_of TEXT, content_hash TEXT NOT NULL,
    doc_hash TEXT NOT NULL, doc TEXT NOT NULL, stored_at TEXT NOT NULL, updated_at TEXT NOT NULL,
    source_entry_id TEXT)"""
_UPDATE = ", ".join(f"{c} = excluded.{c}" for c in COLUMNS if c not in ("id", "stored_at"))
UPSERT_PG = (f"INSERT INTO bare_articles ({', '.join(COLUMNS)}) VALUES ({', '.join(f'${i + 1}' for i in range(len(COLUMNS)))}) "
             f"ON CONFLICT (id) DO UPDATE SET {_UPDATE}")
# Not a baseline: the first one into the repository's own articles table with the search vector of $16 (the
# repository's `search_text` in the default scope), to tell the schema's cost (the vector, the indexes) from the
# adapter's.
UPSERT_PG_SCHEMA = (
    f"INSERT INTO articles ({', '.join(COLUMNS)}, search_vector) VALUES ({', '.join(f'${i + 1}' for i in range(len(COLUMNS)))}, "
    "setweight(to_tsvector('english'::regconfig, left(coalesce($4, ''), 2000)), 'A') "
    "|| setweight(to_tsvector('english'::regconfig, left($16, 150000)), 'B')) "
    f"ON CONFLICT (id) DO UPDATE SET {_UPDATE}, search_vector = excluded.search_vector")
SCHEMA_METHOD = "asyncpg executemany, articles table"
LEAD_METHOD = "newsflow repository, search lead"
INLINE_METHOD = "newsflow repository, search inline"
INLINE_LEAD_METHOD = "newsflow repository, inline lead"
INDEX_METHOD = "newsflow index loop, every word"
UPSERT_SQLITE = (f"INSERT INTO bare_articles ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))}) "
                 f"ON CONFLICT (id) DO UPDATE SET {_UPDATE}")


# -- the rows ---------------------------------------------------------------------------------------

def sample_articles(data: Path) -> tuple[list[ClassifiedArticle], str]:
    """Real articles through the real cleaner and classifier: the extraction benchmark's news pages when `data`
    holds them, else the bundled samples (and the shared AP story); and where they came from."""
    from services.classifier.transform import classify, load_resources
    from services.cleaner.transform import clean
    from services.fetcher.files import articles_from_file, iter_paths
    from shared.errors import PermanentError

    if (data / "ground-truth.json").is_file():
        truth = json.loads((data / "ground-truth.json").read_text(encoding="utf-8"))
        items = [{"html": gzip.decompress((data / "html" / f"{pid}.html.gz").read_bytes()).decode("utf-8"),
                  "url": truth[pid].get("url"), "source": "bench"} for pid in sorted(truth)]
        origin = f"the {len(items)} news pages of {data}"
    else:
        paths = [str(SAMPLES)] + ([str(AP_SAMPLE)] if AP_SAMPLE.is_file() else [])
        items = [a for p in iter_paths(paths) for a in articles_from_file(p, "bench")]
        origin = "the bundled samples"
    logging.getLogger("trafilatura").setLevel(logging.ERROR)  # pages it discards are skipped below, quietly
    res = load_resources("embedding")
    out = []
    for k, item in enumerate(items):
        try:
            out.append(classify(clean(RawArticle.model_validate(item), article_id=f"t{k}", received_at=utcnow()), res))
        except PermanentError:
            continue  # a page with nothing to extract is not a row
    return out, origin


def make_rows(templates: list[ClassifiedArticle], n: int, tag: str) -> list[Row]:
    now = utcnow()
    rows = []
    for i in range(n):
        t = templates[i % len(templates)]
        text = f"{t.text}\n\nReference {tag}-{i}: this copy was filed as number {i}."
        article = EnrichedArticle(**t.model_dump(exclude={"id", "url", "text", "content_hash", "received_at"}),
                                  id=f"{tag}-{i}", url=f"https://bench.example/{tag}/{i}", text=text,
                                  content_hash=f"{tag}-{i}", received_at=now - timedelta(seconds=1), stored_at=now)
        rows.append(Row(article, doc_hash(article), f"{1_700_000_000_000 + i}-0"))
    return rows


def pg_record(row: Row) -> tuple[Any, ...]:
    a = row.article
    return (a.id, a.url, a.source, a.title, a.text, a.language, a.published_at, a.word_count, a.duplicate_of,
            a.content_hash, row.hash, a.model_dump_json(exclude={"stored_at"}), a.stored_at, a.stored_at,
            row.source_entry_id or None)


def sqlite_record(row: Row) -> tuple[Any, ...]:
    a = row.article
    iso = a.stored_at.isoformat()
    return (a.id, a.url, a.source, a.title, a.text, a.language, a.published_at.isoformat() if a.published_at else None,
            a.word_count, a.duplicate_of, a.content_hash, row.hash, a.model_dump_json(exclude={"stored_at"}), iso, iso,
            row.source_entry_id or None)


def batches(rows: list[Row], size: int) -> list[list[Row]]:
    return [rows[i : i + size] for i in range(0, len(rows), size)]


# -- PostgreSQL -------------------------------------------------------------------------------------

def pg_base_url() -> str:
    return os.environ.get("DATABASE_URL") or DEFAULT_PG


async def pg_reachable(url: str) -> str | None:
    try:
        conn = await asyncpg.connect(url, timeout=3)
    except (OSError, asyncpg.PostgresError, asyncio.TimeoutError) as exc:
        return f"{type(exc).__name__}: {exc}"
    await conn.close()
    return None


async def pg_schema(url: str, create: bool, name: str) -> str:
    """Create (or drop) schema `name`; returns the URL that puts it first on the search path."""
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(f"CREATE SCHEMA {name}" if create else f"DROP SCHEMA IF EXISTS {name} CASCADE")
        version = await conn.fetchval("SHOW server_version")
    finally:
        await conn.close()
    sep = "&" if "?" in url else "?"
    return f"{url}{sep}search_path={name}" if create else version


async def pg_methods(url: str) -> tuple[dict[str, Callable[[list[Row], int], Awaitable[float]]], Callable[[], Awaitable[None]]]:
    repo = open_repository(url)  # the defaults: every word, indexed after the commit
    await repo.connect()
    await repo.migrate()
    inline_repo = open_repository(url, search_index="inline")
    inline_lead_repo = open_repository(url, search_scope="lead", search_index="inline")
    for other in (inline_repo, inline_lead_repo):
        await other.connect()
    conn = await asyncpg.connect(url)
    await conn.execute(PLAIN_PG)

    def upserts(target: Any) -> Callable[[list[Row], int], Awaitable[float]]:
        async def run(rows: list[Row], size: int) -> float:
            await conn.execute("TRUNCATE articles CASCADE")  # topics, places, sources and the search queue go with it
            start = time.perf_counter()
            for batch in batches(rows, size):
                await target.upsert_many(batch)
            return time.perf_counter() - start
        return run

    async def index_loop(rows: list[Row], size: int) -> float:
        """The deferred indexing of the default: the rows upserted first (not timed), then the queue drained as a
        storage worker's index loop drains it, INDEX_BATCH articles per transaction. `size` does not apply."""
        await conn.execute("TRUNCATE articles CASCADE")
        for batch in batches(rows, 1000):
            await repo.upsert_many(batch)
        start = time.perf_counter()
        while await repo.index_pending(INDEX_BATCH):
            pass
        return time.perf_counter() - start

    async def executemany(rows: list[Row], size: int) -> float:
        await conn.execute("TRUNCATE bare_articles")
        start = time.perf_counter()
        for batch in batches(rows, size):
            async with conn.transaction():
                await conn.executemany(UPSERT_PG, [pg_record(r) for r in batch])
        return time.perf_counter() - start

    async def copy(rows: list[Row], size: int) -> float:
        await conn.execute("TRUNCATE bare_articles")
        start = time.perf_counter()
        for batch in batches(rows, size):
            async with conn.transaction():
                await conn.copy_records_to_table("bare_articles", records=[pg_record(r) for r in batch], columns=COLUMNS)
        return time.perf_counter() - start

    async def schema_executemany(rows: list[Row], size: int) -> float:
        await conn.execute("TRUNCATE articles CASCADE")  # topics, places and sources go with it
        start = time.perf_counter()
        for batch in batches(rows, size):
            async with conn.transaction():
                await conn.executemany(UPSERT_PG_SCHEMA, [
                    (*pg_record(r), search_text(r.article)) for r in batch])
        return time.perf_counter() - start

    async def close() -> None:
        await conn.close()
        for each in (repo, inline_repo, inline_lead_repo):
            await each.close()

    methods = {"newsflow repository": upserts(repo), INLINE_METHOD: upserts(inline_repo),
               INLINE_LEAD_METHOD: upserts(inline_lead_repo), INDEX_METHOD: index_loop,
               "asyncpg executemany": executemany, "asyncpg copy_records_to_table": copy, SCHEMA_METHOD: schema_executemany}
    return methods, close


# -- SQLite -----------------------------------------------------------------------------------------

async def sqlite_methods(folder: Path) -> tuple[dict[str, Callable[[list[Row], int], Awaitable[float]]], Callable[[], Awaitable[None]]]:
    async def repository(rows: list[Row], size: int, search_scope: str = "full") -> float:
        # a fresh file each time
        repo = open_repository(f"sqlite:///{folder / f'repo-{uuid.uuid4().hex[:8]}.db'}", search_scope=search_scope)
        await repo.connect()
        await repo.migrate()
        try:
            start = time.perf_counter()
            for batch in batches(rows, size):
                await repo.upsert_many(batch)
            return time.perf_counter() - start
        finally:
            await repo.close()

    async def executemany(rows: list[Row], size: int) -> float:
        # The repository's connection settings (WAL, synchronous=NORMAL), on a worker thread as it does.
        db = sqlite3.connect(folder / f"bare-{uuid.uuid4().hex[:8]}.db", isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute(PLAIN_SQLITE)

        def write(batch: list[Row]) -> None:
            db.execute("BEGIN IMMEDIATE")
            db.executemany(UPSERT_SQLITE, [sqlite_record(r) for r in batch])
            db.execute("COMMIT")

        try:
            start = time.perf_counter()
            for batch in batches(rows, size):
                await asyncio.to_thread(write, batch)
            return time.perf_counter() - start
        finally:
            db.close()

    async def close() -> None:
        return None

    async def repository_lead(rows: list[Row], size: int) -> float:
        return await repository(rows, size, "lead")

    return {"newsflow repository": repository, LEAD_METHOD: repository_lead, "sqlite3 executemany": executemany}, close


# -- main -------------------------------------------------------------------------------------------

async def measure(methods: dict[str, Callable[[list[Row], int], Awaitable[float]]], templates: list[ClassifiedArticle],
                  sizes: list[int], rows_n: int, single_n: int, repeat: int) -> dict[tuple[str, int], float]:
    """rows/s per (method, batch size): best of `repeat`, alternating which method goes first."""
    best: dict[tuple[str, int], float] = {}
    for size in sizes:
        n = single_n if size == 1 else rows_n
        for round_ in range(max(1, repeat)):
            order = list(methods) if round_ % 2 == 0 else list(reversed(methods))
            for name in order:
                rows = make_rows(templates, n, f"b{size}-r{round_}-{uuid.uuid4().hex[:6]}")
                seconds = await methods[name](rows, size)
                best[name, size] = max(best.get((name, size), 0.0), n / seconds)
    return best


def print_table(backend: str, results: dict[tuple[str, int], float], sizes: list[int], names: list[str]) -> None:
    for name in names:
        figures = "".join(f"{results[name, s]:>10,.0f}" for s in sizes)
        print(f"  {backend:<11} {name:<38}{figures}")


async def amain(args: argparse.Namespace) -> int:
    sizes = [int(s) for s in args.batches.split(",")]
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    templates, origin = sample_articles(args.data)
    doc_kb = sum(len(t.model_dump_json()) for t in templates) / len(templates) / 1024
    print(f"storage benchmark: {args.rows} rows per measurement ({args.single_rows} at batch 1): {len(templates)} "
          f"articles cleaned and classified from {origin}, under new ids, {doc_kb:.1f} KB of JSON on average")
    print(f"{os.cpu_count()} cores, Python {platform.python_version()}, asyncpg {asyncpg.__version__}, "
          f"SQLite {sqlite3.sqlite_version}; wall clock, best of {args.repeat}")
    results: dict[str, dict[tuple[str, int], float]] = {}
    header_done = False

    def header() -> None:
        nonlocal header_done
        if not header_done:
            print(f"  {'backend':<11} {'rows/s at batch size':<38}" + "".join(f"{s:>10,}" for s in sizes))
            header_done = True

    if "postgresql" in backends:
        base = pg_base_url()
        reason = await pg_reachable(base)
        if reason:
            print(f"  postgresql skipped: no PostgreSQL at {base.split('@')[-1]} ({reason}); set DATABASE_URL")
        else:
            schema = f"nfbench_{uuid.uuid4().hex[:10]}"
            url = await pg_schema(base, True, schema)
            try:
                methods, close = await pg_methods(url)
                try:
                    results["postgresql"] = await measure(methods, templates, sizes, args.rows, args.single_rows, args.repeat)
                finally:
                    await close()
            finally:
                version = await pg_schema(base, False, schema)
            header()
            print_table("postgresql", results["postgresql"], sizes, list(methods))
            print(f"  (PostgreSQL {version} at {base.split('@')[-1].split('?')[0]}, schema {schema}, dropped)")
    if "sqlite" in backends:
        with tempfile.TemporaryDirectory(prefix="newsflow-bench-") as folder:
            methods, close = await sqlite_methods(Path(folder))
            results["sqlite"] = await measure(methods, templates, sizes, args.rows, args.single_rows, args.repeat)
        header()
        print_table("sqlite", results["sqlite"], sizes, list(methods))

    top = max(sizes)
    pg = results.get("postgresql")
    if pg:
        ours = pg["newsflow repository", top]
        for base in ("asyncpg executemany", "asyncpg copy_records_to_table"):
            short = "executemany" if base == "asyncpg executemany" else "copy"
            print(f"ratio repository/{short} at batch {top:,} (postgresql): {ours / pg[base, top]:.2f} (search inline: "
                  f"{pg[INLINE_METHOD, top] / pg[base, top]:.2f}, inline lead: {pg[INLINE_LEAD_METHOD, top] / pg[base, top]:.2f})")
        print(f"ratio repository, search inline/executemany into the same articles table at batch {top:,} (postgresql): "
              f"{pg[INLINE_METHOD, top] / pg[SCHEMA_METHOD, top]:.2f}")
        # The deferred default moves the tokenizing out of the write, not out of the database: when the index loop
        # must keep up with a sustained load, both run.
        index = pg[INDEX_METHOD, top]
        both = 1 / (1 / ours + 1 / index)
        print(f"deferred search indexing (postgresql): the index loop indexes {index:,.0f} articles/s; upsert then index, "
              f"one after the other: {both:,.0f} rows/s (ratio to executemany {both / pg['asyncpg executemany', top]:.2f})")
    lite = results.get("sqlite")
    if lite:
        print(f"ratio repository/executemany at batch {top:,} (sqlite): "
              f"{lite['newsflow repository', top] / lite['sqlite3 executemany', top]:.2f}"
              f" (search lead: {lite[LEAD_METHOD, top] / lite['sqlite3 executemany', top]:.2f})")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=5000, help="rows per measurement (default 5000)")
    parser.add_argument("--single-rows", type=int, default=1000, help="rows per measurement at batch 1 (default 1000)")
    parser.add_argument("--batches", default="1,100,1000", help="batch sizes, comma-separated (default 1,100,1000)")
    parser.add_argument("--repeat", type=int, default=2, help="timings per measurement, the best kept (default 2)")
    parser.add_argument("--backends", default="postgresql,sqlite", help="postgresql, sqlite or both (the default)")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA,
                        help=f"extraction benchmark folder for real articles (default {DEFAULT_DATA}); "
                             "the bundled samples when absent")
    return asyncio.run(amain(parser.parse_args(argv)))


if __name__ == "__main__":
    raise SystemExit(main())
