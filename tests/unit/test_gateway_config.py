"""The gateway's plain functions and its place in `newsflow up` (no Redis)."""

from __future__ import annotations

import pytest

from services.cli import build_parser, default_stages
from services.gateway.validation import RequestError, article_errors, decode_items, load_tokens, token_ok
from shared.settings import Settings
from shared.topology import STAGES

TOKEN = "a-long-enough-token-0123"


def test_up_runs_the_gateway_only_with_tokens(tmp_path):
    assert default_stages(Settings()) == ["cleaner", "classifier", "storage"]
    assert default_stages(Settings(gateway_tokens=TOKEN)) == ["gateway", "cleaner", "classifier", "storage"]
    assert default_stages(Settings(gateway_tokens_file=str(tmp_path / "t"))) == ["gateway", "cleaner", "classifier", "storage"]
    assert default_stages(Settings(sources_file="s.toml")) == list(STAGES)
    assert build_parser().parse_args(["worker", "gateway"]).stage == "gateway"
    assert build_parser().parse_args(["up", "--stages", "gateway,cleaner"]).stages == "gateway,cleaner"


def test_token_comparison():
    tokens = load_tokens(Settings(gateway_tokens=f" {TOKEN} ,other-token-abcdefghijkl,"))
    assert tokens == [TOKEN, "other-token-abcdefghijkl"]
    assert token_ok(f"Bearer {TOKEN}", tokens) and token_ok(f"bearer  {TOKEN} ", tokens)
    assert token_ok("Bearer other-token-abcdefghijkl", tokens)
    for bad in (None, "", "Bearer", "Bearer ", f"Basic {TOKEN}", f"Bearer {TOKEN[:-1]}", f"Bearer {TOKEN}x", "Bearer \udcff"):
        assert not token_ok(bad, tokens), bad
    assert load_tokens(Settings(gateway_allow_anonymous=True)) == []


def test_article_errors_follow_parse_raw_leniency():
    assert article_errors({"text": "t", "html": 5}) == [{"loc": ["html"], "msg": "Input should be a valid string"}]
    # A bad optional field is dropped, not reported; the remaining error is.
    assert [e["loc"] for e in article_errors({"published_at": "soon", "title": 3})] == [[]]
    assert [e["loc"] for e in article_errors({"text": "t", "id": "x" * 300})] == [["id"]]


def test_ndjson_counts_before_parsing_and_names_lines():
    with pytest.raises(RequestError) as exc:
        decode_items(b"{}\n" * 3, "application/x-ndjson; charset=utf-8", max_items=2)
    assert exc.value.status == 413
    assert decode_items(b'{"a":1}\r\n\r\n{"b":2}', "application/x-ndjson", max_items=2) == [{"a": 1}, {"b": 2}]
    with pytest.raises(RequestError) as exc:
        decode_items(b'{"a":1}\n\xff\n', "application/x-ndjson", max_items=5)
    assert exc.value.status == 422 and exc.value.errors == [{"index": 1, "line": 2, "loc": [], "msg": "invalid JSON: not UTF-8"}]
