"""deploy/redis/users.acl against what the code does, without a Redis: the rules are parsed and evaluated here
(selectors, key patterns with their read/write rights, commands and subcommands), and checked against the
streams of shared/topology.py, the keys the stages build, the commands inside the Lua scripts, and the
deployment files that name the users. tests/e2e/test_redis_acl.py checks the same file on a real Redis.
"""

from __future__ import annotations

import hashlib
import re
import stat
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from shared.ratelimit import GCRA_LUA
from shared.topology import STAGES, Topology
from shared.transport.commit import COMMIT_LUA, fence_key
from shared.transport.reclaim import CLAIM_LUA, PURGE_LUA
from tests.helpers import acl_tool

ROOT = Path(__file__).resolve().parents[2]
ACL_DIR = ROOT / "deploy" / "redis"
TEMPLATE = (ACL_DIR / "users.acl").read_text()
USERS = {"default", "healthcheck", *STAGES, "webhook", "gateway", "api", "ops", "keda"}

# Commands that only read their keys (Redis' own key specs say RO); every other one needs read and write.
READ_ONLY = {"xrange", "xrevrange", "xlen", "xread", "xinfo|groups", "xinfo|stream", "xinfo|consumers", "xpending",
             "get", "mget", "hget", "hgetall", "hmget", "exists", "smembers"}
# What no newsflow user may ever run.
ADMIN_COMMANDS = {"flushall", "flushdb", "config", "keys", "debug", "shutdown", "acl", "monitor", "save", "bgsave",
                  "bgrewriteaof", "replicaof", "slaveof", "module", "script|flush", "script|kill", "client|kill",
                  "client|list", "migrate", "restore", "swapdb", "failover", "cluster", "function", "sync", "psync"}
KEYED_DANGER = {"del", "unlink", "rename", "renamenx", "copy", "move", "expire", "pexpire", "persist", "sort",
                "xdel", "xtrim", "xsetid", "xgroup|destroy", "xgroup|setid", "xack", "xclaim", "xautoclaim", "set",
                "restore", "object|encoding", "dump"}


# -- a small evaluator of Redis ACL rules ------------------------------------------------------------------


@dataclass
class Selector:
    keys: list[tuple[str, str]] = field(default_factory=list)  # (glob pattern, "R" / "W" / "RW")
    commands: set[str] = field(default_factory=set)  # lower-case; "cmd" or "cmd|sub"

    def allows(self, command: str, keys: list[str]) -> bool:
        if command not in self.commands and command.split("|")[0] not in self.commands:
            return False
        need = "R" if command in READ_ONLY else "RW"
        return all(any(fnmatchcase(key, pattern) and set(need) <= set(perms) for pattern, perms in self.keys)
                   for key in keys)


@dataclass
class User:
    name: str
    enabled: bool = False
    nopass: bool = False
    passwords: list[str] = field(default_factory=list)
    selectors: list[Selector] = field(default_factory=lambda: [Selector()])  # the root one first

    def allows(self, command: str, keys: list[str] | None = None) -> bool:
        return any(s.allows(command, keys or []) for s in self.selectors)

    def patterns(self) -> list[str]:
        return [p for s in self.selectors for p, _ in s.keys]


def _apply(selector: Selector, rule: str) -> None:
    if rule == "-@all":
        selector.commands.clear()
    elif rule == "resetkeys":
        selector.keys.clear()
    elif rule == "resetchannels":
        pass
    elif m := re.fullmatch(r"(%(R|W|RW))?~(.+)", rule):
        selector.keys.append((m.group(3), m.group(2) or "RW"))
    elif m := re.fullmatch(r"\+([a-z]+(\|[a-z]+)?)", rule):
        selector.commands.add(m.group(1))
    else:
        raise AssertionError(f"a rule this evaluator (and the policy) does not allow: {rule!r}")


def parse(text: str) -> dict[str, User]:
    users: dict[str, User] = {}
    for n, line in enumerate(text.splitlines(), 1):
        assert line.startswith("user "), f"users.acl:{n}: Redis allows only `user` lines (no comments, no blanks)"
        words = re.findall(r"\([^)]*\)|\S+", line)
        user = User(words[1])
        assert user.name not in users, f"{user.name} defined twice"
        for rule in words[2:]:
            if rule in ("on", "off"):
                user.enabled = rule == "on"
            elif rule == "nopass":
                user.nopass = True
            elif rule == "resetpass":
                user.passwords.clear()
            elif rule.startswith(("#", ">")):
                user.passwords.append(rule)
            elif rule.startswith("("):
                selector = Selector()
                for inner in rule[1:-1].split():
                    _apply(selector, inner)
                user.selectors.append(selector)
            else:
                _apply(user.selectors[0], rule)
        users[user.name] = user
    return users


def rendered_users(prefix: str = "newsflow") -> dict[str, User]:
    tool = acl_tool()
    passwords = {u: f"pw-{u}" for u in tool.users_needing_passwords(TEMPLATE)}
    return parse(tool.render(TEMPLATE, passwords, prefix))


def script_calls(lua: str) -> list[tuple[str, int]]:
    """(command, KEYS index) of every redis.call in a script; every call must name its key as KEYS[n]."""
    calls = re.findall(r"redis\.call\('(\w+)',\s*(?:'([A-Z]+)',\s*)?KEYS\[(\d+)\]", lua)
    assert len(calls) == lua.count("redis.call("), "a redis.call this test cannot read: name its key as KEYS[n]"
    return [((f"{cmd}|{sub}" if cmd in ("XGROUP", "XINFO") and sub else cmd).lower(), int(i)) for cmd, sub, i in calls]


def stage_keys(t: Topology, stage: str) -> dict[str, str]:
    return {"in": t.input_of(stage), "out": t.output_of(stage), "dlq": t.dlq, "errors": f"{t.prefix}:errors:{stage}"}


PREFIXES = ["newsflow", "nftest-a1b2", "{newsflow}"]


# -- the file itself ---------------------------------------------------------------------------------------


def test_one_line_per_user_default_off_and_placeholders_for_every_password():
    users = parse(TEMPLATE)
    assert set(users) == USERS
    default = users["default"]
    assert not default.enabled and not default.passwords and not default.nopass
    assert not any(s.commands or s.keys for s in default.selectors)
    healthcheck = users["healthcheck"]
    assert healthcheck.nopass and [s.commands for s in healthcheck.selectors] == [{"ping"}]
    assert not healthcheck.patterns(), "the password-less user must reach no key"
    for name, user in users.items():
        if name in ("default", "healthcheck"):
            continue
        assert user.enabled and not user.nopass
        assert user.passwords == [f"#{{{{{name}}}}}"], f"{name}: exactly its own placeholder, no literal password"
        for pattern in user.patterns():
            assert pattern.startswith("newsflow:") and pattern != "newsflow:*", f"{name}: {pattern} is too wide"
    assert acl_tool().users_needing_passwords(TEMPLATE) == [u for u in parse(TEMPLATE) if u not in ("default", "healthcheck")]


def test_nobody_administers_the_server_or_runs_keyed_danger_outside_its_own_keys():
    for name, user in rendered_users().items():
        for command in ADMIN_COMMANDS:
            assert not user.allows(command, []), f"{name} may run {command}"
        for key in ("newsflow:raw", "newsflow:cleaned", "newsflow:classified", "newsflow:enriched", "newsflow:fetch",
                    "other-app:data", "anything"):
            for command in KEYED_DANGER:
                allowed = user.allows(command, [key])
                own_input = command in ("xack", "xclaim", "xautoclaim", "xtrim") and (
                    (name in STAGES and key == Topology().input_of(name)) or (name == "webhook" and key == "newsflow:enriched"))
                storage_trim = name == "storage" and key == "newsflow:enriched" and command == "xtrim"
                assert not allowed or own_input or storage_trim, f"{name} may {command} {key}"


@pytest.mark.parametrize("prefix", PREFIXES)
def test_each_stage_covers_its_streams_and_writes_no_other(prefix):
    t = Topology(prefix)
    users = rendered_users(prefix)
    for stage in STAGES:
        user, k = users[stage], stage_keys(t, stage)
        for command in ("xreadgroup", "xack", "xautoclaim", "xclaim", "xpending", "xrange", "xinfo|groups",
                        "xinfo|consumers", "xgroup|create", "xtrim"):
            assert user.allows(command, [k["in"]]), f"{stage}: {command} {k['in']}"
        assert user.allows("hmget", [k["errors"]]) and user.allows("ping") and user.allows("script|load")
        # The commit script's keys, then every command the script runs on them, with the stage's own rights.
        commit = [k["in"], k["out"], k["dlq"], k["errors"]]
        assert user.allows("evalsha", commit), f"{stage}: the commit script's keys"
        calls = script_calls(COMMIT_LUA)
        assert {c for c, _ in calls} >= {"xpending", "xadd", "hset", "expire", "xack", "exists", "hdel", "incr"}
        for command, index in calls:
            key = (commit + [fence_key(prefix, stage, "host-42")])[index - 1]
            assert user.allows(command, [key]), f"{stage}: the commit script's {command} KEYS[{index}]"
        # The fenced commit: WATCH on the fences, XPENDING on the input, then MULTI, the XADDs, XACK, HDEL, INCR and
        # EXPIRE of its own fence, EXEC; every claim (the reclaim script, the heartbeat's MULTI) bumps the fence.
        fence, own = fence_key(prefix, stage), fence_key(prefix, stage, "host-42")
        for command in ("multi", "exec", "discard", "unwatch"):
            assert user.allows(command), f"{stage}: {command}"
        assert user.allows("watch", [fence, own]) and user.allows("incr", [own]) and user.allows("expire", [own])
        assert user.allows("hdel", [k["errors"]])
        assert user.allows("evalsha", commit + [own]), f"{stage}: the commit script's keys, with its own fence"
        assert ("incr", 5) in script_calls(COMMIT_LUA) and user.allows("incr", [own])
        assert user.allows("xpending", [k["in"]]), f"{stage}: the fenced commit's check"
        assert user.allows("evalsha", [k["in"], fence]), f"{stage}: the claim script's keys"
        assert ("incr", 2) in script_calls(CLAIM_LUA)
        for command, index in script_calls(CLAIM_LUA):
            assert user.allows(command, [[k["in"], fence][index - 1]]), f"{stage}: the claim script's {command}"
        for other in STAGES:
            if other != stage:
                for key in (fence_key(prefix, other), fence_key(prefix, other, "host-42")):
                    assert not user.allows("incr", [key]), f"{stage} bumps {other}'s fence"
        assert user.allows("evalsha", [k["in"]])
        for command, index in script_calls(PURGE_LUA):
            assert user.allows(command, [[k["in"]][index - 1]]), f"{stage}: the purge script's {command}"
        # The /metrics gauges: lengths of input, output and DLQ; the groups of input and output.
        for stream in (k["in"], k["out"], k["dlq"]):
            assert user.allows("xlen", [stream])
        assert user.allows("xinfo|groups", [k["in"]]) and user.allows("xinfo|groups", [k["out"]])
        # Writes: its output and the DLQ, and (the fetcher's scheduler) the fetch stream; no other stream.
        mine = {k["out"], t.dlq} | ({t.fetch} if stage == "fetcher" else set())
        for stream in t.all_streams():
            assert user.allows("xadd", [stream]) == (stream in mine), f"{stage}: XADD {stream}"
            if stream != k["in"]:
                assert not user.allows("xreadgroup", [stream]), f"{stage} reads {stream} in a group"
                assert not user.allows("xack", [stream]) and not user.allows("xgroup|create", [stream])
        for other in STAGES:
            if other != stage:
                assert not user.allows("hset", [f"{prefix}:errors:{other}"]), f"{stage} writes {other}'s error notes"
    storage = users["storage"]
    for command in ("xinfo|groups", "xpending", "xtrim"):
        assert storage.allows(command, [t.enriched]), f"storage trims enriched for downstream groups: {command}"


@pytest.mark.parametrize("prefix", PREFIXES)
def test_the_webhook_worker_reads_enriched_in_its_group_and_writes_only_the_dlq(prefix):
    t = Topology(prefix)
    users = rendered_users(prefix)
    webhook = users["webhook"]
    errors = f"{prefix}:errors:webhook"
    for command in ("xreadgroup", "xack", "xautoclaim", "xclaim", "xpending", "xrange", "xinfo|groups",
                    "xinfo|consumers", "xgroup|create", "xgroup|delconsumer", "xtrim"):
        assert webhook.allows(command, [t.enriched]), f"webhook: {command} {t.enriched}"
    assert webhook.allows("hmget", [errors]) and webhook.allows("ping") and webhook.allows("script|load")
    # The commit script with no output stream: the DLQ stands in as KEYS[2] (shared/transport/runner.py).
    commit = [t.enriched, t.dlq, t.dlq, errors, fence_key(prefix, "webhook", "host-42")]
    assert webhook.allows("evalsha", commit)
    for command, index in script_calls(COMMIT_LUA):
        assert webhook.allows(command, [commit[index - 1]]), f"webhook: the commit script's {command} KEYS[{index}]"
    for command, index in script_calls(PURGE_LUA):
        assert webhook.allows(command, [[t.enriched][index - 1]]), f"webhook: the purge script's {command}"
    for stream in (t.enriched, t.dlq):
        assert webhook.allows("xlen", [stream]) and webhook.allows("xinfo|groups", [stream])
    for stream in t.all_streams():
        assert webhook.allows("xadd", [stream]) == (stream == t.dlq), f"webhook: XADD {stream}"
        if stream != t.enriched:
            assert not webhook.allows("xreadgroup", [stream]) and not webhook.allows("xack", [stream])
    for stage in STAGES:
        assert not webhook.allows("hset", [f"{prefix}:errors:{stage}"])
        assert not users[stage].allows("hset", [errors])
    assert not webhook.allows("xdel", [t.enriched]) and not webhook.allows("del", [t.enriched])


def gcra_calls() -> list[str]:
    """The commands of the rate-limit script: TIME (no key), then GET and SET of KEYS[1]."""
    calls = [c.lower() for c in re.findall(r"redis\.call\('(\w+)'", GCRA_LUA)]
    assert len(calls) == GCRA_LUA.count("redis.call(")
    assert set(calls) == {"time", "get", "set"}, calls
    return calls


@pytest.mark.parametrize("prefix", PREFIXES)
def test_the_gateway_and_the_api_each_keep_their_own_rate_limit_buckets(prefix):
    from shared.ratelimit import RateLimiter

    users = rendered_users(prefix)
    for surface in ("gateway", "api"):
        key = RateLimiter(None, prefix, surface, 10, 5).key("t-0123abcd")
        user = users[surface]
        assert user.allows("script|load") and user.allows("evalsha", [key]), f"{surface}: its limiter script"
        for command in gcra_calls():
            assert user.allows(command, [] if command == "time" else [key]), f"{surface}: {command} in the limiter script"
        other = "api" if surface == "gateway" else "gateway"
        assert not users[other].allows("set", [key]) and not users[other].allows("evalsha", [key]), f"{other} touches {key}"
        for name, u in users.items():
            if name != surface:
                assert not u.allows("get", [key]) and not u.allows("set", [key]), f"{name} touches {key}"
        assert not user.allows("set", [f"{prefix}:raw"]) and not user.allows("get", [f"{prefix}:dedup:exact:x"])


@pytest.mark.parametrize("prefix", PREFIXES)
def test_the_keys_the_stages_build_belong_to_them_alone(prefix):
    from services.cleaner.dedup import ExactDuplicateIndex
    from services.cleaner.neardup import NearDuplicateIndex
    from services.fetcher.http import PoliteFetcher
    from services.fetcher.scheduler import state_key
    from services.fetcher.urls import SeenUrls, url_key

    users = rendered_users(prefix)
    near = NearDuplicateIndex(None, prefix)  # type: ignore[arg-type]
    cleaner_keys = {
        ExactDuplicateIndex(None, prefix).key("abc"): ("set", "get"),  # type: ignore[arg-type]
        # evalsha: the near-duplicate index script (INDEX_LUA) runs SET, SADD, EXPIRE, GET and SMEMBERS on both.
        near.band_key(3, "abc"): ("sadd", "expire", "smembers", "srem", "evalsha"),
        near.doc_key("art-1"): ("set", "get", "mget", "evalsha"),
        near.seq_key: ("incrby", "expire"),
    }
    url = "https://example.org/a"
    fetcher_keys = {
        SeenUrls(None, prefix, 60).key(url): ("set", "get", "del", "exists"),  # type: ignore[arg-type]
        f"{prefix}:queued:url:{url_key(url)}": ("set",),
        f"{prefix}:seen:file:abc": ("exists", "set"),
        PoliteFetcher.validators_key(SimpleNamespace(prefix=prefix), url): ("hgetall", "hset", "del", "expire"),  # type: ignore[arg-type]
        state_key(prefix, "my-feed"): ("hset", "hget", "hincrby"),
        f"{prefix}:lock:source:my-feed": ("set", "get", "del", "eval"),
    }
    for owner, keys in (("cleaner", cleaner_keys), ("fetcher", fetcher_keys)):
        for key, commands in keys.items():
            for command in commands:
                assert users[owner].allows(command, [key]), f"{owner}: {command} {key}"
            for name, user in users.items():
                if name != owner:
                    assert not user.allows("get", [key]) and not user.allows("set", [key]), f"{name} touches {key}"
    # ops reads the source states for `newsflow status`, and may not change them.
    assert users["ops"].allows("hgetall", [state_key(prefix, "my-feed")]) and not users["ops"].allows("hset", [state_key(prefix, "my-feed")])


def test_every_key_namespace_in_the_code_has_an_owner():
    """A new `f"{prefix}:something:..."` key in services/ or shared/ fails here until users.acl covers it."""
    found: set[str] = set()
    for path in [*(ROOT / "services").rglob("*.py"), *(ROOT / "shared").rglob("*.py")]:
        found |= set(re.findall(r"f\"\{[a-z_.]*prefix\}:([a-z_]+(?::[a-z_]+)*:?)", path.read_text()))
    assert "dedup:exact:" in found and "lock:source:" in found, found
    users = rendered_users()
    for namespace in sorted(found):
        if namespace in ("errors:", "fence:"):  # {prefix}:errors:{stage} and {prefix}:fence:{stage}, one per stage
            keys = [f"newsflow:{namespace}{stage}" for stage in (*STAGES, "webhook")]
        elif namespace == "ratelimit:":  # {prefix}:ratelimit:{surface}:{caller}, one surface per HTTP service
            keys = ["newsflow:ratelimit:gateway:t-x", "newsflow:ratelimit:api:t-x"]
        else:
            keys = [f"newsflow:{namespace}x" if namespace.endswith(":") else f"newsflow:{namespace}"]
        for key in keys:
            assert any(fnmatchcase(key, p) for u in users.values() for p in u.patterns()), f"nobody may use {key}"


def test_gateway_api_ops_and_keda_do_their_part_only():
    t = Topology()
    users = rendered_users()
    gateway, api, ops, keda = (users[u] for u in ("gateway", "api", "ops", "keda"))
    for stream in t.all_streams():
        assert gateway.allows("xadd", [stream]) == (stream in (t.raw, t.fetch)), stream
        assert not gateway.allows("xrange", [stream]) and not gateway.allows("xlen", [stream])
        # The API reads enriched, writes nothing; KEDA reads the stage inputs' groups, writes nothing.
        for command in ("xread", "xrange", "xrevrange", "xlen"):
            assert api.allows(command, [stream]) == (stream == t.enriched), f"api: {command} {stream}"
        for command in ("xadd", "xack", "xgroup|create", "xtrim", "del", "xdel"):
            assert not api.allows(command, [stream]) and not keda.allows(command, [stream])
        # ops: `newsflow status` on every stream, `dlq replay` to the stage inputs only.
        for command in ("xlen", "xinfo|groups", "xpending"):
            assert ops.allows(command, [stream]), f"ops: {command} {stream}"
        assert ops.allows("xadd", [stream]) == (stream in {t.input_of(s) for s in STAGES}), f"ops: XADD {stream}"
    assert gateway.allows("multi") and gateway.allows("exec") and api.allows("ping")
    for command in ("xrange", "xrevrange", "xdel", "del", "xlen"):
        assert ops.allows(command, [t.dlq]), f"ops: {command} on the DLQ"
    assert ops.allows("scan") and ops.allows("multi") and ops.allows("exec")
    assert not ops.allows("del", [t.raw]) and not ops.allows("xdel", [t.enriched])
    for stage in STAGES:
        assert keda.allows("xinfo|groups", [t.input_of(stage)])
    assert not keda.allows("xinfo|groups", [t.enriched]) and not keda.allows("xrange", [t.raw])


# -- rendering ---------------------------------------------------------------------------------------------


def test_render_hashes_every_password_and_moves_the_prefix():
    tool = acl_tool()
    passwords = {u: f"secret-{u}-Ωx" for u in tool.users_needing_passwords(TEMPLATE)}
    out = tool.render(TEMPLATE, passwords, prefix="nftest-x")
    assert "{{" not in out and "newsflow:" not in out
    for user, password in passwords.items():
        assert password not in out
        assert f"user {user} on #{hashlib.sha256(password.encode()).hexdigest()} " in out
    assert "~nftest-x:raw" in out and "%R~nftest-x:enriched" in out
    assert len(out.splitlines()) == len(TEMPLATE.splitlines())
    assert tool.render(TEMPLATE, passwords, prefix="a*b").count("~a\\*b:") > 10, "glob characters are escaped"
    with pytest.raises(ValueError, match="cleaner"):
        tool.render(TEMPLATE, {u: p for u, p in passwords.items() if u != "cleaner"})
    with pytest.raises(ValueError, match="storage"):
        tool.render(TEMPLATE, {**passwords, "storage": ""})


def test_setuser_commands_reset_each_user_quote_selectors_and_end_with_default():
    tool = acl_tool()
    out = tool.setuser_commands(tool.render(TEMPLATE, {u: "pw" for u in tool.users_needing_passwords(TEMPLATE)}))
    lines = out.splitlines()
    assert len(lines) == len(USERS) and lines[-1].startswith("ACL SETUSER default reset off")
    for line in lines:
        assert re.match(r"ACL SETUSER \S+ reset ", line)
        assert "(" not in line.replace('"(', ""), f"an unquoted selector: {line}"
    assert '"(~newsflow:cleaned ~newsflow:dlq +xadd)"' in out


def test_the_cli_makes_private_password_files_once_and_renders_from_them(tmp_path, capsys):
    tool = acl_tool()
    folder = tmp_path / "secrets"
    assert tool.main(["passwords", str(folder)]) == 0
    users = tool.users_needing_passwords(TEMPLATE)
    assert sorted(p.name for p in folder.iterdir()) == sorted(users)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    first = (folder / "cleaner").read_text()
    assert len(first.strip()) >= 32
    (folder / "ops").write_text("chosen-by-hand\n")
    assert tool.main(["passwords", str(folder)]) == 0
    assert (folder / "cleaner").read_text() == first and (folder / "ops").read_text() == "chosen-by-hand\n"
    capsys.readouterr()
    assert tool.main(["render", str(folder)]) == 0
    out = capsys.readouterr().out
    assert f"user ops on #{hashlib.sha256(b'chosen-by-hand').hexdigest()} " in out
    (folder / "keda").unlink()
    assert tool.main(["render", str(folder)]) == 2
    assert "keda" in capsys.readouterr().err


# -- the deployment files name the users --------------------------------------------------------------------


def test_compose_gives_each_service_its_own_user_and_secret():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    users = parse(TEMPLATE)
    assert "/run/secrets/redis-acl" in compose["services"]["redis"]["command"]
    assert "redis-acl" in compose["services"]["redis"]["secrets"]
    for name in (*STAGES, "webhook", "gateway", "api"):
        svc = compose["services"].get(name)
        if svc is None:
            continue
        env = svc["environment"]
        assert env["NEWSFLOW_REDIS_USERNAME"] == name and name in users
        assert "NEWSFLOW_REDIS_PASSWORD" not in env, "passwords come from secret files, never literally"
        (secret,) = svc["secrets"]
        assert env["NEWSFLOW_REDIS_PASSWORD_FILE"] == f"/run/secrets/{secret}"
        assert compose["secrets"][secret]["file"] == f"deploy/redis/secrets/{name}"


def test_kubernetes_mounts_only_each_stage_s_own_password():
    docs = [d for p in sorted((ROOT / "deploy" / "k8s").glob("*.yaml")) for d in yaml.safe_load_all(p.read_text()) if d]
    secret = next(d for d in docs if d["kind"] == "Secret" and d["metadata"]["name"] == "newsflow-redis-users")
    users = parse(TEMPLATE)
    for dep in (d for d in docs if d["kind"] == "Deployment"):
        stage = dep["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"]
        pod = dep["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert env["NEWSFLOW_REDIS_USERNAME"] == stage and stage in users
        assert "NEWSFLOW_REDIS_PASSWORD" not in env
        path = Path(env["NEWSFLOW_REDIS_PASSWORD_FILE"])
        mount = next(m for m in container["volumeMounts"] if m["mountPath"] == str(path.parent))
        volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
        (source,) = volume["projected"]["sources"]
        assert source["secret"]["name"] == "newsflow-redis-users"
        assert source["secret"]["items"] == [{"key": stage, "path": path.name}], "this stage's key only"
        assert stage in secret["stringData"]


# -- connecting as the user --------------------------------------------------------------------------------


def test_the_configured_user_replaces_the_one_in_redis_url(tmp_path, monkeypatch):
    from shared.settings import Settings
    from shared.transport.app import with_credentials

    for var in ("NEWSFLOW_REDIS_USERNAME", "NEWSFLOW_REDIS_PASSWORD", "NEWSFLOW_REDIS_PASSWORD_FILE"):
        monkeypatch.delenv(var, raising=False)
    assert Settings().redis_credentials() == {}
    assert with_credentials("redis://healthcheck:x@redis:6379/0", {}) == ("redis://healthcheck:x@redis:6379/0", {})
    creds = {"username": "cleaner", "password": "p@ss:word"}
    assert with_credentials("redis://healthcheck:x@redis:6379/0", creds) == ("redis://redis:6379/0", creds)
    assert with_credentials("redis://healthcheck@redis:6379/0", creds)[0] == "redis://redis:6379/0"
    assert with_credentials("unix:///var/run/redis.sock", creds) == ("unix:///var/run/redis.sock", creds)

    secret = tmp_path / "cleaner"
    secret.write_text("from-a-file\n")
    monkeypatch.setenv("NEWSFLOW_REDIS_USERNAME", "cleaner")
    monkeypatch.setenv("NEWSFLOW_REDIS_PASSWORD_FILE", str(secret))
    settings = Settings()
    assert settings.redis_credentials() == {"username": "cleaner", "password": "from-a-file"}
    assert "from-a-file" not in repr(settings) and "from-a-file" in settings.secret_values()
    monkeypatch.delenv("NEWSFLOW_REDIS_USERNAME")
    assert Settings().redis_credentials() == {"password": "from-a-file"}, "a password alone: the default user's"
