"""`newsflow worker api` as a real process on a free port: search stored articles, follow new ones, stop on SIGTERM."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys

import httpx
import pytest

from services.storage.repository import open_repository
from tests.conftest import worker_env
from tests.helpers import Workers, free_port, start_http_worker, wait_until
from tests.integration.test_api import CORPUS, body, rows

pytestmark = pytest.mark.e2e

TOKEN = "e2e-api-token-0123456789abcd"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def seed(database_url: str) -> None:
    async def run() -> None:
        repo = open_repository(database_url)
        await repo.connect()
        try:
            await repo.migrate()
            await repo.upsert_many(rows(CORPUS))
        finally:
            await repo.close()

    asyncio.run(run())


def test_worker_api_serves_searches_and_the_stream(redis_url, r, prefix, tmp_path):
    database_url = f"sqlite:///{tmp_path / 'api.db'}"
    seed(database_url)
    port = free_port()
    env = worker_env(redis_url, prefix, database_url, tmp_path,
                     NEWSFLOW_API_TOKENS=TOKEN, NEWSFLOW_API_HOST="127.0.0.1", NEWSFLOW_API_PORT=str(port))
    workers = Workers(env, tmp_path)
    base = f"http://127.0.0.1:{port}"
    try:
        api = start_http_worker(workers, "api", base, "the API to be ready")
        assert httpx.get(f"{base}/v1/articles", timeout=10).status_code == 401

        resp = httpx.get(f"{base}/v1/articles", params={"q": "parliament", "topic": "politics", "place": "Seoul"},
                         headers=AUTH, timeout=10)
        assert resp.status_code == 200, resp.text
        assert sorted(a["id"] for a in resp.json()["items"]) == ["s1", "s4"]
        assert httpx.get(f"{base}/v1/articles/s3", headers=AUTH, timeout=10).json()["language"] == "fr"
        assert httpx.get(f"{base}/v1/articles/nope", headers=AUTH, timeout=10).status_code == 404
        assert httpx.get(f"{base}/v1/articles", params={"cursor": "bogus"}, headers=AUTH, timeout=10).status_code == 400

        with httpx.Client(base_url=base, timeout=30) as client, \
                client.stream("GET", "/v1/stream", params={"topic": "sport"}, headers=AUTH) as stream:
            assert stream.status_code == 200
            lines = stream.iter_lines()
            assert next(line for line in lines if line.startswith(":")).startswith(": following")
            r.xadd(f"{prefix}:enriched", {"body": body(CORPUS[0])})
            entry_id = r.xadd(f"{prefix}:enriched", {"body": body(CORPUS[4])}).decode()
            event: dict[str, str] = {}
            for line in lines:
                if not line and "data" in event:
                    break
                if line and not line.startswith(":"):
                    name, _, value = line.partition(": ")
                    event[name] = value
            assert event["id"] == entry_id and json.loads(event["data"])["id"] == "s5"

            # SIGTERM with the stream still open: the stream ends and the process exits 0 within the grace.
            api.send_signal(signal.SIGTERM)
            rest = list(lines)
            assert not any(line.startswith("data:") for line in rest)
        assert api.wait(30) == 0, workers.logs()
        log = (tmp_path / "api-0.log").read_text()
        assert '"level": "error"' not in log and "Traceback" not in log, log
    finally:
        workers.stop()


def test_worker_api_refuses_to_start_without_tokens(redis_url, prefix, tmp_path):
    env = worker_env(redis_url, prefix, f"sqlite:///{tmp_path / 'api.db'}", tmp_path, NEWSFLOW_API_PORT=str(free_port()))
    done = subprocess.run([sys.executable, "-m", "services.cli", "worker", "api"], env=env, capture_output=True, timeout=60)
    assert done.returncode != 0
    assert b"NEWSFLOW_API_PUBLIC=1" in done.stderr
