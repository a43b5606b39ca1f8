"""The query API's view of the database: the storage repository, opened read-only and connected on first use.

Read-only is enforced by the database, not only by the API's code: PostgreSQL sessions start with
`default_transaction_read_only=on` (a server setting passed in the connection URL), and the SQLite connection
runs `PRAGMA query_only`. A database that is down when the API starts (or goes down later) makes requests
fail with 503, and the next request connects again; it is never a reason to crash.
"""

from __future__ import annotations

import asyncio
import sqlite3
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from services.storage.repository import Repository, open_repository
from shared.logging import get_logger

log = get_logger("newsflow.api")

CONNECT_TIMEOUT_S = 5.0


class DatabaseUnavailable(Exception):
    """The database cannot answer now (down, unreachable, not migrated yet): the client should retry."""


def unavailable_errors() -> tuple[type[BaseException], ...]:
    """What a database that is down, restarting or not yet migrated raises (storage's transient errors, and
    a missing table: storage creates the schema when it starts, possibly after the API)."""
    import asyncpg

    from services.storage.app import _transient_db_errors

    return (*_transient_db_errors(), asyncpg.UndefinedTableError, asyncio.TimeoutError)


def read_only_url(database_url: str) -> str:
    """The DATABASE_URL with read-only sessions on PostgreSQL (asyncpg passes unknown query parameters to the
    server as settings); SQLite URLs are unchanged (see `Database.ready`)."""
    parts = urlsplit(database_url)
    if parts.scheme not in ("postgres", "postgresql"):
        return database_url
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "default_transaction_read_only"]
    query.append(("default_transaction_read_only", "on"))
    return urlunsplit(parts._replace(query=urlencode(query)))


class Database:
    """The repository, connected (and made read-only) on first use, again after a failed attempt."""

    def __init__(self, repo: Repository) -> None:
        self.repo = repo
        self.connected = False
        self._lock = asyncio.Lock()
        self._unavailable = unavailable_errors()

    @classmethod
    def open(cls, database_url: str) -> Database:
        return cls(open_repository(read_only_url(database_url)))

    async def ready(self) -> Repository:
        if self.connected:
            return self.repo
        async with self._lock:
            if not self.connected:
                try:
                    await asyncio.wait_for(self.repo.connect(), CONNECT_TIMEOUT_S)
                    await _sqlite_query_only(self.repo)
                except Exception as exc:  # noqa: BLE001 - whatever stops us connecting means "not now"
                    log.warning("api_database_unreachable", error=f"{type(exc).__name__}: {exc}"[:200])
                    await self._close_quietly()
                    raise DatabaseUnavailable("the database is not reachable; retry later") from None
                self.connected = True
        return self.repo

    async def call(self, method: str, *args: Any) -> Any:
        """`repo.<method>(*args)`, with the database's outages turned into DatabaseUnavailable."""
        repo = await self.ready()
        try:
            return await getattr(repo, method)(*args)
        except self._unavailable as exc:
            log.warning("api_database_error", method=method, error=f"{type(exc).__name__}: {exc}"[:200])
            raise DatabaseUnavailable("the database is not available; retry later") from None

    async def warm_up(self) -> None:
        """Connect now if we can (so the first request does not pay for it); a failure is only logged."""
        try:
            await self.ready()
        except DatabaseUnavailable:
            pass

    async def close(self) -> None:
        await self._close_quietly()
        self.connected = False

    async def _close_quietly(self) -> None:
        try:
            await self.repo.close()
        except Exception as exc:  # noqa: BLE001
            log.warning("api_database_close_failed", error=f"{type(exc).__name__}: {exc}"[:200])


async def _sqlite_query_only(repo: Repository) -> None:
    """SQLite has no read-only sessions in a URL: switch the repository's one connection to query_only,
    so any write through it fails ("attempt to write a readonly database")."""
    conn = getattr(repo, "_conn", None)
    if isinstance(conn, sqlite3.Connection):
        await repo._run(lambda: conn.execute("PRAGMA query_only = ON"))  # type: ignore[attr-defined]
