"""structlog set-up: one processor chain, JSON lines in services, readable lines on a terminal.

Lines about a message carry `article_id`, `stage` and `correlation_id`, bound with `bound_article()`.
"""

from __future__ import annotations

import logging
import sys
from contextlib import contextmanager
from typing import Iterator

import structlog


def configure(level: str = "INFO", fmt: str = "auto", stage: str | None = None) -> None:
    if fmt == "auto":
        fmt = "console" if sys.stderr.isatty() else "json"
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        numeric = logging.INFO
    renderer = structlog.processors.JSONRenderer() if fmt == "json" else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    structlog.contextvars.clear_contextvars()
    if stage:
        structlog.contextvars.bind_contextvars(stage=stage)


@contextmanager
def bound_article(article_id: str | None, correlation_id: str | None) -> Iterator[None]:
    with structlog.contextvars.bound_contextvars(article_id=article_id, correlation_id=correlation_id):
        yield


def get_logger(name: str | None = None) -> structlog.stdlib.BoundLogger:
    return structlog.get_logger(name)
