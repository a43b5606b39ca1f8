"""The log redaction (shared/logging.py): configured secrets, URL passwords, password=/token= pairs, bearer
tokens and secret-named keys are masked in every line, structlog's and the standard library's."""

from __future__ import annotations

import io
import json
import logging
import sys

import pytest
import structlog

import shared.logging
from shared.logging import MASK, Redactor, configure, get_logger, redact, redact_url

SECRET = "s3cret-Value-42"
TOKEN = "gateway-token-0123456789abcdef"


@pytest.fixture
def json_logs(monkeypatch):
    """configure() for JSON on a stderr of our own, with two configured secrets; the log lines as dicts."""
    stream = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stream)
    configure("DEBUG", "json", stage="cleaner", secrets=[SECRET, TOKEN])

    def lines() -> list[dict]:
        return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]

    yield lines
    structlog.reset_defaults()
    structlog.contextvars.clear_contextvars()
    root = logging.getLogger()
    for handler in [h for h in root.handlers if h.get_name() == "newsflow"]:
        root.removeHandler(handler)
    shared.logging._redactor = Redactor()  # the module's own redactor again, without our secrets


def test_url_userinfo_keeps_the_user_and_masks_the_password():
    assert redact_url("redis://user:pa55@redis:6379/0") == "redis://user:***@redis:6379/0"
    assert redact_url("redis://:pa55@redis:6379/0") == "redis://:***@redis:6379/0"
    assert redact_url("postgresql://app:p%40ss@db:5432/news?sslmode=require") == "postgresql://app:***@db:5432/news?sslmode=require"
    assert redact_url("redis://redis:6379/0") == "redis://redis:6379/0"
    assert redact_url("https://example.org/a:b@c") == "https://example.org/a:b@c", "a colon in the path is no userinfo"


@pytest.mark.parametrize("text, expected", [
    ("connect redis://default:hunter2@10.0.0.5:6379/0 failed", "connect redis://default:***@10.0.0.5:6379/0 failed"),
    ("dsn postgresql://db/news?user=app&password=hunter2&sslmode=require",
     "dsn postgresql://db/news?user=app&password=***&sslmode=require"),
    ("GET /feed?access_token=abc123&page=2", "GET /feed?access_token=***&page=2"),
    ("password: hunter2, retrying", "password: ***, retrying"),
    ('{"api_key": "abc123"}', '{"api_key": "***"}'),
    ("Authorization: Bearer abc.def-123", "Authorization: Bearer ***"),
    ("no secret here: 3 tokens counted", "no secret here: 3 tokens counted"),
])
def test_patterns(text, expected):
    assert Redactor().text(text) == expected


def test_configured_secrets_are_masked_anywhere_in_any_value():
    r = Redactor([SECRET, TOKEN, "abc"])  # "abc" is too short to mask literally: it would eat ordinary words
    event = r(None, "info", {
        "event": f"boom {SECRET}",
        "error": f"ValueError('{TOKEN} is wrong')",
        "nested": {"list": [f"x{SECRET}y", 3, None], "tuple": (TOKEN,), "bytes": SECRET.encode()},
        "count": 3, "ok": True, "ratio": 0.5,
        "word": "abcdef",
    })
    assert SECRET not in json.dumps(event) and TOKEN not in json.dumps(event)
    assert event["event"] == f"boom {MASK}"
    assert event["nested"]["list"] == [f"x{MASK}y", 3, None] and event["nested"]["tuple"] == (MASK,)
    assert (event["count"], event["ok"], event["ratio"], event["word"]) == (3, True, 0.5, "abcdef")


def test_values_of_secret_named_keys_are_masked_whole():
    event = Redactor()(None, "info", {"event": "login", "password": "anything at all", "Authorization": "Basic x",
                                      "headers": {"x-api-key": "k-123"}, "redis_password": "", "token_count": 4})
    assert event["password"] == MASK and event["Authorization"] == MASK and event["headers"]["x-api-key"] == MASK
    assert event["redis_password"] == "" and event["token_count"] == 4, "nothing to hide: left as it is"


def test_objects_rendered_by_repr_are_masked_too():
    class Conn:
        def __repr__(self) -> str:
            return f"Conn(url='redis://u:{SECRET}@h:1/0')"

    event = Redactor([SECRET])(None, "info", {"event": "x", "conn": Conn(), "exc": RuntimeError(f"auth {TOKEN}")})
    assert SECRET not in event["conn"] and "u:***@h" in event["conn"]
    assert "RuntimeError" in event["exc"]


def test_structlog_lines_exceptions_and_bound_context_are_masked(json_logs):
    log = get_logger("test")
    structlog.contextvars.bind_contextvars(correlation_id=f"cid-{SECRET}")
    log.info("connecting", redis=f"redis://default:{SECRET}@127.0.0.1:6379/0")
    try:
        raise ConnectionError(f"AUTH failed with {TOKEN} for redis://u:pw-in-url@h:1")
    except ConnectionError:
        log.exception("failed")
    lines = json_logs()
    text = json.dumps(lines)
    assert SECRET not in text and TOKEN not in text and "pw-in-url" not in text
    assert lines[0]["redis"] == "redis://default:***@127.0.0.1:6379/0" and lines[0]["stage"] == "cleaner"
    assert "ConnectionError: AUTH failed with ***" in lines[1]["exception"], "the traceback is kept, masked"


def test_standard_library_records_go_through_the_same_redaction(json_logs):
    logging.getLogger("uvicorn.error").warning("lost redis://default:%s@127.0.0.1:6379/0 (%s)", SECRET, TOKEN)
    (line,) = json_logs()
    assert line["event"] == "lost redis://default:***@127.0.0.1:6379/0 (***)"
    assert line["level"] == "warning" and line["logger"] == "uvicorn.error"


def test_configure_twice_keeps_one_stdlib_handler(json_logs):
    configure("INFO", "json", secrets=[SECRET])
    assert [h.get_name() for h in logging.getLogger().handlers].count("newsflow") == 1


def test_redact_uses_the_configured_secrets(json_logs):
    assert redact(f"on redis://x:{SECRET}@h and {TOKEN}") == f"on redis://x:{MASK}@h and {MASK}"


def test_each_log_line_is_one_write(monkeypatch):
    """The workers of `newsflow up` share one stderr: a line written in two pieces (message, then newline) could
    interleave with another process's line into one that is not JSON (tests/e2e/test_secrets.py saw it)."""
    writes: list[str] = []

    class Recorder(io.StringIO):
        def write(self, text: str) -> int:
            writes.append(text)
            return len(text)

    monkeypatch.setattr(sys, "stderr", Recorder())
    try:
        configure("INFO", "json", stage="cleaner")
        get_logger("test").info("one_line", n=1)
    finally:
        structlog.reset_defaults()
        structlog.contextvars.clear_contextvars()
        root = logging.getLogger()
        for handler in [h for h in root.handlers if h.get_name() == "newsflow"]:
            root.removeHandler(handler)
    assert len(writes) == 1 and writes[0].endswith("}\n"), writes
    assert json.loads(writes[0])["event"] == "one_line"
