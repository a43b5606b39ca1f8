"""Local files and folders as raw articles: .txt and .md (plain text or wire copy), .html/.htm, .json, .jsonl."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Iterator

SUFFIXES = {".txt", ".md", ".html", ".htm", ".json", ".jsonl", ".ndjson"}


def iter_paths(paths: list[str]) -> Iterator[Path]:
    for name in paths:
        path = Path(name)
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES)
        elif path.is_file():
            yield path
        else:
            raise FileNotFoundError(name)


def articles_from_file(path: Path, source: str | None = None) -> Iterator[dict[str, Any]]:
    suffix = path.suffix.lower()
    data = path.read_bytes()
    src = source or "file"
    if suffix in (".json",):
        value = json.loads(data)
        for item in value if isinstance(value, list) else [value]:
            yield _with_defaults(item, src, path)
    elif suffix in (".jsonl", ".ndjson"):
        for line in data.splitlines():
            if line.strip():
                yield _with_defaults(json.loads(line), src, path)
    elif suffix in (".html", ".htm"):
        yield {"html": data.decode("utf-8", "replace"), "source": src, "url": path.resolve().as_uri()}
    else:
        yield {"text": data.decode("utf-8", "replace"), "source": src, "url": path.resolve().as_uri()}


def articles_from_stdin(source: str | None = None) -> Iterator[dict[str, Any]]:
    data = sys.stdin.buffer.read()
    stripped = data.lstrip()
    if stripped.startswith((b"{", b"[")):
        try:
            value = json.loads(data)
            for item in value if isinstance(value, list) else [value]:
                yield _with_defaults(item, source or "stdin", None)
            return
        except ValueError:
            lines = [json.loads(line) for line in data.splitlines() if line.strip()]
            for item in lines:
                yield _with_defaults(item, source or "stdin", None)
            return
    yield {"text": data.decode("utf-8", "replace"), "source": source or "stdin"}


def _with_defaults(item: Any, source: str, path: Path | None) -> Any:
    if isinstance(item, dict):
        item = dict(item)
        item.setdefault("source", source)
    return item
