"""Fixtures of the integration tests: a local HTTP server, an asyncio Redis client, and the storage tests'
repositories (every test that takes `database_url` runs on SQLite and on PostgreSQL)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import pytest
import redis.asyncio as aredis

from services.storage.repository import Repository, open_repository
from tests.httpserver import LocalServer


@pytest.fixture
def server() -> Iterator[LocalServer]:
    """A local HTTP server on 127.0.0.1, routes set by the test."""
    with LocalServer() as s:
        yield s


@pytest.fixture
async def redis_client(redis_url: str) -> AsyncIterator[aredis.Redis]:
    """An asyncio Redis client, closed after the test."""
    client = aredis.Redis.from_url(redis_url)
    yield client
    await client.aclose()


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'newsflow.db'}"
    return request.getfixturevalue("pg_url")


@asynccontextmanager
async def migrated(url: str, **options: str) -> AsyncIterator[Repository]:
    """A connected, migrated repository on `url` (open_repository's `options`), closed afterwards."""
    repo = open_repository(url, **options)
    await repo.connect()
    try:
        await repo.migrate()
        yield repo
    finally:
        await repo.close()


@pytest.fixture
async def repo(database_url):
    """A migrated repository on `database_url`, closed after the test."""
    async with migrated(database_url) as repo:
        yield repo
