"""Webhook delivery (services/webhook) against a real Redis and local receivers on 127.0.0.1: the stage's runner
reads `{prefix}:enriched` in its group and POSTs to stdlib HTTP servers started here, which check each signature
with the receiver-side function shipped in examples/webhook_receiver.py."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

import pytest
import redis.asyncio as aredis

from services.webhook.app import spec
from services.webhook.delivery import Deliverer, WebhookConfig, WebhookConfigError, display, verdict
from services.webhook.signing import signature_header
from shared.settings import Settings
from shared.topology import Topology
from shared.transport import Entry, StageRunner
from tests.conftest import ROOT
from tests.helpers import free_port, push

SECRET = "webhook-secret-0123456789abcdef"
OLD_SECRET = "webhook-secret-previous-000000000"


def example() -> Any:
    path = ROOT / "examples" / "webhook_receiver.py"
    module_spec = importlib.util.spec_from_file_location("newsflow_webhook_receiver", path)
    assert module_spec and module_spec.loader
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


verify_signature = example().verify_signature


@dataclass
class Hit:
    path: str
    headers: dict[str, str]
    body: bytes
    status: int
    signed: bool


class Receiver:
    """A webhook receiver: answers each POST with `answer(n)` (n: the request's number, from 0), checks the
    signature with the example's verify_signature, and records everything."""

    def __init__(self, answer: Callable[[int], int] = lambda _n: 200, port: int = 0, secret: str = SECRET) -> None:
        self.hits: list[Hit] = []
        self.count = 0
        self.lock = threading.Lock()
        outer = self

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_args: Any) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with outer.lock:
                    n = outer.count
                    outer.count += 1
                status = answer(n)  # outside the lock: an answer may take its time (the timeout test)
                signed = verify_signature(secret, self.headers.get("X-Newsflow-Signature"), body)
                with outer.lock:
                    outer.hits.append(Hit(self.path, {k.lower(): v for k, v in self.headers.items()}, body, status, signed))
                text = f"status {status} from the test receiver".encode()
                self.send_response(status)
                self.send_header("Content-Length", str(len(text)))
                self.end_headers()
                self.wfile.write(text)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), H)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def taken(self) -> dict[str, dict[str, Any]]:
        """What a receiver keeping one copy per Idempotency-Key ends with: key -> article."""
        out: dict[str, dict[str, Any]] = {}
        for hit in self.hits:
            if 200 <= hit.status < 300:
                out.setdefault(hit.headers["idempotency-key"], json.loads(hit.body))
        return out


@pytest.fixture
def receivers():
    made: list[Receiver] = []

    def make(*args: Any, **kwargs: Any) -> Receiver:
        made.append(Receiver(*args, **kwargs))
        return made[-1]

    yield make
    for r in made:
        r.close()


def article(n: int) -> dict[str, Any]:
    return {"id": f"wh-{n}", "title": f"Story {n}", "text": f"Text of story {n}.", "topics": [], "schema_version": 1}


def make_runner(redis_url: str, prefix: str, urls: list[str], secret: str = SECRET, **overrides: Any) -> StageRunner:
    settings = Settings(stream_prefix=prefix, webhook_urls=",".join(urls), webhook_secret=secret, webhook_timeout_s=5, **overrides)
    deliverer = Deliverer(WebhookConfig.from_settings(settings), Topology(prefix).enriched)
    return StageRunner(spec(deliverer), settings, aredis.Redis.from_url(redis_url), "webhook-1")


async def read_new(runner: StageRunner) -> list[Entry]:
    reply = await runner.redis.xreadgroup(runner.group, runner.consumer, {runner.input_stream: ">"}, count=100)
    return [Entry(i.decode(), f) for _, entries in reply for i, f in entries]


async def run_once(runner: StageRunner) -> list[Entry]:
    await runner.ensure_groups()
    entries = await read_new(runner)
    # A deadline, so a refusal wrongly taken for "retry" fails the test instead of waiting forever.
    await asyncio.wait_for(runner.handle_batch(entries), 60)
    return entries


def dead_letters(r: Any, prefix: str) -> list[dict[str, Any]]:
    return [json.loads(f[b"body"]) for _, f in r.xrange(f"{prefix}:dlq")]


async def close(runner: StageRunner) -> None:
    await runner.spec.process.__self__.aclose()  # type: ignore[attr-defined]
    await runner.redis.aclose()


async def deliver_once(redis_url: str, prefix: str, urls: list[str]) -> StageRunner:
    """A webhook runner for `urls` that handles one batch and is closed; returned for its counters."""
    runner = make_runner(redis_url, prefix, urls)
    try:
        await run_once(runner)
    finally:
        await close(runner)
    return runner


# -- delivery ------------------------------------------------------------------------------------------------


async def test_every_article_is_delivered_signed_with_its_ids(redis_url, prefix, r, receivers):
    rx = receivers()
    push(r, f"{prefix}:enriched", [article(n) for n in range(5)])
    r.xadd(f"{prefix}:enriched", {"body": json.dumps(article(5)), "correlation_id": "corr-5"})
    runner = make_runner(redis_url, prefix, [rx.url()])
    try:
        entries = await run_once(runner)
    finally:
        await close(runner)
    assert len(rx.hits) == 6 and all(h.signed for h in rx.hits), [h.headers for h in rx.hits]
    stream_bodies = {e.id: e.fields[b"body"] for e in entries}
    for hit in rx.hits:
        entry_id = hit.headers["idempotency-key"].removeprefix(f"{prefix}:enriched/")
        assert hit.body == stream_bodies[entry_id], "the body is POSTed exactly as storage announced it"
        assert hit.headers["x-newsflow-article-id"] == json.loads(hit.body)["id"]
        assert hit.headers["content-type"] == "application/json" and hit.path == "/hook"
    assert {h.headers.get("x-correlation-id") for h in rx.hits} >= {"corr-5"}
    assert sorted(a["id"] for a in rx.taken().values()) == [f"wh-{n}" for n in range(6)]
    assert r.xpending(f"{prefix}:enriched", f"{prefix}:webhook")["pending"] == 0
    assert r.xlen(f"{prefix}:dlq") == 0


async def test_503s_are_retried_until_the_receiver_takes_the_article(redis_url, prefix, r, receivers):
    rx = receivers(lambda n: 503 if n < 3 else 200)
    push(r, f"{prefix}:enriched", [article(1)])
    runner = await deliver_once(redis_url, prefix, [rx.url()])
    assert [h.status for h in rx.hits] == [503, 503, 503, 200]
    assert len({h.headers["idempotency-key"] for h in rx.hits}) == 1, "every retry carries the same idempotency key"
    assert all(h.signed for h in rx.hits)
    assert [a["id"] for a in rx.taken().values()] == ["wh-1"]
    assert runner.counters.transient_waits == 3 and runner.counters.dead_lettered == 0
    assert r.xpending(f"{prefix}:enriched", f"{prefix}:webhook")["pending"] == 0 and r.xlen(f"{prefix}:dlq") == 0


async def test_a_retry_sends_again_only_what_was_not_delivered(redis_url, prefix, r, receivers):
    busy = receivers(lambda n: 429 if n < 2 else 200)
    fine = receivers()
    push(r, f"{prefix}:enriched", [article(n) for n in range(3)])
    await deliver_once(redis_url, prefix, [busy.url(), fine.url("/other")])
    assert len(fine.hits) == 3, "the receiver that answered 200 at once got each article once"
    assert sorted(a["id"] for a in busy.taken().values()) == ["wh-0", "wh-1", "wh-2"]
    assert r.xpending(f"{prefix}:enriched", f"{prefix}:webhook")["pending"] == 0


async def test_a_400_is_a_dead_letter_naming_the_receiver_and_its_answer(redis_url, prefix, r, receivers):
    refuses = receivers(lambda _n: 400)
    takes = receivers()
    push(r, f"{prefix}:enriched", [article(1)])
    url = f"http://user:pw-in-url@127.0.0.1:{refuses.port}/refuse?token=query-secret"
    await deliver_once(redis_url, prefix, [url, takes.url()])
    assert len(refuses.hits) == 1, "a 4xx is never retried"
    (letter,) = dead_letters(r, prefix)
    assert letter["stage"] == "webhook" and letter["permanent"] is True
    assert letter["source_stream"] == f"{prefix}:enriched" and json.loads(letter["original"]["body"])["id"] == "wh-1"
    assert f"webhook http://127.0.0.1:{refuses.port}/refuse answered 400: status 400 from the test receiver" == letter["error"]
    assert "pw-in-url" not in letter["error"] and "query-secret" not in letter["error"]
    assert len(takes.hits) == 1
    assert r.xpending(f"{prefix}:enriched", f"{prefix}:webhook")["pending"] == 0


async def test_redirects_are_refused_not_followed(redis_url, prefix, r, receivers):
    rx = receivers(lambda _n: 302)
    push(r, f"{prefix}:enriched", [article(1)])
    await deliver_once(redis_url, prefix, [rx.url()])
    (letter,) = dead_letters(r, prefix)
    assert "answered 302" in letter["error"] and "redirects are not followed" in letter["error"]
    assert len(rx.hits) == 1


async def test_a_body_that_is_not_an_article_is_a_dead_letter_and_never_posted(redis_url, prefix, r, receivers):
    rx = receivers()
    push(r, f"{prefix}:enriched", ["[1, 2]", {"title": "no id"}, "not json", article(1)])
    await deliver_once(redis_url, prefix, [rx.url()])
    assert [json.loads(h.body)["id"] for h in rx.hits] == ["wh-1"]
    assert len(dead_letters(r, prefix)) == 3
    assert r.xpending(f"{prefix}:enriched", f"{prefix}:webhook")["pending"] == 0


async def test_a_receiver_down_then_up_loses_nothing(redis_url, prefix, r, receivers):
    port = free_port()  # nothing listens here yet: every POST is a refused connection
    push(r, f"{prefix}:enriched", [article(n) for n in range(4)])
    runner = make_runner(redis_url, prefix, [f"http://127.0.0.1:{port}/hook"])
    try:
        await runner.ensure_groups()
        entries = await read_new(runner)
        task = asyncio.create_task(runner.handle_batch(entries))
        for _ in range(600):  # a deadline, not a timing assertion
            if runner.counters.transient_waits >= 2 or task.done():
                break
            await asyncio.sleep(0.05)
        assert not task.done() and runner.counters.transient_waits >= 2, "the batch waits while the receiver is down"
        assert runner.dependency_ok is False, "/readyz says the worker is waiting for a dependency"
        assert r.xpending(f"{prefix}:enriched", f"{prefix}:webhook")["pending"] == 4, "nothing acked while down"
        rx = receivers(port=port)
        await asyncio.wait_for(task, 60)
    finally:
        await close(runner)
    assert sorted(a["id"] for a in rx.taken().values()) == [f"wh-{n}" for n in range(4)]
    assert r.xpending(f"{prefix}:enriched", f"{prefix}:webhook")["pending"] == 0 and r.xlen(f"{prefix}:dlq") == 0


async def test_a_timeout_is_retried(redis_url, prefix, r, receivers):
    release = threading.Event()

    def slow_first(n: int) -> int:
        if n == 0:
            release.wait(10)  # longer than the client's timeout: the first attempt times out
        return 200

    rx = receivers(slow_first)
    push(r, f"{prefix}:enriched", [article(1)])
    settings_timeout = 0.5
    settings = Settings(stream_prefix=prefix, webhook_urls=rx.url(), webhook_secret=SECRET, webhook_timeout_s=settings_timeout)
    runner = StageRunner(spec(Deliverer(WebhookConfig.from_settings(settings), Topology(prefix).enriched)), settings,
                         aredis.Redis.from_url(redis_url), "webhook-1")
    try:
        await run_once(runner)
    finally:
        release.set()
        await close(runner)
    assert runner.counters.transient_waits >= 1
    assert [a["id"] for a in rx.taken().values()] == ["wh-1"]
    assert r.xpending(f"{prefix}:enriched", f"{prefix}:webhook")["pending"] == 0


async def test_its_group_is_its_own(redis_url, prefix, r, receivers):
    """The webhook reads enriched in `{prefix}:webhook`: another team's group still gets every article."""
    rx = receivers()
    r.xgroup_create(f"{prefix}:enriched", "team-a", id="0", mkstream=True)
    push(r, f"{prefix}:enriched", [article(n) for n in range(3)])
    await deliver_once(redis_url, prefix, [rx.url()])
    assert len(rx.hits) == 3
    got = r.xreadgroup("team-a", "c", {f"{prefix}:enriched": ">"})
    assert len(got[0][1]) == 3


# -- configuration and signatures (no Redis) -----------------------------------------------------------------


def test_config_needs_urls_and_a_long_secret():
    with pytest.raises(WebhookConfigError, match="NEWSFLOW_WEBHOOK_URLS"):
        WebhookConfig.from_settings(Settings(webhook_urls="", webhook_secret=SECRET))
    with pytest.raises(WebhookConfigError, match="NEWSFLOW_WEBHOOK_SECRET"):
        WebhookConfig.from_settings(Settings(webhook_urls="https://example.org/h", webhook_secret=""))
    with pytest.raises(WebhookConfigError, match="shorter than 16"):
        WebhookConfig.from_settings(Settings(webhook_urls="https://example.org/h", webhook_secret="short"))
    for bad in ("ftp://example.org/h", "file:///etc/passwd", "https://", "http://example.org:port/"):
        with pytest.raises(WebhookConfigError, match="NEWSFLOW_WEBHOOK_URLS"):
            WebhookConfig.from_settings(Settings(webhook_urls=bad, webhook_secret=SECRET))
    config = WebhookConfig.from_settings(Settings(webhook_urls=" https://a.example/h , http://10.0.0.5:8080/x,https://a.example/h",
                                                  webhook_secret=f"{SECRET},{OLD_SECRET}"))
    # Operator-configured targets are trusted: private addresses are allowed (the SSRF guard is for fetched URLs).
    assert config.urls == ("https://a.example/h", "http://10.0.0.5:8080/x") and config.secrets == (SECRET, OLD_SECRET)


def test_the_secret_can_come_from_a_file(tmp_path, monkeypatch):
    path = tmp_path / "webhook-secret"
    path.write_text(SECRET + "\n")
    monkeypatch.setenv("NEWSFLOW_WEBHOOK_SECRET_FILE", str(path))
    monkeypatch.delenv("NEWSFLOW_WEBHOOK_SECRET", raising=False)
    settings = Settings(webhook_urls="https://example.org/h")
    assert WebhookConfig.from_settings(settings).secrets == (SECRET,)
    assert SECRET in settings.secret_values() and SECRET not in repr(settings)


def test_answers_sort_into_delivered_retry_and_never():
    assert [verdict(s) for s in (200, 201, 204)] == ["ok"] * 3
    assert [verdict(s) for s in (408, 429, 500, 502, 503, 504)] == ["retry"] * 6
    assert [verdict(s) for s in (301, 302, 400, 401, 403, 404, 410, 413, 422)] == ["fail"] * 9
    assert display("https://u:p@example.org:8443/a/b?token=x#f") == "https://example.org:8443/a/b"


def test_signature_checks_body_secret_and_age():
    body = b'{"id":"a"}'
    header = signature_header([SECRET], 1_700_000_000, body)
    assert header.startswith("t=1700000000,v1=") and len(header.split("v1=")[1]) == 64
    assert verify_signature(SECRET, header, body, now=1_700_000_010)
    assert not verify_signature(SECRET, header, body + b" ", now=1_700_000_010), "a changed body"
    assert not verify_signature("another-secret-0123456789", header, body, now=1_700_000_010)
    assert not verify_signature(SECRET, header, body, now=1_700_000_000 + 301), "a replay after five minutes"
    assert not verify_signature(SECRET, header, body, now=1_700_000_000 - 301), "a time far in the future"
    forged = header.replace("t=1700000000", "t=1700000300")  # a fresh time on an old signature
    assert not verify_signature(SECRET, forged, body, now=1_700_000_300)
    for broken in (None, "", "v1=abc", "t=x,v1=abc", "t=1700000000"):
        assert not verify_signature(SECRET, broken, body, now=1_700_000_000)
    # Rotating: newsflow signs with both secrets; a receiver on either one accepts.
    both = signature_header([SECRET, OLD_SECRET], 1_700_000_000, body)
    assert verify_signature(SECRET, both, body, now=1_700_000_000) and verify_signature(OLD_SECRET, both, body, now=1_700_000_000)


def test_the_readme_shows_the_example_s_verification_function_verbatim():
    import inspect

    source = inspect.getsource(verify_signature)
    readme = (ROOT / "README.md").read_text()
    assert source in readme, "README's Webhooks snippet drifted from examples/webhook_receiver.py:verify_signature"


def test_newsflow_up_runs_the_webhook_worker_only_with_urls_and_gives_it_a_metrics_port():
    from services.cli import default_stages, metrics_ports

    assert "webhook" not in default_stages(Settings(webhook_urls=""))
    stages = default_stages(Settings(webhook_urls="https://example.org/hook", webhook_secret=SECRET))
    assert stages[-1] == "webhook"
    ports = metrics_ports(stages, 9100)
    assert ports["webhook"] not in {p for s, p in ports.items() if s != "webhook"}
