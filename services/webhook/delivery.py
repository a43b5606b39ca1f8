"""POSTing enriched articles to the configured webhook URLs: configuration, one signed request, and what its
answer means (delivered, retry later, or never).

| answer | meaning |
|---|---|
| 2xx | delivered |
| 408, 429, 5xx, a timeout, a refused or broken connection | the receiver is away or busy: retry (TransientError) |
| any other 4xx, 3xx (redirects are not followed) | it will never take this article: dead letter with the reason |
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any, Sequence
from urllib.parse import urlsplit

import httpx

from shared.errors import TransientError
from shared.settings import Settings
from shared.tokens import MIN_TOKEN_CHARS
from shared.transport import Entry, Outcome

from .signing import SIGNATURE_HEADER, signature_header

IDEMPOTENCY_HEADER = "Idempotency-Key"
ARTICLE_HEADER = "X-Newsflow-Article-Id"
CORRELATION_HEADER = "X-Correlation-ID"
USER_AGENT = "newsflow-webhook/1"
RETRY_STATUSES = frozenset({408, 429})
REASON_BODY_CHARS = 200  # of a refusing receiver's answer, in the dead letter's reason
MEMO_MAX = 100_000  # (entry, url) results kept across retries of a batch; a safety cap, never reached by one batch


class WebhookConfigError(ValueError):
    """The webhook worker cannot start with this configuration."""


@dataclass(frozen=True)
class WebhookConfig:
    urls: tuple[str, ...]
    secrets: tuple[str, ...]
    timeout_s: float = 10.0
    concurrency: int = 8

    @classmethod
    def from_settings(cls, settings: Settings) -> WebhookConfig:
        urls = tuple(dict.fromkeys(u.strip() for u in settings.webhook_urls.split(",") if u.strip()))
        if not urls:
            raise WebhookConfigError("no webhook URLs: set NEWSFLOW_WEBHOOK_URLS (comma-separated http(s) URLs)")
        for url in urls:
            problem = url_problem(url)
            if problem:
                raise WebhookConfigError(f"NEWSFLOW_WEBHOOK_URLS: {display(url)}: {problem}")
        secrets = tuple(s.strip() for s in settings.webhook_secret.split(",") if s.strip())
        if not secrets:
            raise WebhookConfigError("no webhook secret: set NEWSFLOW_WEBHOOK_SECRET or NEWSFLOW_WEBHOOK_SECRET_FILE; "
                                     "every webhook is signed, so receivers can tell it is ours")
        for n, secret in enumerate(secrets, 1):
            if len(secret) < MIN_TOKEN_CHARS:
                raise WebhookConfigError(f"webhook secret #{n} is shorter than {MIN_TOKEN_CHARS} characters; use a long random one "
                                         "(e.g. `python -c 'import secrets; print(secrets.token_urlsafe(32))'`)")
        return cls(urls, secrets, settings.webhook_timeout_s, settings.webhook_concurrency)


def url_problem(url: str) -> str | None:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError as exc:
        return f"not a URL ({exc})"
    if parts.scheme not in ("http", "https"):
        return "only http and https URLs are allowed"
    if not parts.hostname:
        return "no host"
    return None


def display(url: str) -> str:
    """The URL for logs and dead letters: without userinfo and query, where receiver credentials would be."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "<unparseable URL>"
    return f"{parts.scheme}://{host}{port}{parts.path}"


def verdict(status: int) -> str:
    """`ok`, `retry` or `fail` for an HTTP status from a receiver."""
    if 200 <= status < 300:
        return "ok"
    if status in RETRY_STATUSES or status >= 500:
        return "retry"
    return "fail"


class Deliverer:
    """Delivers a batch of enriched entries to every URL; the stage's `process` (services/webhook/app.py).

    An article is done when every URL took it (acked, nothing published) or one refused it for good (a dead
    letter naming the URL and its answer). When any delivery must be retried, the whole batch raises
    TransientError and the runner waits with backoff and calls again: what was already delivered in this
    batch is remembered and not sent again, so only a crash or a takeover repeats a delivery."""

    def __init__(self, config: WebhookConfig, stream: str, client: httpx.AsyncClient | None = None) -> None:
        self.config = config
        self.stream = stream  # `{prefix}:enriched`: with the entry id, the idempotency key
        self.client = client or httpx.AsyncClient(
            timeout=httpx.Timeout(config.timeout_s),
            follow_redirects=False,  # a receiver cannot send our signed articles somewhere else
            trust_env=False,  # no proxies or .netrc from the environment: exactly the configured URLs
            limits=httpx.Limits(max_connections=config.concurrency),
            headers={"User-Agent": USER_AGENT},
        )
        self.memo: dict[tuple[str, str], str | None] = {}  # (entry id, url) -> None delivered, or the refusal

    async def aclose(self) -> None:
        await self.client.aclose()

    def headers(self, entry: Entry, article_id: str, body: bytes) -> dict[str, str]:
        # Signed at each attempt, so a delivery retried after a long outage is not refused as a replay.
        out = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: signature_header(self.config.secrets, int(time.time()), body),
            IDEMPOTENCY_HEADER: f"{self.stream}/{entry.id}",
            ARTICLE_HEADER: article_id,
        }
        correlation = entry.meta().get("correlation_id")
        if correlation:
            out[CORRELATION_HEADER] = correlation
        return out

    async def post(self, url: str, entry: Entry, article_id: str, body: bytes) -> tuple[str, str]:
        """One POST: (`ok` | `retry` | `fail`, a reason a person can act on)."""
        where = display(url)
        try:
            async with self.client.stream("POST", url, content=body, headers=self.headers(entry, article_id, body)) as resp:
                status = resp.status_code
                if 200 <= status < 300:
                    return "ok", ""
                answer = await _first_bytes(resp, 1024)
        except httpx.TimeoutException:
            return "retry", f"webhook {where}: no answer within {self.config.timeout_s:g}s"
        except httpx.TransportError as exc:
            return "retry", f"webhook {where}: {type(exc).__name__}: {exc}"[:300]
        text = answer.decode("utf-8", "replace").strip().replace("\n", " ")[:REASON_BODY_CHARS]
        reason = f"webhook {where} answered {status}" + (f": {text}" if text else "")
        if 300 <= status < 400:
            reason += " (redirects are not followed: configure the final URL)"
        return verdict(status), reason

    async def deliver(self, items: Sequence[tuple[Entry, Any]]) -> list[Outcome]:
        pending: list[str] = []
        gate = asyncio.Semaphore(self.config.concurrency)

        async def one(entry: Entry, article_id: str, url: str) -> None:
            key = (entry.id, url)
            if key in self.memo:
                return
            async with gate:
                result, reason = await self.post(url, entry, article_id, entry.fields[b"body"])
            if result == "retry":
                pending.append(reason)
            else:
                self.memo[key] = reason if result == "fail" else None

        if len(self.memo) > MEMO_MAX:
            self.memo.clear()  # left by batches that were abandoned (shutdown, taken over): at worst a duplicate
        await asyncio.gather(*(one(entry, model.id, url) for entry, model in items for url in self.config.urls))
        if pending:
            raise TransientError(f"{len(pending)} webhook deliveries to retry; {pending[0]}")
        outcomes = []
        for entry, model in items:
            refusals = [r for r in (self.memo.pop((entry.id, url), None) for url in self.config.urls) if r]
            if refusals:
                outcomes.append(Outcome(entry, dead_letter="; ".join(refusals), article_id=model.id))
            else:
                outcomes.append(Outcome(entry, article_id=model.id))
        return outcomes


async def _first_bytes(resp: httpx.Response, limit: int) -> bytes:
    """At most `limit` bytes of the answer: enough for a reason, never a whole page."""
    out = b""
    try:
        async for chunk in resp.aiter_raw():
            out += chunk
            if len(out) >= limit:
                break
    except httpx.HTTPError:
        pass
    return out[:limit]
