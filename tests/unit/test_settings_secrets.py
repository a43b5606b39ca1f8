"""Secrets from files (`X_FILE`), never from the command line, never in repr(): shared/settings.py."""

from __future__ import annotations

import argparse
import re

import pytest
from pydantic import Field
from pydantic_settings import SettingsError

from services.cli import _worker_env, build_parser, main
from shared.settings import Settings, secret_fields, secret_file_vars

REDIS_PW = "r3dis-Pw-from-a-file"
DB_PW = "db-Pw-from-a-file"
TOKEN = "gateway-token-0123456789abcdef"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    """No setting (or X_FILE) of this machine's leaks into these tests."""
    for var in list(__import__("os").environ):
        if var.startswith("NEWSFLOW_") or var.split("_FILE")[0] in ("REDIS_URL", "DATABASE_URL", "LOG_LEVEL", "LOG_FORMAT"):
            monkeypatch.delenv(var, raising=False)


def secret_file(tmp_path, name: str, text: str):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_file_values_are_read_with_the_trailing_newline_dropped(tmp_path, monkeypatch):
    monkeypatch.setenv("REDIS_URL_FILE", secret_file(tmp_path, "redis", f"redis://default:{REDIS_PW}@127.0.0.1:6379/0\n"))
    monkeypatch.setenv("NEWSFLOW_DATABASE_URL_FILE", secret_file(tmp_path, "db", f"postgresql://app:{DB_PW}@db/news\r\n"))
    s = Settings()
    assert s.redis_url == f"redis://default:{REDIS_PW}@127.0.0.1:6379/0"
    assert s.database_url == f"postgresql://app:{DB_PW}@db/news"


def test_inner_whitespace_and_a_leading_space_are_kept(tmp_path, monkeypatch):
    monkeypatch.setenv("NEWSFLOW_REDIS_PASSWORD_FILE", secret_file(tmp_path, "pw", " two words \n\n"))
    assert Settings().redis_password == " two words "


def test_both_the_variable_and_its_file_is_an_error(tmp_path, monkeypatch):
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:6379/0")
    monkeypatch.setenv("REDIS_URL_FILE", secret_file(tmp_path, "redis", "redis://127.0.0.1:6380/0"))
    with pytest.raises(SettingsError, match="REDIS_URL and REDIS_URL_FILE are both set"):
        Settings()
    # Also across aliases: DATABASE_URL with NEWSFLOW_DATABASE_URL_FILE.
    monkeypatch.delenv("REDIS_URL_FILE")
    monkeypatch.setenv("DATABASE_URL", "sqlite:///a.db")
    monkeypatch.setenv("NEWSFLOW_DATABASE_URL_FILE", secret_file(tmp_path, "db", "sqlite:///b.db"))
    with pytest.raises(SettingsError, match="DATABASE_URL and NEWSFLOW_DATABASE_URL_FILE"):
        Settings()


def test_two_files_for_one_setting_is_an_error(tmp_path, monkeypatch):
    monkeypatch.setenv("REDIS_URL_FILE", secret_file(tmp_path, "a", "redis://a"))
    monkeypatch.setenv("NEWSFLOW_REDIS_URL_FILE", secret_file(tmp_path, "b", "redis://b"))
    with pytest.raises(SettingsError, match="name one file"):
        Settings()


def test_an_empty_variable_does_not_count_and_loses_to_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("REDIS_URL", "")  # e.g. a compose template's `REDIS_URL=${REDIS_URL:-}`
    monkeypatch.setenv("REDIS_URL_FILE", secret_file(tmp_path, "redis", "redis://from-file:6379/0\n"))
    assert Settings().redis_url == "redis://from-file:6379/0"
    monkeypatch.setenv("REDIS_URL_FILE", "")  # an empty X_FILE is no file
    monkeypatch.setenv("REDIS_URL", "redis://from-env:6379/0")
    assert Settings().redis_url == "redis://from-env:6379/0"


def test_a_missing_or_unreadable_file_stops_the_start_naming_the_variable(tmp_path, monkeypatch):
    missing = str(tmp_path / "nope")
    monkeypatch.setenv("REDIS_URL_FILE", missing)
    with pytest.raises(SettingsError, match=re.escape(f"cannot read REDIS_URL_FILE={missing!r}")):
        Settings()
    monkeypatch.setenv("REDIS_URL_FILE", str(tmp_path))  # a directory
    with pytest.raises(SettingsError, match="cannot read REDIS_URL_FILE"):
        Settings()


def test_an_explicit_argument_wins_over_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("REDIS_URL_FILE", secret_file(tmp_path, "redis", "redis://from-file:6379/0"))
    assert Settings(redis_url="redis://given:6379/0").redis_url == "redis://given:6379/0"


def test_the_mechanism_is_generic_for_secret_settings_added_later(tmp_path, monkeypatch):
    class Later(Settings):
        webhook_secret: str = Field("", description="a secret setting that lands later")
        webhook_url: str = Field("", description="not a secret: no _FILE")

    assert "webhook_secret" in secret_fields(Later) and "webhook_url" not in secret_fields(Later)
    assert secret_file_vars(Later)["webhook_secret"] == (["NEWSFLOW_WEBHOOK_SECRET"], ["NEWSFLOW_WEBHOOK_SECRET_FILE"])
    monkeypatch.setenv("NEWSFLOW_WEBHOOK_SECRET_FILE", secret_file(tmp_path, "hook", "hmac-key-0123456789\n"))
    assert Later().webhook_secret == "hmac-key-0123456789"
    monkeypatch.setenv("NEWSFLOW_WEBHOOK_URL_FILE", secret_file(tmp_path, "url", "https://x"))
    assert Later().webhook_url == "", "a _FILE is read only for secret settings"


def test_the_named_secret_settings_of_other_issues_are_covered():
    for name in ("redis_password", "api_tokens"):
        if name in Settings.model_fields:
            assert name in secret_fields()
    if "redis_password" in Settings.model_fields:
        assert "NEWSFLOW_REDIS_PASSWORD_FILE" in secret_file_vars()["redis_password"][1]


def test_token_settings_with_their_own_file_setting_keep_it(tmp_path, monkeypatch):
    """NEWSFLOW_GATEWAY_TOKENS_FILE is a setting of its own (more tokens, one per line, `#` comments): the generic
    mechanism leaves it alone, and tokens from both places still add up."""
    assert "gateway_tokens" in secret_fields() and "gateway_tokens" not in secret_file_vars()
    path = secret_file(tmp_path, "tokens", f"# ops\n{TOKEN}\n")
    monkeypatch.setenv("NEWSFLOW_GATEWAY_TOKENS_FILE", path)
    monkeypatch.setenv("NEWSFLOW_GATEWAY_TOKENS", "another-token-0123456789")
    s = Settings()
    assert (s.gateway_tokens, s.gateway_tokens_file) == ("another-token-0123456789", path)
    assert {TOKEN, "another-token-0123456789"} <= set(s.secret_values())
    assert "# ops" not in s.secret_values() and "ops" not in s.secret_values()


def test_secret_values_are_url_passwords_and_tokens(tmp_path):
    s = Settings(redis_url="redis://default:p%40ss-word@127.0.0.1:6379/0",
                 database_url="postgresql://app@db/news?password=qs-secret-1",
                 gateway_tokens=f"{TOKEN},second-token-0123456789")
    values = set(s.secret_values())
    assert {"p%40ss-word", "p@ss-word", "qs-secret-1", TOKEN, "second-token-0123456789"} <= values
    assert not any("127.0.0.1" in v or v == "default" for v in values), "hosts and user names are not secrets"
    assert Settings(redis_url="redis://127.0.0.1:6379/0").secret_values() == []


def test_repr_and_str_never_show_a_secret():
    s = Settings(redis_url=f"redis://default:{REDIS_PW}@redis.internal:6379/0", database_url=f"postgresql://app:{DB_PW}@db/news",
                 gateway_tokens=TOKEN)
    for text in (repr(s), str(s)):
        assert REDIS_PW not in text and DB_PW not in text and TOKEN not in text
        assert "redis://default:***@redis.internal:6379/0" in text, "the URL keeps its user and host"
        assert "gateway_tokens='***'" in text


def test_the_command_line_takes_no_secret():
    secretish = re.compile(r"token|password|passwd|secret|credential|url|dsn|key", re.IGNORECASE)

    def actions(parser: argparse.ArgumentParser):
        for action in parser._actions:
            yield action
            if isinstance(action, argparse._SubParsersAction):
                for sub in action.choices.values():
                    yield from actions(sub)

    offending = [(a.dest, a.option_strings) for a in actions(build_parser())
                 if secretish.search(a.dest) or any(secretish.search(o) for o in a.option_strings)]
    assert not offending, f"secrets come from the environment or files, never argv: {offending}"


def test_the_cli_refuses_a_variable_and_its_file_with_a_clear_message(tmp_path, monkeypatch):
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:6379/0")
    monkeypatch.setenv("REDIS_URL_FILE", secret_file(tmp_path, "redis", "redis://127.0.0.1:6379/0"))
    with pytest.raises(SystemExit) as exc:
        main(["status"])
    assert str(exc.value) == "newsflow: REDIS_URL and REDIS_URL_FILE are both set: give the secret one way, not two"


def test_up_keeps_file_secrets_out_of_its_childrens_environment(tmp_path, monkeypatch):
    url = f"redis://default:{REDIS_PW}@127.0.0.1:6379/0"
    monkeypatch.setenv("REDIS_URL_FILE", secret_file(tmp_path, "redis", url + "\n"))
    monkeypatch.setenv("DATABASE_URL_FILE", secret_file(tmp_path, "db", f"postgresql://app:{DB_PW}@db/news\n"))
    settings = Settings()
    env = _worker_env(settings, settings.redis_url)
    assert "REDIS_URL" not in env and "DATABASE_URL" not in env, "the children read the same files"
    assert REDIS_PW not in str(env) and DB_PW not in str(env)
    for var, value in env.items():
        monkeypatch.setenv(var, value)
    child = Settings()
    assert (child.redis_url, child.database_url) == (settings.redis_url, settings.database_url)


def test_a_value_of_ours_replaces_the_file_for_the_children(tmp_path, monkeypatch):
    """`newsflow demo` gives its workers their own DATABASE_URL: the file variable must go, or they would refuse."""
    monkeypatch.setenv("DATABASE_URL_FILE", secret_file(tmp_path, "db", f"postgresql://app:{DB_PW}@db/news"))
    settings = Settings()
    env = _worker_env(settings, "redis://127.0.0.1:6379/0", {"DATABASE_URL": "sqlite:///demo.db"})
    assert env["DATABASE_URL"] == "sqlite:///demo.db" and "DATABASE_URL_FILE" not in env
    for var, value in env.items():
        monkeypatch.setenv(var, value)
    monkeypatch.delenv("DATABASE_URL_FILE")
    assert Settings().database_url == "sqlite:///demo.db"
