"""The README stays true: every setting is in its configuration table, every CLI command in its table."""

from __future__ import annotations

from pathlib import Path

from services.cli import build_parser
from shared.settings import Settings

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def env_names() -> list[str]:
    names = []
    for name, field in Settings.model_fields.items():
        alias = field.validation_alias
        names.append(alias.choices[0] if alias is not None else f"NEWSFLOW_{name.upper()}")
    return names


def test_every_setting_is_in_the_configuration_table():
    missing = [n for n in env_names() if f"| `{n}` |" not in README]
    assert not missing, f"add these to the README's configuration table: {missing}"


def test_every_command_is_in_the_running_table():
    commands = build_parser()._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    missing = [c for c in commands if f"`newsflow {c}" not in README]
    assert not missing, f"add these commands to the README: {missing}"
