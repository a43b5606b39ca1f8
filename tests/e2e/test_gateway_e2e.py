"""`newsflow worker gateway` as a real process on a free port: NDJSON in over HTTP, enriched articles out."""

from __future__ import annotations

import json
import signal

import httpx
import pytest

from tests.articles import raw_articles
from tests.conftest import worker_env
from tests.helpers import Workers, free_port, read_bodies, start_http_worker, wait_until

pytestmark = pytest.mark.e2e

TOKEN = "e2e-gateway-token-0123456789"


def test_ndjson_over_http_reaches_enriched(redis_url, r, prefix, tmp_path):
    port = free_port()
    env = worker_env(redis_url, prefix, f"sqlite:///{tmp_path / 'gw.db'}", tmp_path,
                     NEWSFLOW_GATEWAY_TOKENS=TOKEN, NEWSFLOW_GATEWAY_HOST="127.0.0.1", NEWSFLOW_GATEWAY_PORT=str(port))
    workers = Workers(env, tmp_path)
    base = f"http://127.0.0.1:{port}"
    try:
        gateway = start_http_worker(workers, "gateway", base, "the gateway to be ready")
        assert httpx.post(f"{base}/v1/articles", json={"text": "x"}, timeout=10).status_code == 401

        articles = raw_articles(20)
        ndjson = "\n".join(json.dumps(a) for a in articles) + "\n"
        resp = httpx.post(f"{base}/v1/articles", content=ndjson, timeout=30,
                          headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/x-ndjson",
                                   "X-Correlation-ID": "e2e-gateway"})
        assert resp.status_code == 202, resp.text
        ids = resp.json()["ids"]
        assert len(ids) == 20 and r.xlen(f"{prefix}:raw") == 20

        for stage in ("cleaner", "classifier", "storage"):
            workers.start(stage)
        try:
            wait_until(lambda: len(read_bodies(r, f"{prefix}:enriched")) >= 20, timeout=180, what="20 enriched articles")
        except AssertionError:
            print(workers.logs())
            raise
        assert sorted(b["id"] for b in read_bodies(r, f"{prefix}:enriched")) == sorted(ids)
        (_, fields), = r.xrange(f"{prefix}:enriched", count=1)
        assert fields[b"correlation_id"] == b"e2e-gateway"

        gateway.send_signal(signal.SIGTERM)
        assert gateway.wait(30) == 0, workers.logs()
    finally:
        workers.stop()
