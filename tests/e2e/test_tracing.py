"""One article, one trace, from ingest to storage: real worker processes on the real Redis, their JSON logs parsed.

A trace id set at ingest (a gateway request's `traceparent` header, and a plain XADD with a `traceparent` field)
is in the storage stage's log lines for that article, and the enriched entry's traceparent has that trace id with
a span id of its own. An entry without a traceparent, or with an invalid one, starts a trace at the cleaner that
the classifier and storage keep. With NEWSFLOW_TRACING=console the workers' spans (JSON lines on stdout) chain
into one trace, each stage's span the child of the previous one's.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from shared import tracing
from tests.articles import raw_articles
from tests.conftest import worker_env
from tests.helpers import Workers, free_port, push, start_http_worker, wait_until

pytestmark = pytest.mark.e2e

TOKEN = "e2e-tracing-token-0123456789"
GATEWAY_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
GATEWAY_PARENT = f"00-{GATEWAY_TRACE}-00f067aa0ba902b7-01"
XADD_TRACE = "0af7651916cd43dd8448eb211c80319c"
XADD_PARENT = f"00-{XADD_TRACE}-b7ad6b7169203331-01"
STAGES = ("cleaner", "classifier", "storage")


def log_lines(logdir: Path, consumer: str) -> list[dict[str, Any]]:
    """The JSON objects a worker wrote (logs on stderr; with console tracing, spans on stdout, same file)."""
    out = []
    for line in (logdir / f"{consumer}.log").read_text(errors="replace").splitlines():
        if line.startswith("{"):
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
    return out


def enriched(r, prefix: str) -> dict[str, dict[bytes, bytes]]:
    """Article id -> its enriched entry's fields."""
    return {json.loads(f[b"body"])["id"]: f for _, f in r.xrange(f"{prefix}:enriched")}


def test_a_trace_set_at_ingest_reaches_the_storage_logs_and_the_enriched_entry(redis_url, r, prefix, tmp_path):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = worker_env(redis_url, prefix, f"sqlite:///{tmp_path / 'trace.db'}", tmp_path, LOG_LEVEL="DEBUG",
                     NEWSFLOW_CLASSIFIER="keywords", NEWSFLOW_METRICS_PORT="0", NEWSFLOW_TRACING="off",
                     NEWSFLOW_GATEWAY_TOKENS=TOKEN, NEWSFLOW_GATEWAY_HOST="127.0.0.1", NEWSFLOW_GATEWAY_PORT=str(port))
    workers = Workers(env, tmp_path)
    articles = raw_articles(6, seed=31)
    try:
        start_http_worker(workers, "gateway", base, "the gateway to be ready")
        # Two articles over HTTP with the caller's traceparent: both in the caller's trace.
        resp = httpx.post(f"{base}/v1/articles", json=articles[:2], timeout=30,
                          headers={"Authorization": f"Bearer {TOKEN}", "traceparent": GATEWAY_PARENT,
                                   "X-Correlation-ID": "trace-e2e"})
        assert resp.status_code == 202, resp.text
        # One over HTTP without a header: a trace of its own, made by the gateway.
        resp = httpx.post(f"{base}/v1/articles", json=articles[2], timeout=30, headers={"Authorization": f"Bearer {TOKEN}"})
        assert resp.status_code == 202, resp.text
        # Straight onto the stream: with a traceparent, without one, and with an invalid one.
        r.xadd(f"{prefix}:raw", {"body": json.dumps(articles[3]), "traceparent": XADD_PARENT})
        push(r, f"{prefix}:raw", [articles[4]])
        r.xadd(f"{prefix}:raw", {"body": json.dumps(articles[5]), "traceparent": "00-not-a-trace-01"})
        raw = {json.loads(f[b"body"])["id"]: f for _, f in r.xrange(f"{prefix}:raw")}
        assert raw[articles[0]["id"]][b"traceparent"].decode() == GATEWAY_PARENT
        gateway_made = tracing.trace_id(raw[articles[2]["id"]][b"traceparent"])
        assert gateway_made and gateway_made != GATEWAY_TRACE

        for stage in STAGES:
            workers.start(stage, consumer=stage)
        try:
            wait_until(lambda: len(enriched(r, prefix)) >= 6, timeout=180, what="6 enriched articles")
        finally:
            workers.stop()
        out = enriched(r, prefix)
        logs = {stage: log_lines(tmp_path, stage) for stage in STAGES}
        gateway_lines = log_lines(tmp_path, "gateway-0")
    except BaseException:
        print(workers.logs())
        raise

    def trace_of(article: dict[str, Any]) -> str:
        return out[article["id"]][b"traceparent"].decode()

    def lines_about(stage: str, article: dict[str, Any]) -> list[dict[str, Any]]:
        return [line for line in logs[stage] if line.get("article_id") == article["id"]]

    expected = {0: GATEWAY_TRACE, 1: GATEWAY_TRACE, 2: gateway_made, 3: XADD_TRACE}
    for i, trace in expected.items():
        traceparent = trace_of(articles[i])
        assert tracing.trace_id(traceparent) == trace, f"article {i}: the enriched entry keeps the ingest trace"
        assert traceparent not in (GATEWAY_PARENT, XADD_PARENT), "each stage writes a span id of its own"
        stored = lines_about("storage", articles[i])
        assert stored, f"article {i}: no storage log line about it"
        for line in stored:
            assert line["trace_id"] == trace and line["stage"] == "storage", line
            assert line["correlation_id"], line
    assert lines_about("storage", articles[0])[0]["correlation_id"] == "trace-e2e"
    # Started at the cleaner (no traceparent, or an invalid one), then kept by the classifier and storage.
    for i in (4, 5):
        trace = tracing.trace_id(trace_of(articles[i]))
        assert trace and trace not in expected.values()
        for stage in STAGES:
            lines = lines_about(stage, articles[i])
            assert lines and {line["trace_id"] for line in lines} == {trace}, (stage, i, lines)
    assert any(line.get("event") == "gateway_published" and line.get("trace_id") == GATEWAY_TRACE for line in gateway_lines)


@pytest.mark.skipif(importlib.util.find_spec("opentelemetry.sdk") is None, reason="the OpenTelemetry SDK (newsflow[tracing]) is not installed")
def test_console_spans_chain_the_stages_into_one_trace(redis_url, r, prefix, tmp_path):
    env = worker_env(redis_url, prefix, f"sqlite:///{tmp_path / 'spans.db'}", tmp_path,
                     NEWSFLOW_CLASSIFIER="keywords", NEWSFLOW_METRICS_PORT="0", NEWSFLOW_TRACING="console")
    workers = Workers(env, tmp_path)
    articles = raw_articles(3, seed=32)
    r.xadd(f"{prefix}:raw", {"body": json.dumps(articles[0]), "traceparent": XADD_PARENT})
    push(r, f"{prefix}:raw", articles[1:])
    try:
        for stage in STAGES:
            workers.start(stage, consumer=stage)
        try:
            wait_until(lambda: len(enriched(r, prefix)) >= 3, timeout=180, what="3 enriched articles")
        finally:
            workers.stop()  # SIGTERM: the exporters flush at exit
        out = enriched(r, prefix)
        spans = {stage: [s for s in log_lines(tmp_path, stage) if "context" in s and "kind" in s] for stage in STAGES}
    except BaseException:
        print(workers.logs())
        raise

    def span_of(stage: str, article: dict[str, Any]) -> dict[str, Any]:
        (span,) = [s for s in spans[stage] if s["attributes"].get("newsflow.article_id") == article["id"]]
        return span

    for article in articles:
        chain = [span_of(stage, article) for stage in STAGES]
        assert len({s["context"]["trace_id"] for s in chain}) == 1, chain
        for before, after in zip(chain, chain[1:]):
            assert after["parent_id"] == before["context"]["span_id"], (before, after)
        trace_id, span_id = chain[-1]["context"]["trace_id"], chain[-1]["context"]["span_id"]
        assert out[article["id"]][b"traceparent"].decode().startswith(f"00-{trace_id[2:]}-{span_id[2:]}-"), \
            "the enriched entry carries storage's span"
        assert all(s["kind"] == "SpanKind.CONSUMER" and s["attributes"]["newsflow.outcome"] == "published" for s in chain)
        assert [s["resource"]["attributes"]["service.name"] for s in chain] == [f"newsflow-{s}" for s in STAGES]
    first = span_of("cleaner", articles[0])
    assert first["context"]["trace_id"] == f"0x{XADD_TRACE}" and first["parent_id"] == "0xb7ad6b7169203331"
    assert span_of("cleaner", articles[1])["parent_id"] is None, "no traceparent: the cleaner's span is the root"
