"""Trace context (shared/tracing.py): W3C traceparent parsing and child creation, invalid values replaced and never
an error; the stage runner's use of it (a new span id per stage, the same trace); OpenTelemetry spans with the
right parent through the SDK's in-memory exporter (skipped when the SDK is not installed). No Redis."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
import redis.asyncio as aredis

from shared import tracing
from shared.contract import RawArticle, parse_raw
from shared.settings import Settings
from shared.transport import Entry, Outcome, StageRunner, StageSpec
from shared.transport.runner import _serialise, each
from tests.conftest import ROOT

PARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
TRACE, SPAN = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
SHAPE = re.compile(r"00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}")


# -- parsing -----------------------------------------------------------------------------------------------


def test_parse_a_valid_traceparent():
    assert tracing.parse(PARENT) == (TRACE, SPAN, "01")
    assert tracing.parse(PARENT.encode()) == (TRACE, SPAN, "01"), "stream fields come as bytes"
    assert tracing.parse(f"  {PARENT} ") == (TRACE, SPAN, "01")
    assert tracing.parse(PARENT[:-2] + "00") == (TRACE, SPAN, "00"), "not sampled is still valid"
    assert tracing.trace_id(PARENT) == TRACE
    assert tracing.valid(PARENT) == PARENT


def test_a_later_version_is_read_as_00_and_passed_on_as_00():
    later = "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-the-future-holds"
    assert tracing.valid(later) == PARENT
    assert tracing.valid(later[:55]) == PARENT


@pytest.mark.parametrize("value", [
    None, "", b"", "00-abc-def-01", "garbage", "00", PARENT + "-extra",
    PARENT.upper(),                                               # upper-case hex is invalid
    "ff" + PARENT[2:],                                            # version ff is forbidden
    f"00-{'0' * 32}-{SPAN}-01",                                   # all-zero trace id
    f"00-{TRACE}-{'0' * 16}-01",                                  # all-zero parent id
    f"00-{TRACE}-{SPAN}-1",                                       # short flags
    f"00-{TRACE[:-1]}g-{SPAN}-01",                                # not hex
    f"00_{TRACE}_{SPAN}_01",
    "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",   # a later version still needs "-" after flags
    b"\xff\xfe" + PARENT.encode(),                                # not ASCII
    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\n00-x",
])
def test_invalid_values_are_none_never_an_error(value):
    assert tracing.parse(value) is None
    assert tracing.valid(value) is None and tracing.trace_id(value) is None


def test_child_keeps_the_trace_and_flags_with_a_new_span_id():
    children = {tracing.child(PARENT) for _ in range(200)}
    assert len(children) == 200
    for c in children:
        assert SHAPE.fullmatch(c)
        trace, span, flags = tracing.parse(c)  # type: ignore[misc]
        assert (trace, flags) == (TRACE, "01") and span != SPAN
    assert tracing.parse(tracing.child(PARENT[:-2] + "00"))[2] == "00", "an unsampled trace stays unsampled"  # type: ignore[index]


@pytest.mark.parametrize("value", [None, "00-abc-def-01", PARENT.upper(), b"\x00\x01"])
def test_child_of_an_invalid_value_is_a_new_trace(value):
    c = tracing.child(value)
    assert SHAPE.fullmatch(c) and tracing.parse(c) is not None and tracing.trace_id(c) != TRACE
    assert c.endswith("-01"), "a new trace is sampled, so a stage with spans on records it"


def test_new_ids_are_unique_and_never_zero():
    traces = {tracing.new_traceparent() for _ in range(500)}
    assert len(traces) == 500 and len({tracing.trace_id(t) for t in traces}) == 500
    assert all(tracing.parse(t) for t in traces)


# -- the off tracer ----------------------------------------------------------------------------------------


def test_off_tracer_starts_children_and_ingest_keeps_the_callers_traceparent():
    tracer = tracing.setup("off", "newsflow-test")
    assert type(tracer) is tracing.Tracer and not tracer.enabled
    span = tracer.start(PARENT.encode(), "process x")
    assert span.trace_id == TRACE and span.traceparent != PARENT and span.otel is None
    assert tracer.start(b"nonsense", "process x").trace_id != TRACE
    # At ingest no span is recorded, so the caller's own span stays the parent of the first stage's.
    assert tracer.ingest(PARENT, "send x").traceparent == PARENT
    assert tracer.ingest("ff-bad", "send x").trace_id != TRACE
    assert tracer.end(span, error="x", attributes={"a": 1}) is None


def test_off_imports_no_opentelemetry_tracing_code():
    """Dependencies may import OpenTelemetry's API (redis-py and FastStream do, when it is installed); newsflow's
    off path must not bring in the SDK's tracing: a runner handles entries without it."""
    code = (
        "import sys, redis.asyncio as aredis\n"
        "from shared.settings import Settings\n"
        "from shared.transport import Entry, StageRunner, StageSpec\n"
        "from shared.transport.runner import each\n"
        "from shared.contract import parse_raw\n"
        "r = StageRunner(StageSpec('cleaner', 'raw', 'cleaned', decode=parse_raw, process=each(lambda e, m: m)),"
        " Settings(tracing='off', stream_prefix='t'), aredis.Redis(), 'c')\n"
        "e = Entry('1-0', {b'body': b'{}', b'traceparent': b'" + PARENT + "'})\n"
        "r._start_spans([e]); r._end_spans([e], None)\n"
        "assert e.span.trace_id == '" + TRACE + "'\n"
        "print(sorted(m for m in sys.modules if m.startswith(('opentelemetry.sdk.trace', 'opentelemetry.exporter'))))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_unknown_mode_and_missing_sdk_are_clear_errors(monkeypatch):
    with pytest.raises(ValueError, match="NEWSFLOW_TRACING must be one of off, console, otlp"):
        tracing.setup("jaeger", "newsflow-test")
    monkeypatch.setitem(sys.modules, "opentelemetry.sdk.trace", None)  # as if the SDK were not installed
    with pytest.raises(tracing.TracingUnavailable, match=r"pip install 'newsflow\[tracing\]'"):
        tracing.setup("otlp", "newsflow-test")


def test_the_setting():
    assert Settings().tracing == "off"
    assert Settings(tracing="otlp").tracing == "otlp"
    with pytest.raises(ValueError):
        Settings(tracing="on")


# -- the runner's records ----------------------------------------------------------------------------------


def upper(entry: Entry, article: RawArticle) -> RawArticle:
    if "fail" in (article.text or ""):
        raise ValueError("boom")
    return article.model_copy(update={"text": (article.text or "").upper()})


def runner(tracer: tracing.Tracer | None = None) -> StageRunner:
    spec = StageSpec("cleaner", "raw", "cleaned", decode=parse_raw, process=each(upper))
    r = StageRunner(spec, Settings(stream_prefix="nftest-tracing"), aredis.Redis(), "c1")
    if tracer is not None:
        r.tracer = tracer
    return r


def entries() -> list[Entry]:
    body = json.dumps({"id": "a1", "text": "hello"}).encode()
    return [
        Entry("1-0", {b"body": body, b"traceparent": PARENT.encode(), b"correlation_id": b"c-1"}),
        Entry("1-1", {b"body": body}),                                       # none: a new trace here
        Entry("1-2", {b"body": body, b"traceparent": b"00-abc-def-01"}),      # invalid: replaced
        Entry("1-3", {b"body": b"not json", b"traceparent": PARENT.encode()}),  # a dead letter, same trace
    ]


async def decide(r: StageRunner, batch: list[Entry]) -> list[Outcome]:
    r._start_spans(batch)
    outcomes = await r._decide(batch)
    for o in outcomes:
        _serialise(o)
    return outcomes


async def test_each_output_and_dead_letter_carries_this_stages_span_of_the_same_trace():
    r = runner()
    batch = entries()
    records = {rec.entry_id: rec for rec in r._records(await decide(r, batch))}
    out = {k: v.fields["traceparent"] for k, v in records.items()}
    first = out["1-0"]
    assert tracing.trace_id(first) == TRACE and first != PARENT and first == batch[0].span.traceparent  # type: ignore[union-attr]
    assert records["1-0"].fields["correlation_id"] == "c-1"
    assert tracing.parse(out["1-1"]) and tracing.trace_id(out["1-1"]) != TRACE
    assert tracing.parse(out["1-2"]) and out["1-2"] != "00-abc-def-01", "an invalid traceparent is replaced"
    assert records["1-3"].kind == "dlq" and tracing.trace_id(out["1-3"]) == TRACE, "a dead letter stays in the trace"
    assert len({tracing.trace_id(out[k]) for k in ("1-1", "1-2")}) == 2, "each entry without one: a trace of its own"


# -- OpenTelemetry (the SDK, when installed) ---------------------------------------------------------------


@pytest.fixture
def exported():
    pytest.importorskip("opentelemetry.sdk.trace", reason="the OpenTelemetry SDK (newsflow[tracing]) is not installed")
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    memory = InMemorySpanExporter()
    tracer = tracing.setup("console", "newsflow-test", exporter=memory)
    yield tracer, memory
    tracer.shutdown()


def hex_ids(span) -> tuple[str, str, str | None]:
    parent = f"{span.parent.span_id:016x}" if span.parent else None
    return f"{span.context.trace_id:032x}", f"{span.context.span_id:016x}", parent


def test_otel_span_is_a_child_of_the_incoming_traceparent(exported):
    from opentelemetry.trace import SpanKind, StatusCode

    tracer, memory = exported
    span = tracer.start(PARENT.encode(), "process nf:raw", {"newsflow.stage": "cleaner"})
    tracer.end(span, attributes={"newsflow.article_id": "a1", "ignored": None})
    failed = tracer.start(PARENT, "process nf:raw")
    tracer.end(failed, error="gave up after 5 deliveries")
    ok, bad = memory.get_finished_spans()
    trace, span_id, parent = hex_ids(ok)
    assert (trace, parent) == (TRACE, SPAN) and ok.parent.is_remote
    assert span.traceparent == f"00-{trace}-{span_id}-01", "the output entry carries the span's own context"
    assert ok.kind == SpanKind.CONSUMER and ok.name == "process nf:raw"
    assert ok.attributes["newsflow.stage"] == "cleaner" and ok.attributes["newsflow.article_id"] == "a1"
    assert "ignored" not in ok.attributes
    assert ok.resource.attributes["service.name"] == "newsflow-test"
    assert bad.status.status_code == StatusCode.ERROR and "gave up" in bad.status.description


def test_otel_invalid_or_missing_parent_is_a_new_root_and_ingest_is_a_producer(exported):
    from opentelemetry.trace import SpanKind

    tracer, memory = exported
    for value in (None, "00-abc-def-01"):
        tracer.end(tracer.start(value, "process nf:raw"))
    ingest = tracer.ingest(PARENT, "send nf:raw")
    tracer.end(ingest)
    root1, root2, sent = memory.get_finished_spans()
    assert root1.parent is None and root2.parent is None and root1.context.trace_id != root2.context.trace_id
    assert sent.kind == SpanKind.PRODUCER and hex_ids(sent)[2] == SPAN and ingest.traceparent != PARENT
    assert ingest.trace_id == TRACE


def test_otel_spans_chain_across_stages_into_one_trace(exported):
    """Three stages in a row, each reading what the previous wrote: one trace, each span the previous one's child."""
    tracer, memory = exported
    carried = tracer.ingest(None, "send nf:raw")
    tracer.end(carried)
    value = carried.traceparent
    for stage in ("cleaner", "classifier", "storage"):
        span = tracer.start(value, f"process {stage}")
        tracer.end(span)
        value = span.traceparent
    spans = memory.get_finished_spans()
    assert len({s.context.trace_id for s in spans}) == 1
    for before, after in zip(spans, spans[1:]):
        assert after.parent.span_id == before.context.span_id


async def test_otel_runner_records_one_span_per_entry_with_its_outcome(exported):
    from opentelemetry.trace import StatusCode

    tracer, memory = exported
    r = runner(tracer)
    batch = entries()
    outcomes = await decide(r, batch)
    records = {rec.entry_id: rec.fields for rec in r._records(outcomes)}
    r._end_spans(batch, outcomes)
    spans = {s.attributes["messaging.message.id"]: s for s in memory.get_finished_spans()}
    assert set(spans) == {"1-0", "1-1", "1-2", "1-3"}
    first = spans["1-0"]
    assert hex_ids(first)[0] == TRACE and hex_ids(first)[2] == SPAN
    assert records["1-0"]["traceparent"] == f"00-{TRACE}-{hex_ids(first)[1]}-01", "the next stage's parent is this span"
    assert first.attributes["newsflow.outcome"] == "published" and first.attributes["newsflow.article_id"] == "a1"
    assert first.attributes["messaging.message.conversation_id"] == "c-1"
    assert first.attributes["messaging.destination.name"] == "nftest-tracing:raw"
    assert spans["1-1"].parent is None and spans["1-2"].parent is None
    assert spans["1-3"].attributes["newsflow.outcome"] == "dead_lettered" and spans["1-3"].status.status_code == StatusCode.ERROR


async def test_otel_a_batch_that_fails_before_its_commit_ends_every_span_as_left_pending(exported):
    tracer, memory = exported
    r = runner(tracer)
    batch = entries()
    r._start_spans(batch)
    r._end_spans(batch, None)
    spans = memory.get_finished_spans()
    assert len(spans) == 4 and {s.attributes["newsflow.outcome"] for s in spans} == {"left_pending"}
