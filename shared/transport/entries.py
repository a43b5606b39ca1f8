"""Stream entries as they come off Redis, and what a stage decides about each."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from shared.contract import METADATA_FIELDS
from shared.errors import PermanentError

if TYPE_CHECKING:
    from shared.tracing import Span

_METADATA_KEYS = tuple((name, name.encode()) for name in METADATA_FIELDS)  # as the fields come off Redis: bytes


@dataclass
class Entry:
    id: str
    fields: dict[bytes, bytes]
    deliveries: int = 1
    # This stage's span of the entry's trace (shared/tracing.py), set while the runner handles it: its
    # traceparent goes into the output entry, its trace id into the log lines about the article.
    span: Span | None = field(default=None, repr=False, compare=False)

    def meta(self) -> dict[str, str]:
        """The metadata fields (correlation_id, traceparent) that travel on to the next stream."""
        out = {}
        for name, key in _METADATA_KEYS:
            value = self.fields.get(key)
            if value:
                out[name] = value.decode("utf-8", "replace")[:512]
        return out

    def original(self) -> tuple[dict[str, str], dict[str, str]]:
        """The fields as JSON-safe strings, with non-UTF-8 values base64-encoded and named in the second dict."""
        fields: dict[str, str] = {}
        encoding: dict[str, str] = {}
        for key, value in self.fields.items():
            name = key.decode("utf-8", "backslashreplace")
            try:
                fields[name] = value.decode("utf-8")
            except UnicodeDecodeError:
                fields[name] = base64.b64encode(value).decode("ascii")
                encoding[name] = "base64"
        return fields, encoding

    def timestamp_ms(self) -> int:
        return int(self.id.partition("-")[0])


@dataclass
class Outcome:
    """What happened to one entry. Exactly one of output, dead_letter or retry is set."""

    entry: Entry
    output: BaseModel | None = None
    dead_letter: str | None = None  # the reason
    permanent: bool = True
    retry: str | None = None  # the transient error; the entry stays pending
    article_id: str | None = None
    body: bytes = b""  # the output's JSON, filled in just before the commit
    extra_fields: dict[str, str] = field(default_factory=dict)

    @property
    def done(self) -> bool:
        return self.retry is None


def id_key(entry_id: str) -> tuple[int, int]:
    """A stream entry id ("<ms>-<seq>") as numbers, to compare ids by: "9-0" comes before "10-0"."""
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


def as_str(value: bytes | str) -> str:
    """An entry id, consumer or stream name as Redis answered it (bytes with the workers' clients) as text."""
    return value.decode() if isinstance(value, bytes) else value


def decode_body(entry: Entry, max_bytes: int) -> Any:
    """The entry's `body` as a JSON value, or PermanentError saying why it can never be one."""
    body = entry.fields.get(b"body")
    if body is None:
        names = ", ".join(sorted(k.decode("utf-8", "replace") for k in entry.fields)) or "none"
        raise PermanentError(f"entry has no 'body' field (fields: {names})")
    if len(body) > max_bytes:
        raise PermanentError(f"body is {len(body):,} bytes, over the {max_bytes:,}-byte limit")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PermanentError(f"body is not valid UTF-8 (byte {exc.start})") from None
    try:
        return json.loads(text)
    except RecursionError:
        raise PermanentError("body JSON is nested too deeply") from None
    except ValueError as exc:
        raise PermanentError(f"body is not valid JSON: {exc}") from None
