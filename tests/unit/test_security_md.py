"""SECURITY.md stays true: every control it calls in place names code, settings and commands that exist, and the
claims it makes in words (CORS, default bind address, hashes, uid...) hold in the code."""

from __future__ import annotations

import argparse
import importlib
import inspect
import re
from pathlib import Path
from typing import Iterator

import pytest

from services.cli import build_parser
from shared.settings import Settings, env_names, secret_file_vars

ROOT = Path(__file__).resolve().parents[2]
TEXT = (ROOT / "SECURITY.md").read_text()
STATUSES = {"in place", "planned", "consumers' part"}


def section(title: str) -> str:
    m = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", TEXT, re.S | re.M)
    assert m, f"SECURITY.md has no '## {title}' section"
    return m.group(1)


def threat_rows() -> list[tuple[str, str, str]]:
    rows = []
    for line in section("Threats and controls").splitlines():
        if not line.startswith("|") or line.startswith("|---") or line.startswith("| threat |"):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
        assert len(cells) == 3, f"a threat row needs threat | control | status: {line[:100]}"
        rows.append((cells[0], cells[1], cells[2]))
    return rows


def known_variables() -> set[str]:
    prefix = Settings.model_config.get("env_prefix", "")
    names = {n for name, field in Settings.model_fields.items() for n in env_names(name, field, prefix)}
    return names | {var for _plain, files in secret_file_vars().values() for var in files}


def reference_problem(span: str) -> str | None:
    """Why a `code span` that names a control does not hold; None when it holds or names no control."""
    if re.fullmatch(r"[A-Z][A-Z0-9_]+", span) and (span.startswith("NEWSFLOW_") or span.endswith(("_URL", "_FILE"))):
        return None if span in known_variables() else f"{span} is not a setting (nor a secret's _FILE)"
    if m := re.fullmatch(r"newsflow (\w+).*", span):
        commands = build_parser()._subparsers._group_actions[0].choices  # type: ignore[union-attr]
        return None if m.group(1) in commands else f"`{span}`: no such command"
    if "/" in span or span == ".dockerignore":
        path, _, symbol = span.partition(":")
        if not (ROOT / path).exists():
            return f"{path} does not exist"
        if symbol:
            source = (ROOT / path).read_text()
            name = re.escape(symbol)  # defined there, or imported there for its users (it may live in shared/)
            if not re.search(rf"^\s*(?:async def|def|class)\s+{name}\b|^{name}\s*=|^from \S+ import [^\n]*\b{name}\b", source, re.M):
                return f"{path} defines no {symbol}"
    return None


def cli_actions(parser: argparse.ArgumentParser) -> Iterator[argparse.Action]:
    for action in parser._actions:
        yield action
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from cli_actions(sub)


def is_reference(span: str) -> bool:
    return bool(re.fullmatch(r"[A-Z][A-Z0-9_]+", span) or span.startswith("newsflow ") or "/" in span or span == ".dockerignore")


def test_the_sections_of_a_threat_model_are_there():
    for title in ("Assets", "Trust boundaries", "Threats and controls", "Reporting a vulnerability"):
        assert section(title).strip()
    boundaries = section("Trust boundaries").lower()
    for party in ("scrapers", "fetched sites", "downstream consumers", "operators"):
        assert party in boundaries, f"trust boundary missing: {party}"
    assets = section("Assets").lower()
    for asset in ("articles", "stream integrity", "database", "credentials", "cluster network"):
        assert asset in assets, f"asset missing: {asset}"


def test_every_control_in_place_names_something_that_exists():
    rows = threat_rows()
    assert len(rows) >= 10
    problems = []
    for threat, control, status in rows:
        assert status in STATUSES, f"{threat}: status {status!r}, not one of {sorted(STATUSES)}"
        if status == "planned":
            continue
        spans = [s for s in re.findall(r"`([^`]+)`", control) if is_reference(s)]
        if not spans:
            problems.append(f"{threat}: names no code, setting or command")
        problems += [f"{threat}: {p}" for s in spans if (p := reference_problem(s))]
    # Outside the table too (the introduction, the boundaries).
    problems += [p for s in re.findall(r"`([^`]+)`", TEXT.replace(section("Threats and controls"), "")) if (p := reference_problem(s))]
    assert not problems, "\n".join(problems)


def test_the_reference_check_itself_catches_what_does_not_exist():
    assert reference_problem("services/fetcher/guard.py:check_url") is None
    assert reference_problem("services/fetcher/guard.py:no_such_function") == "services/fetcher/guard.py defines no no_such_function"
    assert reference_problem("services/nowhere.py") == "services/nowhere.py does not exist"
    assert reference_problem("NEWSFLOW_NO_SUCH_SETTING") == "NEWSFLOW_NO_SUCH_SETTING is not a setting (nor a secret's _FILE)"
    assert reference_problem("REDIS_URL_FILE") is None and reference_problem("NEWSFLOW_GATEWAY_TOKENS_FILE") is None
    assert reference_problem("newsflow nosuchcommand") == "`newsflow nosuchcommand`: no such command"


@pytest.mark.parametrize("claim, holds", [
    ("no CORS middleware", lambda: "CORSMiddleware" not in (ROOT / "services/gateway/app.py").read_text()),
    ("listens on 127.0.0.1 unless", lambda: Settings.model_fields["gateway_host"].default == "127.0.0.1"),
    ("bearer tokens of 16+ characters", lambda: importlib.import_module("services.gateway.validation").MIN_TOKEN_CHARS == 16),
    ("compared in constant time", lambda: "compare_digest" in inspect.getsource(importlib.import_module("services.gateway.validation").token_ok)),
    ("a bare `internal error`", lambda: '"internal error"' in (ROOT / "services/gateway/app.py").read_text()),
    ("non-root uid 10001", lambda: re.search(r"^USER 10001", (ROOT / "deploy/Dockerfile").read_text(), re.M)),
    ("hash-checked against `deploy/requirements.lock`",
     lambda: re.search(r"--require-hashes -r deploy/requirements\.lock", (ROOT / "deploy/Dockerfile").read_text())),
    ("runs pip-audit", lambda: "pip-audit" in (ROOT / ".ci/run").read_text()),
    ("keeps `.env` out of the image", lambda: ".env" in (ROOT / ".dockerignore").read_text().splitlines()),
    ("defusedxml with DTDs and entities forbidden", lambda: "forbid_dtd=True" in (ROOT / "services/fetcher/sources.py").read_text()),
    ("the CLI takes none", lambda: not [o for a in cli_actions(build_parser()) for o in (a.dest, *a.option_strings)
                                        if re.search(r"token|password|secret|credential", o, re.I)]),
])
def test_claims_in_words_hold_in_the_code(claim, holds):
    assert claim in TEXT, f"SECURITY.md no longer says {claim!r}: update this test with it"
    assert holds(), f"SECURITY.md says {claim!r}, and the code no longer does"
