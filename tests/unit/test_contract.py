"""The public contract: models, lenient parsing, stable ids, and the committed JSON Schema and AsyncAPI files."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from shared.contract import SCHEMA_VERSION, RawArticle, json_schemas, parse_raw, stable_id
from shared.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def test_raw_needs_html_or_text():
    with pytest.raises(ValueError, match="one of 'html' or 'text'"):
        parse_raw({"title": "t"})
    with pytest.raises(ValueError, match="one of 'html' or 'text'"):
        parse_raw({"text": "   ", "html": ""})
    assert parse_raw({"html": "<p>x</p>"})[0].html == "<p>x</p>"


@pytest.mark.parametrize("body", [[1], "s", None, 3])
def test_raw_must_be_an_object(body):
    with pytest.raises(ValueError, match="JSON object"):
        parse_raw(body)


def test_wrong_types_in_required_content_are_schema_violations_with_paths():
    with pytest.raises(ValueError, match=r"schema violation: html"):
        parse_raw({"html": ["not", "a", "string"]})


def test_bad_optional_fields_are_dropped_with_warnings():
    raw, warnings = parse_raw({"text": "x", "published_at": "yesterday-ish", "metadata": "nope", "language": 7})
    assert raw.published_at is None and raw.metadata == {} and raw.language is None
    assert len(warnings) == 3 and any("published_at" in w for w in warnings)


def test_ids_are_stable_and_prefer_the_given_one():
    a = RawArticle(text="same", url="https://x.example/1")
    assert a.article_id() == RawArticle(text="other", url="https://x.example/1").article_id()
    assert RawArticle(text="same").article_id() == stable_id(None, "same") != a.article_id()
    assert RawArticle(text="x", id="given").article_id() == "given"


def test_committed_json_schemas_match_the_models():
    for name, schema in json_schemas().items():
        path = ROOT / "shared" / "schemas" / f"{name}.v{SCHEMA_VERSION}.schema.json"
        committed = json.loads(path.read_text())
        committed = {k: v for k, v in committed.items() if k not in ("$schema", "$id")}
        assert committed == json.loads(json.dumps(schema)), f"{path} is stale: run `newsflow schemas --out shared/schemas`"


def test_json_schema_accepts_what_a_redis_cli_producer_writes_and_rejects_garbage():
    schema = json.loads((ROOT / "shared" / "schemas" / "raw.v1.schema.json").read_text())
    jsonschema.validate({"text": "SEOUL, South Korea (AP) — North Korea said..."}, schema)
    jsonschema.validate({"html": "<p>x</p>", "url": "https://x.example", "metadata": {"k": 1}}, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"title": "no content"}, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"html": 5}, schema)


def test_committed_asyncapi_matches_the_apps():
    from shared.asyncapi import asyncapi_yaml

    committed = yaml.safe_load((ROOT / "docs" / "asyncapi.yaml").read_text())
    assert committed == yaml.safe_load(asyncapi_yaml(Settings(stream_prefix="newsflow"))), "docs/asyncapi.yaml is stale: run `newsflow docs`"
    assert committed["asyncapi"].startswith("3.")
    addresses = {c["address"] for c in committed["channels"].values()}
    assert {"newsflow:raw", "newsflow:cleaned", "newsflow:classified", "newsflow:enriched", "newsflow:dlq"} <= addresses
