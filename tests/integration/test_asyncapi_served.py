"""The AsyncAPI document of every stream, served without a token by the gateway and the query API at `/asyncapi`
(YAML) and `/asyncapi.json` (JSON): the same document as the committed docs/asyncapi.yaml (`newsflow docs`),
for the streams the server really uses."""

from __future__ import annotations

from contextlib import asynccontextmanager
from pathlib import Path
from typing import AsyncIterator

import httpx
import pytest
import redis.asyncio as aredis
import yaml

from services.api.app import create_app as create_api
from services.api.database import Database
from services.gateway.app import create_app as create_gateway
from shared.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = yaml.safe_load((ROOT / "docs" / "asyncapi.yaml").read_text())
TOKEN = "asyncapi-test-token-0123456789"
SERVICES = ("gateway", "api")
# A route of each that needs the token, to show the documentation is public while the rest is not.
PROTECTED = {"gateway": ("POST", "/v1/articles"), "api": ("GET", "/v1/articles")}


@asynccontextmanager
async def client_for(service: str, prefix: str, redis: aredis.Redis, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    database = None
    if service == "gateway":
        app = create_gateway(Settings(stream_prefix=prefix, gateway_tokens=TOKEN), redis)
    else:
        database = Database.open(f"sqlite:///{tmp_path / 'api.db'}")
        app = create_api(Settings(stream_prefix=prefix, api_tokens=TOKEN), redis, database)
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=f"http://{service}") as client:
            yield client
    finally:
        if database is not None:
            await database.close()


@pytest.mark.parametrize("service", SERVICES)
async def test_served_without_a_token_and_equal_to_the_committed_document(service, redis_client, tmp_path):
    async with client_for(service, "newsflow", redis_client, tmp_path) as client:
        method, path = PROTECTED[service]
        assert (await client.request(method, path)).status_code == 401, "the rest still needs a token"

        served = await client.get("/asyncapi")
        assert served.status_code == 200
        assert served.headers["content-type"].startswith("application/yaml")
        document = yaml.safe_load(served.text)
        assert document == COMMITTED, "the served document differs from docs/asyncapi.yaml: run `newsflow docs`"
        assert document["asyncapi"].startswith("3.")
        assert {"newsflow:raw", "newsflow:enriched", "newsflow:dlq"} <= {c["address"] for c in document["channels"].values()}

        as_json = await client.get("/asyncapi.json")
        assert as_json.status_code == 200 and as_json.headers["content-type"].startswith("application/json")
        assert as_json.json() == COMMITTED

        again = await client.get("/asyncapi")
        assert again.text == served.text, "generated once and served the same"
        paths = (await client.get("/openapi.json")).json()["paths"]
        assert {"/asyncapi", "/asyncapi.json"} <= set(paths)


@pytest.mark.parametrize("service", SERVICES)
async def test_the_document_names_the_servers_own_streams(service, prefix, redis_client, tmp_path):
    async with client_for(service, prefix, redis_client, tmp_path) as client:
        document = (await client.get("/asyncapi.json")).json()
    addresses = {c["address"] for c in document["channels"].values()}
    assert {f"{prefix}:{s}" for s in ("fetch", "raw", "cleaned", "classified", "enriched", "dlq")} == addresses
    assert (await client_get_yaml(service, prefix, redis_client, tmp_path)) == document


async def client_get_yaml(service: str, prefix: str, redis: aredis.Redis, tmp_path: Path) -> dict:
    async with client_for(service, prefix, redis, tmp_path) as client:
        resp = await client.get("/asyncapi")
        assert resp.status_code == 200
        return yaml.safe_load(resp.text)


@pytest.mark.parametrize("service", SERVICES)
async def test_unknown_documentation_paths_are_404_and_writes_are_refused(service, redis_client, tmp_path):
    async with client_for(service, "newsflow", redis_client, tmp_path) as client:
        assert (await client.get("/asyncapi.xml")).status_code == 404
        assert (await client.post("/asyncapi", content=b"x")).status_code == 405
