"""The deployment files, checked statically (no Docker engine or cluster here): deploy/Dockerfile,
.dockerignore, docker-compose.yml, .env.example, deploy/constraints.txt and deploy/k8s/.

Everything is checked against the code it deploys: commands parse with the real CLI parser, environment
variables are real settings, KEDA triggers name the real streams and groups, grace periods outlast the
workers' shutdown timeout. docker-compose.yml is also validated against the official compose-spec JSON
Schema (the copy vendored by check-jsonschema) and the built-in Kubernetes kinds against the Kubernetes
OpenAPI schemas (kubernetes-validate, offline); those two tests skip when the packages are missing.
KEDA's CRDs (ScaledObject, TriggerAuthentication) have no offline schema: they get structural checks.
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import tomllib
from importlib import metadata
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from pydantic import AliasChoices, AliasPath, TypeAdapter

from services.cli import build_parser
from shared.settings import Settings, secret_file_vars
from shared.topology import STAGES, Topology

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
CONSTRAINTS = ROOT / "deploy" / "constraints.txt"
COMPOSE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
DOCKERIGNORE = ROOT / ".dockerignore"
K8S = ROOT / "deploy" / "k8s"

# Variables of the postgres image, not newsflow settings, allowed in compose and .env.example.
POSTGRES_IMAGE_VARS = {"POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB", "POSTGRES_INITDB_ARGS", "PGDATA"}
# The monitoring profile: Grafana's own variables (GF_<section>_<key>, its configuration) in its service, and the
# one .env variable compose fills its admin password from.
GRAFANA_VAR_PREFIX = "GF_"
MONITORING_ENV_VARS = {"GRAFANA_ADMIN_PASSWORD"}
MONITORING = ("prometheus", "grafana")
# Variables the Dockerfile may set for Python and pip themselves.
RUNTIME_VARS_PREFIXES = ("PYTHON", "PIP_")
DEPENDS_ON_CONDITIONS = {"service_started", "service_healthy", "service_completed_successfully"}
DEFAULT_SHUTDOWN_S = Settings.model_fields["shutdown_timeout_s"].default
DNS_PORTS = {(53, "UDP"), (53, "TCP")}
GATEWAY = "gateway"  # the HTTP push gateway: deployed like a stage, but no stream consumer
API = "api"  # the read-only HTTP query API: deployed like the gateway
HTTP_SERVICES = (GATEWAY, API)
DEPLOYED = (*STAGES, GATEWAY, API)
# Webhook delivery: a stage worker on enriched, in compose under its own profile only (no Kubernetes manifest yet:
# its egress goes to receivers that only the operators know, which the NetworkPolicy would have to name).
WEBHOOK = "webhook"


def gateway_routes() -> set[str]:
    """The paths the gateway's FastAPI app really serves."""
    import redis.asyncio as aredis

    from services.gateway.app import create_app

    app = create_app(Settings(gateway_allow_anonymous=True, gateway_tokens=""), aredis.Redis())
    return {route.path for route in app.routes}


def http_routes(service: str) -> set[str]:
    """The paths the gateway's or the query API's FastAPI app really serves."""
    if service == GATEWAY:
        return gateway_routes()
    import redis.asyncio as aredis

    from services.api.app import create_app
    from services.api.database import Database

    app = create_app(Settings(api_public=True, api_tokens=""), aredis.Redis(), Database.open("sqlite:///:memory:"))
    return {route.path for route in app.routes}


class _StubHealth:
    """What the probe server asks a worker's event loop, answered without Redis."""

    stage = "test-deploy"

    class metrics:  # noqa: N801 - stands in for StageMetrics
        class ready:  # noqa: N801
            @staticmethod
            def set(value: float) -> None: ...

    async def alive(self) -> dict[str, Any]:
        return {"status": "ok"}

    async def readiness(self) -> tuple[bool, dict[str, Any]]:
        return True, {"status": "ready"}

    async def before_scrape(self) -> None: ...


@pytest.fixture(scope="module")
def worker_paths() -> Any:
    """Asks a real stage worker's probe server (shared/transport/health.py), on a free loopback port, whether it
    serves a path: `worker_paths(path)` is True unless it answers 404."""
    import asyncio
    import threading
    import urllib.error
    import urllib.request

    from shared.transport.health import ProbeServer

    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    server = ProbeServer(_StubHealth(), loop)  # type: ignore[arg-type]
    assert server.start("127.0.0.1", 0)

    def serves(path: str) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{server.port}{path}", timeout=10):
                return True
        except urllib.error.HTTPError as exc:
            return exc.code != 404

    assert not serves("/no-such-path"), "the probe server must answer 404 for unknown paths"
    yield serves
    server.stop()
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)
    loop.close()


# -- helpers ---------------------------------------------------------------------------------------------


def setting_env_names() -> dict[str, str]:
    """Every environment variable Settings reads -> its field name."""
    prefix = Settings.model_config.get("env_prefix", "")
    names: dict[str, str] = {}
    for field_name, field in Settings.model_fields.items():
        alias = field.validation_alias
        if alias is None:
            names[f"{prefix}{field_name}".upper()] = field_name
        elif isinstance(alias, str):
            names[alias.upper()] = field_name
        elif isinstance(alias, AliasChoices):
            for choice in alias.choices:
                if isinstance(choice, str):
                    names[choice.upper()] = field_name
                elif isinstance(choice, AliasPath) and len(choice.path) == 1:
                    names[str(choice.path[0]).upper()] = field_name
    return names


KNOWN = setting_env_names()
# X_FILE variables of the secret settings (REDIS_URL_FILE, ...): a file holding X's value (shared/settings.py).
SECRET_FILES = {var for _plain, files in secret_file_vars().values() for var in files}


def cli_args(argv: list[str]) -> argparse.Namespace:
    try:
        return build_parser().parse_args([str(a) for a in argv])
    except SystemExit:
        pytest.fail(f"not a valid `newsflow` command line: {argv!r}")


def settings_from(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Settings as a process with exactly these variables (and none of ours from this machine) sees them."""
    for name in (*KNOWN, *SECRET_FILES):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, str(value))
    return Settings()


def assert_env_took_effect(settings: Settings, env: dict[str, str]) -> None:
    for name, value in env.items():
        field = KNOWN[name]
        annotation = Settings.model_fields[field].annotation
        assert getattr(settings, field) == TypeAdapter(annotation).validate_python(value), name


def duration_s(value: str | int | float) -> float:
    """A compose duration (`30s`, `1m30s`, `1h`, `500ms`) in seconds."""
    if isinstance(value, (int, float)):
        return float(value)
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001, "us": 1e-6}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|us|h|m|s)", value)
    assert parts and "".join(n + u for n, u in parts) == value, f"bad duration {value!r}"
    return sum(float(n) * units[u] for n, u in parts)


def env_mapping(environment: Any) -> dict[str, str | None]:
    if environment is None:
        return {}
    if isinstance(environment, dict):
        return {k: (None if v is None else str(v)) for k, v in environment.items()}
    out: dict[str, str | None] = {}
    for item in environment:
        key, sep, value = str(item).partition("=")
        out[key] = value if sep else None
    return out


def interpolate(value: str, env: dict[str, str] | None = None) -> str:
    """Compose's ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?err}, ${VAR?err}, with .env.example's values."""
    env = dotenv(ENV_EXAMPLE)[0] if env is None else env

    def one(m: re.Match[str]) -> str:
        name, op, arg = m.group(1), m.group(2) or "", m.group(3) or ""
        if op == ":-":
            return env.get(name) or arg
        if op == "-":
            return env.get(name, arg)
        if op in (":?", "?"):
            assert name in env and (env[name] or op == "?"), f"${{{name}}} is required: {arg}"
        return env.get(name, "")

    out = re.sub(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}", one, value)
    return out.replace("$$", "$")


def dotenv(path: Path) -> tuple[dict[str, str], dict[str, str]]:
    """(active assignments, commented-out `# NAME=value` examples)."""
    active: dict[str, str] = {}
    commented: dict[str, str] = {}
    for line in path.read_text().splitlines():
        if m := re.fullmatch(r"([A-Za-z_][A-Za-z0-9_]*)=(.*)", line.strip()):
            assert m.group(1) not in active, f"{m.group(1)} set twice in {path.name}"
            active[m.group(1)] = m.group(2)
        elif m := re.fullmatch(r"#\s*([A-Z_][A-Z0-9_]*)=(.*)", line.strip()):
            commented[m.group(1)] = m.group(2)
    return active, commented


# -- Dockerfile ------------------------------------------------------------------------------------------


def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined and comments dropped."""
    out: list[tuple[str, str]] = []
    buf = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue  # comments and blank lines, also inside a continuation
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        buf += line
        instr, _, args = buf.strip().partition(" ")
        out.append((instr.upper(), args.strip()))
        buf = ""
    assert not buf, "Dockerfile ends inside a line continuation"
    return out


def dockerfile_stages() -> tuple[dict[str, str], list[dict[str, Any]]]:
    """Global ARG defaults, and per stage: base, name, instructions."""
    global_args: dict[str, str] = {}
    stages: list[dict[str, Any]] = []
    for instr, args in dockerfile_instructions(DOCKERFILE.read_text()):
        if instr == "FROM":
            words = args.split()
            base = re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: global_args.get(m.group(1) or m.group(2), m.group(0)), words[0])
            name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else None
            stages.append({"base": base, "name": name, "instructions": []})
        elif not stages:
            assert instr == "ARG", f"only ARG may precede the first FROM, not {instr}"
            key, _, default = args.partition("=")
            global_args[key] = default
        else:
            stages[-1]["instructions"].append((instr, args))
    return global_args, stages


def final_stage() -> dict[str, Any]:
    return dockerfile_stages()[1][-1]


def stage_values(stage: dict[str, Any], instr: str) -> list[str]:
    return [args for i, args in stage["instructions"] if i == instr]


def healthcheck_cmd() -> list[str]:
    checks = stage_values(final_stage(), "HEALTHCHECK")
    assert len(checks) == 1, "the runtime stage needs exactly one HEALTHCHECK"
    m = re.search(r"\bCMD\s+(\[.*\])\s*$", checks[0])
    assert m, f"HEALTHCHECK must use the exec form CMD [...]: {checks[0]}"
    return json.loads(m.group(1))


def key_values(args: str) -> dict[str, str]:
    return dict(word.split("=", 1) for word in shlex.split(args))


def test_dockerfile_is_multi_stage_with_a_wheel_builder_and_a_slim_runtime():
    global_args, stages = dockerfile_stages()
    assert len(stages) >= 2
    names = [s["name"] for s in stages]
    assert "builder" in names
    builder = stages[names.index("builder")]
    runs = " ".join(stage_values(builder, "RUN"))
    assert "pip wheel" in runs and "constraints.txt" in runs
    final = stages[-1]
    assert final["base"] == "python:3.11-slim", final["base"]
    install = " ".join(stage_values(final, "RUN"))
    assert "pip install" in install and "--no-index" in install
    assert re.search(r"(--constraint|-c)\s+\S*constraints\.txt", install), "runtime must install with the constraints file"
    assert "pip wheel" not in install and "gcc" not in install, "the runtime stage only installs prebuilt wheels"


def test_dockerfile_entrypoint_cmd_user_env_labels():
    final = final_stage()
    (entrypoint,) = stage_values(final, "ENTRYPOINT")
    assert json.loads(entrypoint) == ["newsflow"]
    (cmd,) = stage_values(final, "CMD")
    args = cli_args(json.loads(cmd))
    assert (args.command, args.stage) == ("worker", "cleaner")

    users = stage_values(final, "USER")
    assert users, "the runtime stage must switch to a non-root USER"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0") and user.isdigit(), "USER must be a numeric non-root uid (runAsNonRoot checks it)"
    assert user == "10001"
    runs = " ".join(stage_values(final, "RUN"))
    assert "--uid 10001" in runs and "newsflow" in runs

    env: dict[str, str] = {}
    for args in stage_values(final, "ENV"):
        env.update(key_values(args))
    assert env["PYTHONUNBUFFERED"] == "1"
    assert env["LOG_FORMAT"] == "json"
    assert env["NEWSFLOW_DATA_DIR"] == "/data"
    for name in env:
        assert name in KNOWN or name.startswith(RUNTIME_VARS_PREFIXES), f"ENV {name} is not a newsflow setting"

    labels: dict[str, str] = {}
    for args in stage_values(final, "LABEL"):
        labels.update(key_values(args))
    for key in ("title", "source", "licenses", "description"):
        assert labels.get(f"org.opencontainers.image.{key}"), f"missing OCI label {key}"
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert labels["org.opencontainers.image.licenses"] == pyproject["project"]["license"]["text"]


def test_dockerfile_healthcheck_asks_the_worker_healthz_on_the_metrics_port(worker_paths):
    cmd = healthcheck_cmd()
    assert cmd[:2] == ["python", "-c"]
    compile(cmd[2], "<healthcheck>", "exec")
    assert "NEWSFLOW_METRICS_PORT" in cmd[2]
    assert f"'{Settings.model_fields['metrics_port'].default}'" in cmd[2], "the fallback port must be the setting's default"
    assert "/healthz" in cmd[2] and worker_paths("/healthz")


def test_newsflow_is_the_console_script():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert pyproject["project"]["scripts"]["newsflow"] == "services.cli:main"
    assert build_parser().prog == "newsflow"


def test_dockerfile_copies_exist_and_are_not_dockerignored():
    ignore = DockerIgnore(DOCKERIGNORE)
    for stage in dockerfile_stages()[1]:
        for args in stage_values(stage, "COPY"):
            words = [w for w in args.split() if not w.startswith("--")]
            for src in words[:-1]:
                if any(c in src for c in "*?["):
                    continue  # optional globs such as README.m[d]
                assert (ROOT / src).exists(), f"COPY {src}: no such file in the build context"
                assert not ignore.ignored(src), f"COPY {src}: excluded by .dockerignore"


# -- .dockerignore ---------------------------------------------------------------------------------------


class DockerIgnore:
    """Docker's .dockerignore rules, closely enough: globs (`**` any depth), `!` exceptions, last match wins,
    and a match on a directory excludes everything under it."""

    def __init__(self, path: Path) -> None:
        self.rules: list[tuple[bool, re.Pattern[str]]] = []
        for line in path.read_text().splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            negate = line.startswith("!")
            pattern = line[1:] if negate else line
            self.rules.append((negate, re.compile(self._regex(pattern.strip("/")))))

    @staticmethod
    def _regex(pattern: str) -> str:
        out, i = "", 0
        while i < len(pattern):
            if pattern.startswith("**/", i):
                out, i = out + "(?:.*/)?", i + 3
            elif pattern.startswith("**", i):
                out, i = out + ".*", i + 2
            elif pattern[i] == "*":
                out, i = out + "[^/]*", i + 1
            elif pattern[i] == "?":
                out, i = out + "[^/]", i + 1
            elif pattern[i] == "[":
                j = pattern.index("]", i)
                out, i = out + pattern[i : j + 1], j + 1
            else:
                out, i = out + re.escape(pattern[i]), i + 1
        return out + "$"

    def ignored(self, path: str) -> bool:
        parts = path.strip("/").split("/")
        candidates = ["/".join(parts[: n + 1]) for n in range(len(parts))]
        result = False
        for negate, rx in self.rules:
            if any(rx.match(c) for c in candidates):
                result = not negate
        return result


def test_dockerignore_keeps_secrets_caches_and_data_out():
    ignore = DockerIgnore(DOCKERIGNORE)
    for path in (".git", ".git/config", ".venv", ".venv/bin/python", ".env", ".env.production",
                 "services/__pycache__/cli.cpython-311.pyc", ".pytest_cache", "newsflow.db", "dump.rdb",
                 "tests/unit/test_deploy.py", "bench/results.json", "newsflow.egg-info/PKG-INFO"):
        assert ignore.ignored(path), f"{path} would be sent to the docker build"
    for path in ("pyproject.toml", "README.md", "services/cli.py", "shared/settings.py",
                 "services/storage/migrations/postgres/0001_articles.sql", "deploy/constraints.txt", ".env.example"):
        assert not ignore.ignored(path), f"{path} is needed by the build but .dockerignore drops it"


# -- constraints -----------------------------------------------------------------------------------------


def constraint_pins() -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in CONSTRAINTS.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        m = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([A-Za-z0-9.+!_-]+)", line)
        assert m, f"constraints.txt: not an exact pin: {line!r}"
        name = canonicalize_name(m.group(1))
        assert name not in pins, f"{name} pinned twice"
        pins[name] = m.group(2)
    return pins


def runtime_requirements() -> list[Requirement]:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return [Requirement(r) for r in pyproject["project"]["dependencies"]]


def test_constraints_pin_every_runtime_dependency_within_its_range():
    pins = constraint_pins()
    for req in runtime_requirements():
        name = canonicalize_name(req.name)
        assert name in pins, f"{req.name} (a runtime dependency) is not pinned in deploy/constraints.txt"
        assert req.specifier.contains(pins[name], prereleases=True), f"{name}=={pins[name]} is outside {req}"
    assert "newsflow" not in pins, "the project itself must not be in its constraints"
    for test_only in ("pytest", "pytest-asyncio", "pytest-timeout"):
        assert test_only not in pins, f"{test_only} is a test tool, not a runtime dependency"


def test_constraints_are_closed_under_the_dependencies_installed_here():
    """Where this environment has a pinned package at its pinned version, its own runtime requirements
    must be pinned too (a missing transitive pin means the image resolves it freshly at build time)."""
    pins = constraint_pins()
    todo = [(req, set(req.extras)) for req in runtime_requirements()]
    seen: set[tuple[str, frozenset[str]]] = set()
    while todo:
        req, extras = todo.pop()
        name = canonicalize_name(req.name)
        if (name, frozenset(extras)) in seen:
            continue
        seen.add((name, frozenset(extras)))
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        if dist.version != pins.get(name):
            continue  # another version here: its requirements may differ from the pinned one's
        for spec in dist.requires or []:
            sub = Requirement(spec)
            envs = [{"extra": e} for e in (extras or {""})]
            if sub.marker is not None and not any(sub.marker.evaluate({**e, "python_version": "3.11", "sys_platform": "linux", "platform_system": "Linux"}) for e in envs):
                continue
            assert canonicalize_name(sub.name) in pins, f"{sub.name} (needed by {name}) is not pinned"
            todo.append((sub, set(sub.extras)))


# -- the hash lock and the CI audit -----------------------------------------------------------------------

LOCK = ROOT / "deploy" / "requirements.lock"
CI_RUN = ROOT / ".ci" / "run"


def lock_entries() -> dict[str, tuple[str, list[str]]]:
    """name -> (version, sha256 hashes) of deploy/requirements.lock (continuation lines joined)."""
    text = re.sub(r"\\\n", " ", "\n".join(line for line in LOCK.read_text().splitlines() if not line.lstrip().startswith("#")))
    out: dict[str, tuple[str, list[str]]] = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        m = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)((?:\s+--hash=sha256:[0-9a-f]{64})+)\s*", line)
        assert m, f"requirements.lock: not a hashed exact pin: {line[:120]!r}"
        name = canonicalize_name(m.group(1))
        assert name not in out, f"{name} locked twice"
        out[name] = (m.group(2), re.findall(r"sha256:([0-9a-f]{64})", m.group(3)))
    return out


def test_lock_has_exactly_the_constraints_pins_each_with_hashes():
    locked, pins = lock_entries(), constraint_pins()
    versions = {name: version for name, (version, _) in locked.items()}
    assert versions == pins, ("deploy/requirements.lock is out of date with deploy/constraints.txt; regenerate it "
                              f"(see its header). Only in the lock: {sorted(set(versions) - set(pins))}, only in the "
                              f"constraints: {sorted(set(pins) - set(versions))}, differing: "
                              f"{sorted(n for n in set(pins) & set(versions) if pins[n] != versions[n])}")
    for name, (_, hashes) in locked.items():
        assert hashes, f"{name} has no hash"


def test_dockerfile_downloads_dependencies_hash_checked():
    builder = next(s for s in dockerfile_stages()[1] if s["name"] == "builder")
    runs = stage_values(builder, "RUN")
    assert any(re.search(r"pip wheel\b.*--require-hashes.*-r\s+deploy/requirements\.lock", r) for r in runs), runs
    assert any("deploy/requirements.lock" in c for c in stage_values(builder, "COPY"))
    # Nothing else in the builder fetches from an index: every other pip call is --no-index or --no-deps
    # without build isolation (so no build dependencies are fetched unchecked either).
    for run in runs:
        for call in re.split(r"&&", run):
            if "--require-hashes" in call or "pip " not in call:
                continue
            assert "--no-index" in call or ("--no-deps" in call and "--no-build-isolation" in call), call


def test_ci_runs_the_readme_test_command_and_audits_the_lock():
    text = CI_RUN.read_text()
    assert "pip install -q '.[test]' && python -m pytest" in text
    assert re.search(r'"\$rc" -eq 5', text), "pytest's exit code 5 (no tests) must fail CI"
    assert "pip-audit" in text and "--requirement deploy/requirements.lock" in text
    assert text.index("audit_pins ||") < text.index("python -m pytest"), "the audit runs before the tests, never after"


def _audit_summary(tmp_path: Path, report: Any) -> tuple[int, str]:
    """Runs .ci/run's summary script (between its ci-audit-summary markers) on one pip-audit JSON report."""
    import subprocess
    import sys

    text = CI_RUN.read_text()
    block = text[text.index("# ci-audit-summary: begin"):text.index("# ci-audit-summary: end")]
    script = block[block.index("<<'PY'\n") + len("<<'PY'\n"):block.index("\nPY\n")]
    path = tmp_path / "report.json"
    if report is not None:
        path.write_text(report if isinstance(report, str) else json.dumps(report))
    done = subprocess.run([sys.executable, "-c", script, str(path), "pypi"], capture_output=True, text=True, timeout=60)
    return done.returncode, done.stdout


def test_ci_audit_summary_reports_vulnerable_pins_and_never_claims_an_audit_it_did_not_make(tmp_path):
    rc, out = _audit_summary(tmp_path, {"dependencies": [
        {"name": "requests", "version": "2.0.0", "vulns": [{"id": "PYSEC-2014-13", "fix_versions": ["2.3.0"]}]},
        {"name": "redis", "version": "8.1.0", "vulns": []},
        {"name": "private-pkg", "skip_reason": "Dependency not found on PyPI and could not be audited"},
    ]})
    assert rc == 0
    assert "2 of 3 pins audited, 1 with known vulnerabilities" in out
    assert "VULNERABLE requests==2.0.0: PYSEC-2014-13 (fixed in: 2.3.0)" in out
    assert "not audited: private-pkg" in out
    # What this machine sees: the database answers for no pin (pip-audit still says "No known vulnerabilities").
    everything_skipped = {"dependencies": [{"name": "redis", "skip_reason": "Dependency not found on PyPI"}]}
    for n, report in enumerate((everything_skipped, None, "not json")):  # None: pip-audit wrote no report
        folder = tmp_path / str(n)
        folder.mkdir()
        rc, out = _audit_summary(folder, report)
        assert rc == 3 and out == "", "an audit that looked nothing up must not be reported as clean"


# -- docker-compose.yml ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def image_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The services that run the newsflow image (built from deploy/Dockerfile)."""
    out = {}
    for name, svc in compose["services"].items():
        build = svc.get("build")
        if isinstance(build, dict) and Path(build.get("dockerfile", "")).as_posix() == "deploy/Dockerfile":
            assert build.get("context", ".") in (".", "./"), f"{name}: the build context must be the repo root"
            out[name] = svc
    return out


def test_compose_has_every_service(compose):
    assert set(compose["services"]) >= {"redis", "postgres", "migrate", *DEPLOYED}
    assert set(image_services(compose)) == {"migrate", *DEPLOYED, WEBHOOK}


def test_compose_commands_are_real_cli_commands(compose):
    for name, svc in image_services(compose).items():
        assert isinstance(svc.get("command"), list), f"{name}: command must be an exec-form list"
        args = cli_args(svc["command"])
        if name in (*DEPLOYED, WEBHOOK):
            assert (args.command, args.stage) == ("worker", name), f"{name} runs {svc['command']}"
        else:
            assert (args.command, args.action) == ("db", "migrate")
    assert compose["services"]["migrate"]["restart"] == "no"


def test_compose_workers_are_scalable_replicated_and_limited(compose):
    expected = {"fetcher": 1, "cleaner": 2, "classifier": 2, "storage": 1, GATEWAY: 1, API: 1}
    for name, svc in compose["services"].items():
        scalable = name in image_services(compose) or "replicas" in svc.get("deploy", {})
        if scalable:
            assert "container_name" not in svc, f"{name}: container_name prevents --scale and replicas"
    for stage in DEPLOYED:
        svc = compose["services"][stage]
        assert svc["deploy"]["replicas"] == expected[stage]
        limits = svc["deploy"]["resources"]["limits"]
        assert float(limits["cpus"]) > 0 and re.fullmatch(r"\d+[kKmMgG]?", str(limits["memory"]))
        assert svc["restart"] == "unless-stopped"
        assert duration_s(svc["stop_grace_period"]) > DEFAULT_SHUTDOWN_S
        assert svc.get("env_file") in (".env", [".env"]) or any(
            isinstance(e, dict) and e.get("path") == ".env" for e in svc.get("env_file", [])
        )


def test_compose_healthchecks(compose):
    services = compose["services"]
    redis_test = services["redis"]["healthcheck"]["test"]
    assert "redis-cli" in " ".join(redis_test) and "ping" in " ".join(redis_test)
    assert "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])
    for stage in STAGES:
        test = services[stage]["healthcheck"]["test"]
        assert test[:3] == ["CMD", "python", "-c"], f"{stage}: exec-form python healthcheck expected"
        compile(test[3], "<healthcheck>", "exec")
        assert "urlopen" in test[3] and "timeout=" in test[3]
        assert duration_s(services[stage]["healthcheck"]["start_period"]) >= 30, "model loading comes before the server"


def test_compose_worker_healthchecks_hit_healthz_on_the_metrics_port(compose, worker_paths, monkeypatch):
    services = compose["services"]
    for stage in STAGES:
        env = {k: v for k, v in env_mapping(services[stage]["environment"]).items() if v is not None}
        settings = settings_from({k: interpolate(v) for k, v in env.items() if k in KNOWN}, monkeypatch)
        assert settings.metrics_host == "0.0.0.0", f"{stage}: inside a container, loopback is unreachable for Prometheus"
        assert settings.metrics_port > 0
        (url,) = re.findall(r"'(http://[^']+)'", services[stage]["healthcheck"]["test"][3])
        parts = urlsplit(url)
        assert parts.hostname == "127.0.0.1" and parts.port == settings.metrics_port, f"{stage}: {url}"
        assert parts.path == "/healthz" and worker_paths(parts.path), f"{stage}: {url} is not a worker path"


def test_compose_webhook_is_a_worker_under_its_own_profile(compose, worker_paths, monkeypatch):
    svc = compose["services"][WEBHOOK]
    assert svc["profiles"] == [WEBHOOK], "it refuses to start without URLs and a secret: only when asked for"
    env = {k: v for k, v in env_mapping(svc["environment"]).items() if v is not None}
    assert not {"NEWSFLOW_WEBHOOK_URLS", "NEWSFLOW_WEBHOOK_SECRET"} & set(env), "URLs and the secret come from .env"
    settings = settings_from({k: interpolate(v) for k, v in env.items() if k in KNOWN}, monkeypatch)
    assert settings.metrics_host == "0.0.0.0" and settings.metrics_port > 0
    (url,) = re.findall(r"'(http://[^']+)'", svc["healthcheck"]["test"][3])
    assert urlsplit(url).port == settings.metrics_port and worker_paths(urlsplit(url).path) and urlsplit(url).path == "/healthz"
    assert svc["depends_on"]["redis"]["condition"] == "service_healthy" and "ports" not in svc
    assert svc["restart"] == "unless-stopped" and duration_s(svc["stop_grace_period"]) > DEFAULT_SHUTDOWN_S
    assert svc["deploy"]["replicas"] == 1 and svc["deploy"]["resources"]["limits"]["memory"]


@pytest.mark.parametrize("service", HTTP_SERVICES)
def test_compose_http_services_listen_publish_and_check_a_real_route(compose, service):
    svc = compose["services"][service]
    var = f"NEWSFLOW_{service.upper()}"  # NEWSFLOW_GATEWAY_..., NEWSFLOW_API_...
    env = env_mapping(svc["environment"])
    port = int(env[f"{var}_PORT"])
    assert env[f"{var}_HOST"] == "0.0.0.0", "inside a container, loopback is unreachable from outside"
    assert not {f"{var}_TOKENS", f"{var}_ALLOW_ANONYMOUS", f"{var}_PUBLIC"} & set(env), "tokens come from .env"
    assert any(str(p).endswith(f":{port}") for p in svc["ports"])
    assert service in svc["profiles"], "it refuses to start without tokens: only when asked for"
    test = svc["healthcheck"]["test"]
    assert test[:3] == ["CMD", "python", "-c"]
    compile(test[3], "<healthcheck>", "exec")
    (url,) = re.findall(r"'(http://[^']+)'", test[3])
    assert urlsplit(url).port == port and urlsplit(url).path in http_routes(service) and urlsplit(url).path == "/healthz"


def test_compose_depends_on_conditions_are_valid(compose):
    services = compose["services"]
    for name, svc in services.items():
        deps = svc.get("depends_on", {})
        if isinstance(deps, list):
            deps = {d: {"condition": "service_started"} for d in deps}
        for target, spec in deps.items():
            assert target in services, f"{name} depends on unknown service {target}"
            condition = spec.get("condition", "service_started")
            assert condition in DEPENDS_ON_CONDITIONS, f"{name} -> {target}: {condition}"
            if condition == "service_healthy":
                hc = services[target].get("healthcheck", {})
                assert hc.get("test") and not hc.get("disable"), f"{target} has no healthcheck for {name} to wait on"
            if condition == "service_completed_successfully":
                assert services[target].get("restart", "no") == "no", f"{target} must run once"
    for stage in DEPLOYED:
        assert services[stage]["depends_on"]["redis"]["condition"] == "service_healthy"
    for reader in ("storage", API):  # both need the schema that `migrate` creates
        deps = services[reader]["depends_on"]
        assert deps["postgres"]["condition"] == "service_healthy", reader
        assert deps["migrate"]["condition"] == "service_completed_successfully", reader
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_compose_redis_and_postgres_are_durable(compose):
    services = compose["services"]
    command = " ".join(services["redis"]["command"])
    assert "--appendonly yes" in command and "--appendfsync everysec" in command
    assert services["redis"]["image"].startswith("redis:7")
    assert services["postgres"]["image"].startswith("postgres:15")
    for name in ("redis", "postgres"):
        volume = services[name]["volumes"][0].split(":")[0]
        assert volume in compose["volumes"], f"{name}: data must be on a named volume"


def test_compose_environment_names_are_settings(compose):
    for name, svc in compose["services"].items():
        env = env_mapping(svc.get("environment"))
        for var in env:
            if name == "grafana" and var.startswith(GRAFANA_VAR_PREFIX):
                continue
            assert var in KNOWN or var in SECRET_FILES or var in POSTGRES_IMAGE_VARS, f"{name}: {var} is not a newsflow setting"
        if name in image_services(compose):
            assert {"REDIS_URL", "DATABASE_URL"} <= set(env), f"{name}: set REDIS_URL and DATABASE_URL"
            assert "NEWSFLOW_CONSUMER" not in env, f"{name}: replicas would share one consumer name"
            assert urlsplit(interpolate(env["REDIS_URL"])).hostname == "redis"
            db = urlsplit(interpolate(env["DATABASE_URL"]))
            assert db.scheme.startswith("postgres") and db.hostname == "postgres" and db.port == 5432
            postgres = env_mapping(compose["services"]["postgres"]["environment"])
            assert db.username == interpolate(postgres["POSTGRES_USER"])
            assert db.password == interpolate(postgres["POSTGRES_PASSWORD"])
            assert db.path == "/" + interpolate(postgres["POSTGRES_DB"])


def test_compose_interpolations_are_in_env_example():
    active, _ = dotenv(ENV_EXAMPLE)
    used = set(re.findall(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)", COMPOSE.read_text()))
    assert used, "expected ${...} interpolation of the postgres credentials"
    for var in used:
        assert var in active, f"docker-compose.yml uses ${{{var}}} but .env.example does not set it"


def test_compose_matches_the_compose_spec_schema(compose):
    """The official compose-spec JSON Schema, as vendored by check-jsonschema (no network)."""
    pytest.importorskip("check_jsonschema", reason="check-jsonschema ships the compose-spec schema")
    import jsonschema
    from importlib import resources

    schema = json.loads(resources.files("check_jsonschema.builtin_schemas.vendor").joinpath("compose-spec.json").read_text())
    validator = jsonschema.validators.validator_for(schema)(schema)
    errors = sorted(validator.iter_errors(compose), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors)


# -- docker-compose.yml: the monitoring profile (Prometheus, Grafana) ------------------------------------

PROMETHEUS_CONF = ROOT / "deploy" / "prometheus" / "prometheus.yml"
GRAFANA_PROVISIONING = ROOT / "deploy" / "grafana" / "provisioning"


def bind_mounts(svc: dict[str, Any]) -> dict[str, Path]:
    """Container path -> the repository file or folder bind-mounted there (./relative sources only)."""
    out: dict[str, Path] = {}
    for volume in svc.get("volumes", []):
        if isinstance(volume, dict):
            source, target = volume.get("source", ""), volume["target"]
        else:
            source, target = str(volume).split(":")[:2]
        if source.startswith("./"):
            out[target] = ROOT / source[2:]
    return out


def named_volumes(svc: dict[str, Any]) -> dict[str, str]:
    """Container path -> named volume."""
    out = {}
    for volume in svc.get("volumes", []):
        source, target = (volume.get("source", ""), volume["target"]) if isinstance(volume, dict) else str(volume).split(":")[:2]
        if source and not source.startswith((".", "/")):
            out[target] = source
    return out


def flag(command: list[str], name: str, default: str) -> str:
    """`--name=value` (or `--name value`) of a container command, else the image's default."""
    for i, arg in enumerate(command):
        if arg.startswith(f"{name}="):
            return arg.split("=", 1)[1]
        if arg == name:
            return command[i + 1]
    return default


def test_monitoring_services_are_only_in_the_monitoring_profile(compose):
    services = compose["services"]
    assert services["prometheus"]["image"].startswith("prom/prometheus:")
    assert services["grafana"]["image"].startswith("grafana/grafana:")
    for name, svc in services.items():
        if name in MONITORING:
            assert svc["profiles"] == ["monitoring"], f"{name}: only with `--profile monitoring`"
            assert svc["restart"] == "unless-stopped"
            limits = svc["deploy"]["resources"]["limits"]
            assert float(limits["cpus"]) > 0 and re.fullmatch(r"\d+[kKmMgG]?", str(limits["memory"]))
            assert all(str(p).startswith("127.0.0.1:") for p in svc["ports"]), f"{name}: loopback only, it has no TLS"
        else:
            assert "monitoring" not in svc.get("profiles", []), f"{name} is not a monitoring service"


def test_monitoring_mounts_exist_where_prometheus_and_grafana_read_them(compose):
    prom = compose["services"]["prometheus"]
    mounts = bind_mounts(prom)
    config_path = flag(prom.get("command", []), "--config.file", "/etc/prometheus/prometheus.yml")
    assert mounts[config_path] == PROMETHEUS_CONF and PROMETHEUS_CONF.is_file()
    conf = yaml.safe_load(PROMETHEUS_CONF.read_text())
    for rule_file in conf["rule_files"]:  # relative to the config file's folder, inside the container as here
        target = str(Path(config_path).parent / rule_file)
        assert target in mounts, f"{rule_file} is not mounted beside the config ({target})"
        assert mounts[target] == PROMETHEUS_CONF.parent / rule_file and mounts[target].is_file()
    storage = flag(prom.get("command", []), "--storage.tsdb.path", "/prometheus")
    assert named_volumes(prom).get(storage) in compose["volumes"], "the TSDB must be on a named volume"

    grafana = compose["services"]["grafana"]
    mounts = bind_mounts(grafana)
    env = env_mapping(grafana.get("environment"))
    provisioning = env.get("GF_PATHS_PROVISIONING") or "/etc/grafana/provisioning"
    assert mounts[provisioning] == GRAFANA_PROVISIONING
    for kind in ("datasources", "dashboards"):
        assert list((GRAFANA_PROVISIONING / kind).glob("*.yml")), f"no {kind} provisioning file"
    providers = [p for f in (GRAFANA_PROVISIONING / "dashboards").glob("*.yml") for p in yaml.safe_load(f.read_text())["providers"]]
    for provider in providers:
        folder = provider["options"]["path"]
        assert folder in mounts, f"the dashboards provider reads {folder}, which nothing mounts"
        assert list(mounts[folder].glob("*.json")), f"no dashboard in {mounts[folder]}"
    home = env.get("GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH")
    if home:
        folder, name = home.rsplit("/", 1)
        assert (mounts[folder] / name).is_file(), home
    data = env.get("GF_PATHS_DATA") or "/var/lib/grafana"
    assert named_volumes(grafana).get(data) in compose["volumes"], "Grafana's database must be on a named volume"


def test_grafana_datasource_is_the_compose_prometheus(compose):
    prom = compose["services"]["prometheus"]
    listen = flag(prom.get("command", []), "--web.listen-address", "0.0.0.0:9090")
    for f in (GRAFANA_PROVISIONING / "datasources").glob("*.yml"):
        for ds in yaml.safe_load(f.read_text())["datasources"]:
            if ds["type"] == "prometheus":
                url = urlsplit(ds["url"])
                assert url.hostname == "prometheus" and url.hostname in compose["services"]
                assert url.port == int(listen.rsplit(":", 1)[1])
    assert compose["services"]["grafana"]["depends_on"]["prometheus"]["condition"] == "service_healthy"


def test_prometheus_scrape_targets_are_the_stage_services_on_their_metrics_port(compose, monkeypatch):
    services = compose["services"]
    conf = yaml.safe_load(PROMETHEUS_CONF.read_text())
    targets: list[tuple[str, int]] = []
    for job in conf["scrape_configs"]:
        for sd in job.get("dns_sd_configs", []):
            targets += [(name, int(sd["port"])) for name in sd["names"]]
        for static in job.get("static_configs", []):
            targets += [(t.rsplit(":", 1)[0], int(t.rsplit(":", 1)[1])) for t in static["targets"]]
    assert {name for name, _ in targets} == set(STAGES), "every stage worker, and only they, serve /metrics"
    for name, port in targets:
        assert name in services, f"scrape target {name} is not a compose service"
        args = cli_args(services[name]["command"])
        assert (args.command, args.stage) == ("worker", name)
        env = {k: v for k, v in env_mapping(services[name]["environment"]).items() if v is not None}
        settings = settings_from({k: interpolate(v) for k, v in env.items() if k in KNOWN}, monkeypatch)
        assert port == settings.metrics_port and settings.metrics_host == "0.0.0.0", f"{name}: scraped on {port}"
    assert set(services["prometheus"].get("profiles", [])) == set(services["grafana"].get("profiles", []))


def test_monitoring_healthchecks_ask_their_own_health_endpoints(compose):
    expected = {"prometheus": ("9090", ("/-/ready", "/-/healthy")), "grafana": ("3000", ("/api/health",))}
    for name, (port, paths) in expected.items():
        hc = compose["services"][name]["healthcheck"]
        test = hc["test"]
        assert test[0] in ("CMD", "CMD-SHELL") and not hc.get("disable")
        (url,) = [a for a in test if "http://" in a] or re.findall(r"http://\S+", " ".join(test))
        parts = urlsplit(url)
        assert parts.hostname == "127.0.0.1" and str(parts.port) == port and parts.path in paths, url
        assert any(str(p).endswith(f":{port}") for p in compose["services"][name]["ports"])
        assert duration_s(hc["interval"]) > 0 and hc["retries"] >= 1


# -- .env.example ----------------------------------------------------------------------------------------


def test_env_example_has_only_real_settings_and_lists_them_all(monkeypatch):
    active, commented = dotenv(ENV_EXAMPLE)
    for var in {**active, **commented}:
        assert var in KNOWN or var in SECRET_FILES or var in POSTGRES_IMAGE_VARS or var in MONITORING_ENV_VARS, \
            f".env.example: {var} is not a newsflow setting"
    listed = {KNOWN[v] for v in {**active, **commented} if v in KNOWN}
    assert listed == set(Settings.model_fields), f"not in .env.example: {set(Settings.model_fields) - listed}"
    assert "NEWSFLOW_CONSUMER" not in active, "a consumer name in .env would be shared by every replica"
    assert active["POSTGRES_PASSWORD"] == "change-me"
    settings_env = {k: v for k, v in active.items() if k in KNOWN}
    settings = settings_from(settings_env, monkeypatch)
    assert_env_took_effect(settings, settings_env)
    compose = yaml.safe_load(COMPOSE.read_text())
    for stage in DEPLOYED:
        assert duration_s(compose["services"][stage]["stop_grace_period"]) > settings.shutdown_timeout_s


# -- Kubernetes ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def kustomization() -> dict[str, Any]:
    return yaml.safe_load((K8S / "kustomization.yaml").read_text())


@pytest.fixture(scope="module")
def k8s(kustomization) -> list[dict[str, Any]]:
    docs = []
    for resource in kustomization["resources"]:
        docs += [d for d in yaml.safe_load_all((K8S / resource).read_text()) if d]
    return docs


def of_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def stage_of(deployment: dict[str, Any]) -> str:
    return deployment["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"]


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items()) and not selector.get("matchExpressions")


def worker_env(k8s: list[dict[str, Any]]) -> dict[str, str]:
    """What envFrom gives every worker: the ConfigMaps' data and the Secrets' stringData they reference."""
    configmaps, secrets = of_kind(k8s, "ConfigMap"), of_kind(k8s, "Secret")
    env: dict[str, str] = {}
    for dep in of_kind(k8s, "Deployment").values():
        for source in dep["spec"]["template"]["spec"]["containers"][0]["envFrom"]:
            if "configMapRef" in source:
                env.update(configmaps[source["configMapRef"]["name"]]["data"])
            if "secretRef" in source:
                env.update(secrets[source["secretRef"]["name"]]["stringData"])
    return env


def test_kustomization_lists_every_manifest(kustomization, k8s):
    files = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == files
    assert kustomization["namespace"] == "newsflow"
    assert "newsflow" in of_kind(k8s, "Namespace")
    assert any(i["name"] == "newsflow" for i in kustomization["images"]), "kustomize must set the image"
    for doc in k8s:
        assert doc["metadata"].get("namespace") in (None, "newsflow"), doc["metadata"]["name"]


def test_k8s_configmap_and_secret_hold_only_settings(k8s, monkeypatch):
    for cm in of_kind(k8s, "ConfigMap").values():
        for key, value in cm["data"].items():
            assert key in KNOWN, f"ConfigMap {cm['metadata']['name']}: {key} is not a newsflow setting"
            assert isinstance(value, str), f"ConfigMap values must be strings: {key}={value!r}"
    referenced = {
        src["secretRef"]["name"]
        for dep in of_kind(k8s, "Deployment").values()
        for src in dep["spec"]["template"]["spec"]["containers"][0]["envFrom"]
        if "secretRef" in src
    }
    assert referenced
    secrets = of_kind(k8s, "Secret")
    for name in referenced:
        assert "stringData" in secrets[name] and "data" not in secrets[name]
        assert set(secrets[name]["stringData"]) == {"REDIS_URL", "DATABASE_URL"}
        for key in secrets[name]["stringData"]:
            assert key in KNOWN
    env = worker_env(k8s)
    assert "NEWSFLOW_CONSUMER" not in env, "the consumer name comes from the pod name, not a shared ConfigMap"
    settings = settings_from(env, monkeypatch)
    assert_env_took_effect(settings, env)
    assert settings.log_format == "json"


def test_k8s_deployments(k8s, monkeypatch, worker_paths):
    deployments = of_kind(k8s, "Deployment")
    assert sorted(stage_of(d) for d in deployments.values()) == sorted(DEPLOYED)
    configured = settings_from(worker_env(k8s), monkeypatch).shutdown_timeout_s
    for name, dep in deployments.items():
        stage = stage_of(dep)
        spec = dep["spec"]
        pod = spec["template"]["spec"]
        assert selects(spec["selector"], spec["template"]["metadata"]["labels"])
        assert pod["terminationGracePeriodSeconds"] > DEFAULT_SHUTDOWN_S
        assert pod["terminationGracePeriodSeconds"] > configured
        assert pod["securityContext"]["runAsNonRoot"] is True
        (container,) = pod["containers"]
        assert container["image"] == "newsflow"
        args = cli_args(container["args"])
        assert (args.command, args.stage) == ("worker", stage), f"{name} runs {container['args']}"
        assert "command" not in container, "keep the image's ENTRYPOINT (newsflow)"

        for res in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(container["resources"][res]), f"{name}: {res}"
        sc = container["securityContext"]
        assert sc["readOnlyRootFilesystem"] is True
        assert sc["allowPrivilegeEscalation"] is False
        assert sc["capabilities"]["drop"] == ["ALL"]
        assert sc.get("runAsNonRoot", pod["securityContext"].get("runAsNonRoot")) is True

        volumes = {v["name"]: v for v in pod["volumes"]}
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        assert "emptyDir" in volumes[mounts["/data"]], "/data must be a writable emptyDir"

        consumer = [e for e in container.get("env", []) if e["name"] == "NEWSFLOW_CONSUMER"]
        assert consumer and consumer[0]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
        for e in container.get("env", []):
            assert e["name"] in KNOWN or e["name"] in SECRET_FILES, f"{name}: env {e['name']} is not a newsflow setting"
        assert {"configMapRef", "secretRef"} <= {k for src in container["envFrom"] for k in src}

        if stage in HTTP_SERVICES:
            routes = http_routes(stage)
            var = f"NEWSFLOW_{stage.upper()}"
            env = {e["name"]: e.get("value") for e in container["env"]}
            ports = {p["name"]: p["containerPort"] for p in container["ports"]}
            assert env[f"{var}_HOST"] == "0.0.0.0"
            assert ports["http"] == int(env[f"{var}_PORT"])
            tokens_file = Path(env[f"{var}_TOKENS_FILE"])
            (secret_volume,) = [v for v in pod["volumes"] if "secret" in v]
            assert mounts[str(tokens_file.parent)] == secret_volume["name"], "the tokens file comes from a Secret"
            expected = {"livenessProbe": "/healthz", "readinessProbe": "/readyz"}
            for probe, path in expected.items():
                get = container[probe]["httpGet"]
                assert get["path"] == path and path in routes, f"{name}: {probe} on {get['path']}, not a route"
                assert get["port"] in ("http", ports["http"])
            continue
        check_worker_probes(name, dep, container, worker_paths, monkeypatch, k8s)


def check_worker_probes(name: str, dep: dict[str, Any], container: dict[str, Any], worker_paths: Any,
                        monkeypatch: pytest.MonkeyPatch, k8s: list[dict[str, Any]]) -> None:
    """HTTP probes and scrape annotations on paths the worker serves, on the port it listens on."""
    # Without the *_FILE variables: they name files (a mounted Secret) that exist only in the pod.
    env = {**worker_env(k8s), **{e["name"]: e["value"] for e in container.get("env", []) if "value" in e and e["name"] not in SECRET_FILES}}
    settings = settings_from(env, monkeypatch)
    assert settings.metrics_host == "0.0.0.0", f"{name}: the kubelet and Prometheus cannot reach 127.0.0.1"
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["metrics"] == settings.metrics_port, f"{name}: port `metrics` is not NEWSFLOW_METRICS_PORT"
    expected = {"livenessProbe": "/healthz", "readinessProbe": "/readyz", "startupProbe": "/healthz"}
    for probe, path in expected.items():
        get = container[probe]["httpGet"]
        assert get["path"] == path and worker_paths(path), f"{name}: {probe} on {get['path']}"
        assert get["port"] in ("metrics", settings.metrics_port), f"{name}: {probe} on port {get['port']}"
        # Above the 3 s the probe server gives the event loop to answer, so a slow loop reads as 503, not a timeout.
        assert container[probe]["timeoutSeconds"] > 3
    annotations = dep["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert int(annotations["prometheus.io/port"]) == settings.metrics_port
    assert annotations["prometheus.io/path"] == "/metrics" and worker_paths("/metrics")


def test_k8s_every_deployment_has_a_pdb_and_a_scaledobject(k8s):
    pdbs = of_kind(k8s, "PodDisruptionBudget").values()
    scaled = {so["spec"]["scaleTargetRef"]["name"]: so for so in of_kind(k8s, "ScaledObject").values()}
    for name, dep in of_kind(k8s, "Deployment").items():
        labels = dep["spec"]["template"]["metadata"]["labels"]
        matching = [p for p in pdbs if selects(p["spec"]["selector"], labels)]
        assert len(matching) == 1, f"{name}: expected one PodDisruptionBudget, found {len(matching)}"
        assert matching[0]["spec"]["minAvailable"] == 1
        if stage_of(dep) in HTTP_SERVICES:
            # It consumes no stream, so there is no lag to scale on: a fixed count that lets a drain evict one.
            assert name not in scaled and dep["spec"]["replicas"] > matching[0]["spec"]["minAvailable"]
            continue
        assert name in scaled, f"{name}: no ScaledObject"
        so = scaled[name]["spec"]
        assert so["scaleTargetRef"].get("kind", "Deployment") == "Deployment"
        assert 1 <= so["minReplicaCount"] <= so["maxReplicaCount"]
        # minAvailable 1 over a single replica would refuse every eviction, and so every node drain.
        assert so["minReplicaCount"] > matching[0]["spec"]["minAvailable"], f"{name}: drains would block"


def test_k8s_keda_triggers_watch_the_stage_streams_and_groups(k8s):
    env = worker_env(k8s)
    topology = Topology(env.get("NEWSFLOW_STREAM_PREFIX", Settings.model_fields["stream_prefix"].default))
    assert topology == Topology("newsflow")
    redis_url = urlsplit(env["REDIS_URL"])
    deployments = of_kind(k8s, "Deployment")
    auths = of_kind(k8s, "TriggerAuthentication")
    secrets = of_kind(k8s, "Secret")
    for so in of_kind(k8s, "ScaledObject").values():
        assert so["apiVersion"] == "keda.sh/v1alpha1"
        stage = stage_of(deployments[so["spec"]["scaleTargetRef"]["name"]])
        (trigger,) = so["spec"]["triggers"]
        assert trigger["type"] == "redis-streams"
        meta = trigger["metadata"]
        assert all(isinstance(v, str) for v in meta.values()), "KEDA trigger metadata values must be strings"
        assert meta["stream"] == topology.input_of(stage), f"{stage} reads {topology.input_of(stage)}"
        assert meta["consumerGroup"] == topology.group(stage)
        assert meta["stream"] in topology.all_streams()
        assert int(meta["lagCount"]) == 100 and int(meta["activationLagCount"]) >= 1
        assert not {"pendingEntriesCount", "streamLength"} & set(meta), "lagCount mode only"
        if "address" in meta:
            assert meta["address"] == f"{redis_url.hostname}:{redis_url.port}", "KEDA must watch the workers' Redis"
        else:
            assert "addressFromEnv" in meta
        assert str(redis_url.path.lstrip("/") or "0") == meta.get("databaseIndex", "0")
        if "authenticationRef" in trigger:
            auth = auths[trigger["authenticationRef"]["name"]]
            assert auth["apiVersion"] == "keda.sh/v1alpha1"
            refs = {ref["parameter"]: ref for ref in auth["spec"]["secretTargetRef"]}
            for ref in refs.values():
                assert ref["parameter"] in {"password", "username", "tls", "ca", "cert", "key"}
                secret = secrets[ref["name"]]
                assert ref["key"] in secret["stringData"]
            if "username" in refs:
                # KEDA's own Redis ACL user, with its own password: it must exist in deploy/redis/users.acl.
                user = secrets[refs["username"]["name"]]["stringData"][refs["username"]["key"]]
                acl = (ROOT / "deploy" / "redis" / "users.acl").read_text()
                assert re.search(rf"^user {re.escape(user)} on ", acl, re.MULTILINE), f"no Redis user {user!r}"
            elif "password" in refs:
                password = secrets[refs["password"]["name"]]["stringData"][refs["password"]["key"]]
                assert password == redis_url.password, "two different Redis passwords"


def test_k8s_networkpolicy_allows_only_redis_postgres_and_dns(k8s):
    """Per pod, the union of the policies that select it: workers take connections on their metrics port only
    and open Redis, PostgreSQL and DNS; the gateway takes 8080 and the query API 8081; the fetcher also opens 80/443
    to public addresses."""
    policies = list(of_kind(k8s, "NetworkPolicy").values())
    for p in policies:
        assert not p["spec"]["podSelector"].get("matchExpressions"), "keep selectors to matchLabels"
    for dep in of_kind(k8s, "Deployment").values():
        stage = stage_of(dep)
        labels = dep["spec"]["template"]["metadata"]["labels"]
        mine = [p["spec"] for p in policies if selects(p["spec"]["podSelector"], labels)]
        assert {"Ingress", "Egress"} <= {t for spec in mine for t in spec["policyTypes"]}
        ingress = [rule for spec in mine for rule in spec.get("ingress") or []]
        if stage in HTTP_SERVICES:
            for rule in ingress:
                assert rule.get("ports"), "an ingress rule without ports would open every port"
            opened = {(p["port"], p.get("protocol", "TCP")) for rule in ingress for p in rule["ports"]}
            container = dep["spec"]["template"]["spec"]["containers"][0]
            assert opened == {(c["containerPort"], "TCP") for c in container["ports"]}
        else:
            # Workers take connections on their metrics port only: /metrics, /healthz and /readyz.
            for rule in ingress:
                assert rule.get("ports"), "an ingress rule without ports would open every port"
            opened = {(p["port"], p.get("protocol", "TCP")) for rule in ingress for p in rule["ports"]}
            container = dep["spec"]["template"]["spec"]["containers"][0]
            assert opened == {(container["ports"][0]["containerPort"], "TCP")} and container["ports"][0]["name"] == "metrics", stage
        ports, web = set(), set()
        for spec in mine:
            for rule in spec.get("egress") or []:
                assert rule.get("ports"), "an egress rule without ports would allow everything"
                rule_ports = {(p["port"], p.get("protocol", "TCP")) for p in rule["ports"]}
                if rule.get("to"):
                    (block,) = [t["ipBlock"] for t in rule["to"]]
                    assert block["cidr"] == "0.0.0.0/0"
                    assert {"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16"} <= set(block["except"])
                    web |= rule_ports
                else:
                    ports |= rule_ports
        assert ports == {(6379, "TCP"), (5432, "TCP")} | DNS_PORTS
        assert web == ({(80, "TCP"), (443, "TCP")} if stage == "fetcher" else set()), stage


def test_k8s_builtin_kinds_match_the_kubernetes_schemas(k8s):
    """Strict OpenAPI validation (unknown fields fail) for every built-in kind, on the oldest and newest
    Kubernetes versions kubernetes-validate ships; KEDA's CRDs are checked structurally above."""
    pytest.importorskip("kubernetes_validate", reason="kubernetes-validate ships the Kubernetes schemas")
    import jsonschema
    from kubernetes_validate import utils as kv

    versions = sorted({kv.all_versions()[0], kv.latest_version()})
    checked, problems = 0, []
    for doc in k8s:
        if doc["apiVersion"].startswith("keda.sh/"):
            continue
        for version in versions:
            try:
                kv.validate(doc, version, strict=True)
            except jsonschema.ValidationError as e:  # kubernetes-validate's own error subclasses it
                where = ".".join(map(str, e.absolute_path))
                problems.append(f"{doc['kind']}/{doc['metadata']['name']} on Kubernetes {version}: {where}: {e.message}")
        checked += 1
    assert not problems, "\n".join(problems)
    assert checked >= 8
