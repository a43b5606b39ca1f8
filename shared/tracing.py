"""Trace context for articles (W3C `traceparent`), and OpenTelemetry spans when NEWSFLOW_TRACING asks for them.

Every stream entry carries a `traceparent` field beside `body`: `00-<32 hex trace id>-<16 hex span id>-<flags>`.
At ingest (the gateway, `newsflow ingest`) it is the caller's, or a new trace per article; each stage keeps the
trace id and writes a span id of its own into its output entry, so one article is one trace from ingest (or the
fetcher) to storage, and its trace id is bound in the log lines about it. An invalid or missing value is
replaced by a new trace, never an error.

NEWSFLOW_TRACING:
- `off` (default): only that. Parsing, a random span id, a string; no OpenTelemetry module is imported.
- `console` / `otlp`: the OpenTelemetry SDK (`pip install 'newsflow[tracing]'`) records one span per article per
  stage, a child of the incoming traceparent, and exports it as a JSON line on stdout or over OTLP/HTTP
  (the exporter reads OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_EXPORTER_OTLP_HEADERS...; the sampler OTEL_TRACES_SAMPLER).
  The output entry's traceparent is then the span's own context, so the next stage's span is its child.
"""

from __future__ import annotations

import os
import random
import re
from dataclasses import dataclass
from typing import Any, Mapping

MODES: tuple[str, ...] = ("off", "console", "otlp")

# version-traceid-parentid-flags, lower-case hex; a later version may append "-..." fields (kept out, see parse).
_TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?", re.DOTALL)
_ZERO_TRACE = "0" * 32
_ZERO_SPAN = "0" * 16
SAMPLED = "01"


class TracingUnavailable(RuntimeError):
    """NEWSFLOW_TRACING asks for spans, but the OpenTelemetry SDK is not installed."""


def parse(value: str | bytes | None) -> tuple[str, str, str] | None:
    """(trace id, parent span id, flags) of a W3C traceparent, or None when it is missing or invalid: not
    lower-case hex, an all-zero id, version ff, or version 00 with anything after the flags."""
    if not value:
        return None
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    m = _TRACEPARENT.fullmatch(value.strip())
    if m is None:
        return None
    version, trace_id, span_id, flags, rest = m.groups()
    if version == "ff" or (version == "00" and rest) or trace_id == _ZERO_TRACE or span_id == _ZERO_SPAN:
        return None
    return trace_id, span_id, flags


def valid(value: str | bytes | None) -> str | None:
    """The traceparent in version-00 form, or None when it is invalid (a later version is read as 00, as the
    W3C recommendation says, and passed on as 00)."""
    parts = parse(value)
    return f"00-{parts[0]}-{parts[1]}-{parts[2]}" if parts else None


def trace_id(value: str | bytes | None) -> str | None:
    parts = parse(value)
    return parts[0] if parts else None


def new_span_id() -> str:
    # Random, not cryptographic, as OpenTelemetry's own id generator: ids need to be unique, not secret.
    while True:
        value = random.getrandbits(64)
        if value:
            return f"{value:016x}"


def new_trace_id() -> str:
    while True:
        value = random.getrandbits(128)
        if value:
            return f"{value:032x}"


def new_traceparent() -> str:
    """A new trace, sampled: a stage with spans on records it."""
    return f"00-{new_trace_id()}-{new_span_id()}-{SAMPLED}"


def child(value: str | bytes | None) -> str:
    """The same trace with a new span id (flags kept); a new trace when `value` is missing or invalid."""
    parts = parse(value)
    if parts is None:
        return new_traceparent()
    return f"00-{parts[0]}-{new_span_id()}-{parts[2]}"


@dataclass(slots=True)
class Span:
    """One article in one stage: the traceparent its output carries, and the OpenTelemetry span when recording."""

    traceparent: str
    otel: Any = None

    @property
    def trace_id(self) -> str:
        return self.traceparent[3:35]


class Tracer:
    """Tracing off: trace context only, nothing recorded or exported."""

    enabled = False

    def start(self, parent: str | bytes | None, name: str, attributes: Mapping[str, Any] | None = None) -> Span:
        """A stage handling an article: the same trace as `parent` (or a new one), a new span id."""
        return Span(child(parent))

    def ingest(self, parent: str | bytes | None, name: str, attributes: Mapping[str, Any] | None = None) -> Span:
        """An article entering the pipeline: with no span recorded here, the caller's traceparent itself goes on
        (its span is the parent of the first stage's); without a valid one, a new trace."""
        return Span(valid(parent) or new_traceparent())

    def end(self, span: Span | None, error: str | None = None, attributes: Mapping[str, Any] | None = None) -> None:
        return None

    def shutdown(self) -> None:
        return None


class OtelTracer(Tracer):
    """Spans through an OpenTelemetry SDK TracerProvider (its own, not the global one)."""

    enabled = True

    def __init__(self, provider: Any) -> None:
        from opentelemetry import trace
        from opentelemetry.context import Context
        from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, Status, StatusCode, TraceFlags

        self.provider = provider
        self._tracer = provider.get_tracer("newsflow")
        self._trace, self._context = trace, Context
        self._remote = lambda t, s, f: NonRecordingSpan(SpanContext(int(t, 16), int(s, 16), is_remote=True, trace_flags=TraceFlags(int(f, 16))))
        self._consumer, self._producer = SpanKind.CONSUMER, SpanKind.PRODUCER
        self._error = lambda text: Status(StatusCode.ERROR, text)

    def _start(self, parent: str | bytes | None, name: str, kind: Any, attributes: Mapping[str, Any] | None) -> Span:
        parts = parse(parent)
        # An explicit empty context for a new trace: never a child of whatever span is current in this task.
        context = self._trace.set_span_in_context(self._remote(*parts)) if parts else self._context()
        span = self._tracer.start_span(name, context=context, kind=kind, attributes=dict(attributes or {}))
        c = span.get_span_context()
        return Span(f"00-{c.trace_id:032x}-{c.span_id:016x}-{int(c.trace_flags):02x}", span)

    def start(self, parent: str | bytes | None, name: str, attributes: Mapping[str, Any] | None = None) -> Span:
        return self._start(parent, name, self._consumer, attributes)

    def ingest(self, parent: str | bytes | None, name: str, attributes: Mapping[str, Any] | None = None) -> Span:
        return self._start(parent, name, self._producer, attributes)

    def end(self, span: Span | None, error: str | None = None, attributes: Mapping[str, Any] | None = None) -> None:
        if span is None or span.otel is None:
            return
        if attributes:
            span.otel.set_attributes({k: v for k, v in attributes.items() if v is not None})
        if error:
            span.otel.set_status(self._error(error[:500]))
        span.otel.end()

    def shutdown(self) -> None:
        self.provider.shutdown()


def setup(mode: str, service: str, exporter: Any = None) -> Tracer:
    """The tracer for NEWSFLOW_TRACING=`mode` in the service `service` (newsflow-cleaner, newsflow-gateway...).
    `exporter`: a span exporter to use instead (tests: the SDK's InMemorySpanExporter, exported at once).
    Raises TracingUnavailable when spans are asked for and the SDK is not installed."""
    if mode == "off":
        return Tracer()
    if mode not in MODES:
        raise ValueError(f"NEWSFLOW_TRACING must be one of {', '.join(MODES)}, not {mode!r}")
    try:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SimpleSpanProcessor
    except ImportError:
        raise TracingUnavailable(
            f"NEWSFLOW_TRACING={mode} needs the OpenTelemetry SDK: pip install 'newsflow[tracing]' (or set NEWSFLOW_TRACING=off)"
        ) from None
    attributes = {"service.namespace": "newsflow"}
    if not os.environ.get("OTEL_SERVICE_NAME") and "service.name=" not in os.environ.get("OTEL_RESOURCE_ATTRIBUTES", ""):
        attributes["service.name"] = service  # else the environment's name stands (Resource.create lets ours win)
    # shutdown_on_exit: an atexit hook flushes what the batch processor still holds when the worker exits.
    provider = TracerProvider(resource=Resource.create(attributes), shutdown_on_exit=True)
    if exporter is not None:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    elif mode == "console":
        # One JSON object per line on stdout (the logs are on stderr).
        provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter(formatter=lambda s: s.to_json(indent=None) + "\n")))
    else:
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        except ImportError:
            raise TracingUnavailable(
                "NEWSFLOW_TRACING=otlp needs the OTLP/HTTP exporter: pip install 'newsflow[tracing]'") from None
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    return OtelTracer(provider)
