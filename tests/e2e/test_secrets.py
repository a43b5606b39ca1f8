"""Secrets given as files reach every worker and never a log line.

A full run through `newsflow up` (gateway, cleaner, classifier, storage as separate processes) against a Redis
of the test's own that requires a password, PostgreSQL with a password in its URL, and gateway tokens, all three
given only as `*_FILE` variables. Every line the processes write (JSON logs, the supervisor's own lines) is
scanned for the secrets; the workers' environments too.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import uuid
from pathlib import Path
from typing import Iterator
from urllib.parse import urlsplit, urlunsplit

import httpx
import psutil
import pytest
import redis

from shared.logging import redact_url
from tests.articles import raw_articles
from tests.conftest import PYTHON, ROOT
from tests.helpers import free_port, pg_value, read_bodies, stop_process, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

REDIS_PW = f"redis-pw-{secrets.token_hex(8)}"
DB_PW = f"db-pw-{secrets.token_hex(8)}"
TOKEN = f"gateway-token-{secrets.token_hex(12)}"
STAGES = ("gateway", "cleaner", "classifier", "storage")


@pytest.fixture
def secure_redis(tmp_path: Path) -> Iterator[str]:
    """A redis-server of our own that refuses clients without the password (given in its config file, not argv)."""
    from shared.embedded import server_binary

    binary = shutil.which("redis-server") or server_binary()
    folder = tmp_path / "redis"
    folder.mkdir()
    port = 0
    for _ in range(5):
        port = free_port()
        conf = folder / "redis.conf"
        conf.write_text(f"port {port}\nbind 127.0.0.1\nrequirepass {REDIS_PW}\nsave \"\"\nappendonly no\n"
                        f"dir {folder}\ndaemonize yes\npidfile {folder / 'redis.pid'}\nlogfile {folder / 'redis.log'}\n")
        subprocess.run([binary, str(conf)], check=True)
        client = redis.Redis(port=port, password=REDIS_PW, socket_timeout=2)

        def up() -> bool:
            try:
                return client.config_get("dir").get("dir") == str(folder)  # ours, not another server on a reused port
            except (redis.RedisError, OSError):
                return False

        try:
            wait_until(up, timeout=10, what="the password-protected redis-server")
            break
        except AssertionError:
            continue
    else:
        raise AssertionError(f"could not start redis-server; see {folder / 'redis.log'}")
    yield f"redis://default:{REDIS_PW}@127.0.0.1:{port}/0"
    try:
        client.shutdown(nosave=True)
    except (redis.ConnectionError, redis.ResponseError):
        pass


def with_password(url: str, password: str) -> str:
    parts = urlsplit(url)
    user = parts.username or "postgres"
    host = parts.hostname + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=f"{user}:{password}@{host}"))


def count_rows(url: str) -> int:
    return pg_value(url, "SELECT count(*) FROM articles")


def test_file_secrets_reach_every_worker_and_never_a_log_line(secure_redis, pg_url, tmp_path):
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(port=urlsplit(secure_redis).port).ping()  # the password really is needed
    r = redis.Redis.from_url(secure_redis)
    prefix = f"nfsec-{uuid.uuid4().hex[:10]}"
    database_url = with_password(pg_url, DB_PW)  # PostgreSQL here trusts loopback: the password is carried, unused

    folder = tmp_path / "secrets"
    folder.mkdir(mode=0o700)
    files = {"REDIS_URL_FILE": secure_redis + "\n", "DATABASE_URL_FILE": database_url + "\n",
             "NEWSFLOW_GATEWAY_TOKENS_FILE": f"# upstream scrapers\n{TOKEN}\n"}
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("NEWSFLOW_") and k.removesuffix("_FILE") not in ("REDIS_URL", "DATABASE_URL")}
    for var, text in files.items():
        path = folder / var.lower()
        path.write_text(text)
        path.chmod(0o600)
        env[var] = str(path)
    port = free_port()
    env.update(NEWSFLOW_STREAM_PREFIX=prefix, NEWSFLOW_DATA_DIR=str(tmp_path / "data"), NEWSFLOW_GATEWAY_HOST="127.0.0.1",
               NEWSFLOW_GATEWAY_PORT=str(port), NEWSFLOW_METRICS_PORT="0", NEWSFLOW_CLAIM_IDLE_MS="3000",
               LOG_FORMAT="json", LOG_LEVEL="DEBUG", PYTHONPATH=str(ROOT))
    assert not any(s in value for value in env.values() for s in (REDIS_PW, DB_PW, TOKEN))

    log_path = tmp_path / "up.log"
    with open(log_path, "ab") as log:
        up = subprocess.Popen([PYTHON, "-m", "services.cli", "up", "--stages", ",".join(STAGES)],
                              env=env, stdout=log, stderr=log)
    base = f"http://127.0.0.1:{port}"
    try:
        def ready() -> bool:
            assert up.poll() is None, log_path.read_text()[-4000:]
            try:
                return httpx.get(f"{base}/readyz", timeout=2).status_code == 200
            except httpx.TransportError:
                return False

        wait_until(ready, timeout=90, what="the gateway, reading its tokens from a file, to be ready")
        articles = raw_articles(12, seed=11)
        ndjson = "\n".join(json.dumps(a) for a in articles) + "\n"
        headers = {"Content-Type": "application/x-ndjson"}
        assert httpx.post(f"{base}/v1/articles", content=ndjson, headers=headers, timeout=10).status_code == 401
        wrong = {**headers, "Authorization": f"Bearer {TOKEN[:-1]}x"}
        assert httpx.post(f"{base}/v1/articles", content=ndjson, headers=wrong, timeout=10).status_code == 401
        resp = httpx.post(f"{base}/v1/articles", content=ndjson, timeout=30,
                          headers={**headers, "Authorization": f"Bearer {TOKEN}"})
        assert resp.status_code == 202, resp.text

        try:
            wait_until(lambda: len(read_bodies(r, f"{prefix}:enriched")) >= len(articles), timeout=180,
                       what="every article through a password-protected Redis")
        except AssertionError:
            print(log_path.read_text()[-8000:])
            raise
        assert sorted(b["id"] for b in read_bodies(r, f"{prefix}:enriched")) == sorted(a["id"] for a in articles)
        assert count_rows(pg_url) == len(articles), "storage wrote through the DATABASE_URL from the file"

        children = psutil.Process(up.pid).children(recursive=True)
        assert len(children) >= len(STAGES)
        for child in children:
            leaked = [k for k, v in child.environ().items() if any(s in v for s in (REDIS_PW, DB_PW, TOKEN))]
            assert not leaked, f"{child.cmdline()}: a secret in its environment ({leaked}); it should read the files"
    finally:
        stop_process(up)

    text = log_path.read_text()
    for name, secret in (("the Redis password", REDIS_PW), ("the database password", DB_PW), ("the gateway token", TOKEN)):
        assert secret not in text, f"{name} is in the logs"
    lines = [line for line in text.splitlines() if line.strip()]
    records = [json.loads(line) for line in lines if line.startswith("{")]
    plain = [line for line in lines if not line.startswith("{")]
    assert all(line.startswith("newsflow: ") for line in plain), plain  # only the supervisor's own lines
    assert f"on {redact_url(secure_redis)};" in text, "the supervisor names the Redis it runs on, masked"

    # Lines that carried the secrets and were masked: each worker says where it connects.
    starting = {rec["stage"]: rec for rec in records if rec.get("event") == "worker_starting"}
    assert set(starting) == set(STAGES)
    for stage, rec in starting.items():
        assert rec["redis"] == redact_url(secure_redis) == f"redis://default:***@127.0.0.1:{urlsplit(secure_redis).port}/0"
    assert starting["storage"]["database"] == redact_url(database_url) and ":***@" in starting["storage"]["database"]
    logged = {rec.get("stage") for rec in records}
    assert set(STAGES) <= logged, f"every process logged (JSON): {logged}"
