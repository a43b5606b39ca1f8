"""structlog set-up: one processor chain, JSON lines in services, readable lines on a terminal.

Lines about a message carry `article_id`, `stage`, `correlation_id` and `trace_id` (the 32-hex trace id of the
entry's W3C traceparent, shared/tracing.py), bound with `bound_article()`.

Every line, structlog's and the standard library's (uvicorn, asyncpg...), passes `Redactor` last before it is
rendered: the configured secrets (`Settings.secret_values()`), URL passwords (`redis://user:***@host`),
`password=`/`token=` pairs, bearer tokens and the values of secret-named keys become `***`.
"""

from __future__ import annotations

import logging
import re
import sys
from contextlib import contextmanager
from typing import Any, Iterable, Iterator

import structlog

MASK = "***"
# Shorter configured values are not masked literally (they would mask ordinary words); in a URL, a
# `password=` pair or a bearer header they are still masked by the patterns below.
MIN_SECRET_CHARS = 4

# scheme://user:password@ -> scheme://user:***@ (the user name stays: it tells which account was used).
_URL_USERINFO = re.compile(r"(?P<head>\b[a-zA-Z][a-zA-Z0-9+.-]*://[^:@/\s?#]*):(?P<pw>[^@/\s?#]*)@")
# password=..., token: ..., api_key=..., access_token=... in query strings and key=value text.
_SECRET_PAIR = re.compile(
    r"(?P<key>\b[\w-]*(?:password|passwd|pwd|token|secret|api[_-]?key)[\w-]*)(?P<sep>[\"']?\s*[=:]\s*[\"']?)"
    r"(?P<value>[^\s&\"',;)}\]]+)",
    re.IGNORECASE,
)
_BEARER = re.compile(r"(?P<scheme>\b(?:bearer|basic)\s+)(?P<value>[A-Za-z0-9._~+/=-]+)", re.IGNORECASE)
# Keys whose whole value is a secret, wherever they appear in an event (nested dicts too).
_SECRET_KEY = re.compile(r"password|passwd|secret|token|authorization|api[_-]?key|credential", re.IGNORECASE)


def redact_url(url: str) -> str:
    """The URL with the password of its userinfo masked: redis://user:***@host:6379/0."""
    return _URL_USERINFO.sub(lambda m: f"{m.group('head')}:{MASK}@", url)


class Redactor:
    """A structlog processor that masks secrets in every string of the event dict, keys and nesting included."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        values = sorted({s for s in secrets if s and len(s) >= MIN_SECRET_CHARS}, key=len, reverse=True)
        self._literal = re.compile("|".join(map(re.escape, values))) if values else None

    def text(self, value: str) -> str:
        if self._literal is not None:
            value = self._literal.sub(MASK, value)
        value = _URL_USERINFO.sub(lambda m: f"{m.group('head')}:{MASK}@", value)
        value = _SECRET_PAIR.sub(lambda m: f"{m.group('key')}{m.group('sep')}{MASK}", value)
        return _BEARER.sub(lambda m: f"{m.group('scheme')}{MASK}", value)

    def value(self, value: Any, key: str | None = None) -> Any:
        if isinstance(value, str):
            return MASK if key and value and _SECRET_KEY.search(key) else self.text(value)
        if isinstance(value, bytes):
            return self.value(value.decode("utf-8", "replace"), key)
        if isinstance(value, dict):
            return {k: self.value(v, k if isinstance(k, str) else None) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return type(value)(self.value(v) for v in value)
        if isinstance(value, (set, frozenset)):
            return [self.value(v) for v in value]
        if value is None or isinstance(value, (bool, int, float)):
            return value
        # Anything else (an exception, a URL object, a model) is rendered by its repr: redact that text.
        return self.text(repr(value))

    def __call__(self, _logger: Any, _method: str, event_dict: dict[str, Any]) -> dict[str, Any]:
        return {k: (v if k.startswith("_") else self.value(v, k if k != "event" else None)) for k, v in event_dict.items()}


_redactor = Redactor()


def redact(value: Any) -> Any:
    """What the log processor does, for text shown elsewhere (error messages, status output)."""
    return _redactor.value(value)


def configure(level: str = "INFO", fmt: str = "auto", stage: str | None = None, secrets: Iterable[str] = ()) -> None:
    """`secrets`: values masked wherever they appear in a line (`Settings.secret_values()`)."""
    global _redactor
    if fmt == "auto":
        fmt = "console" if sys.stderr.isatty() else "json"
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        numeric = logging.INFO
    _redactor = Redactor(secrets)
    renderer = structlog.processors.JSONRenderer() if fmt == "json" else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            _redactor,  # last before rendering: it sees the formatted exception too
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        # One write per line (message and newline together): print() writes them apart, and the workers of `newsflow
        # up` share one stderr, where two lines could then merge into one that no JSON parser reads.
        logger_factory=structlog.WriteLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    _route_stdlib_logging(renderer)
    structlog.contextvars.clear_contextvars()
    if stage:
        structlog.contextvars.bind_contextvars(stage=stage)


def _route_stdlib_logging(renderer: Any) -> None:
    """Libraries' records (uvicorn, asyncpg, ...) through the same redaction and renderer, on stderr.
    The root level stays as it is (WARNING by default), as before; one handler of ours, replaced on re-configure."""
    handler = logging.StreamHandler(sys.stderr)
    handler.set_name("newsflow")
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[
            structlog.contextvars.merge_contextvars,
            structlog.stdlib.add_log_level,
            structlog.stdlib.add_logger_name,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
        ],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            _redactor,
            renderer,
        ],
    ))
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == "newsflow"]:
        root.removeHandler(old)
    root.addHandler(handler)


@contextmanager
def bound_article(article_id: str | None, correlation_id: str | None, trace_id: str | None = None) -> Iterator[None]:
    with structlog.contextvars.bound_contextvars(article_id=article_id, correlation_id=correlation_id, trace_id=trace_id):
        yield


def get_logger(name: str | None = None) -> structlog.stdlib.BoundLogger:
    return structlog.get_logger(name)
