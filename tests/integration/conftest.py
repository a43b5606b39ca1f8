"""Fixtures of the storage tests: every test that takes `database_url` runs on SQLite and on PostgreSQL."""

from __future__ import annotations

import pytest

from services.storage.repository import open_repository


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'newsflow.db'}"
    return request.getfixturevalue("pg_url")


@pytest.fixture
async def repo(database_url):
    """A migrated repository on `database_url`, closed after the test."""
    repo = open_repository(database_url)
    await repo.connect()
    await repo.migrate()
    yield repo
    await repo.close()
