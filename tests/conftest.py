"""Shared fixtures: a real Redis (REDIS_URL, or an embedded one started here), a fresh stream prefix per test,
and the real PostgreSQL at DATABASE_TEST_URL (default postgresql://postgres@127.0.0.1:5432/test)."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from pathlib import Path
from typing import Iterator

import pytest
import redis

ROOT = Path(__file__).resolve().parents[1]
PG_URL = os.environ.get("DATABASE_TEST_URL", "postgresql://postgres@127.0.0.1:5432/test")


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    url = os.environ.get("REDIS_URL")
    if url:
        yield url
        return
    from shared import embedded

    folder = tmp_path_factory.mktemp("redis")
    yield embedded.ensure_running(folder, persistent=False)
    embedded.stop(folder)


@pytest.fixture
def prefix(redis_url: str) -> Iterator[str]:
    """A stream prefix of our own, so tests never see each other's streams; deleted afterwards."""
    name = f"nftest-{uuid.uuid4().hex[:10]}"
    yield name
    r = redis.Redis.from_url(redis_url)
    keys = list(r.scan_iter(match=f"{name}:*", count=1000))
    if keys:
        r.delete(*keys)


@pytest.fixture
def r(redis_url: str) -> redis.Redis:
    return redis.Redis.from_url(redis_url)


def _pg_available() -> str | None:
    try:
        import asyncpg

        async def probe() -> None:
            conn = await asyncpg.connect(PG_URL, timeout=3)
            await conn.close()

        asyncio.run(probe())
        return None
    except Exception as exc:  # noqa: BLE001
        return f"{type(exc).__name__}: {exc}"


@pytest.fixture(scope="session")
def pg_base_url() -> str:
    reason = _pg_available()
    if reason:
        if os.environ.get("NEWSFLOW_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"PostgreSQL at {PG_URL} is required here (NEWSFLOW_REQUIRE_POSTGRES=1) but unreachable: {reason}")
        pytest.skip(f"no PostgreSQL at {PG_URL}: {reason}")
    return PG_URL


@pytest.fixture
def pg_url(pg_base_url: str) -> Iterator[str]:
    """A fresh schema per test, via the search_path of the connection URL."""
    import asyncpg

    schema = f"nftest_{uuid.uuid4().hex[:10]}"

    async def run(sql: str) -> None:
        conn = await asyncpg.connect(pg_base_url)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run(f"CREATE SCHEMA {schema}"))
    sep = "&" if "?" in pg_base_url else "?"
    yield f"{pg_base_url}{sep}search_path={schema}"
    asyncio.run(run(f"DROP SCHEMA {schema} CASCADE"))


def worker_env(redis_url: str, prefix: str, database_url: str, tmp: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSFLOW_")}
    env.update(
        REDIS_URL=redis_url,
        DATABASE_URL=database_url,
        NEWSFLOW_STREAM_PREFIX=prefix,
        NEWSFLOW_DATA_DIR=str(tmp),
        LOG_FORMAT="json",
        LOG_LEVEL="INFO",
        PYTHONPATH=str(ROOT),
    )
    env.update(extra)
    return env


PYTHON = sys.executable
