"""The AsyncAPI document of every stream, served over HTTP by the gateway and the query API.

Public documentation, so no token. Generated once per app (about 0.2 s, FastStream's specification code,
imported only when first asked), for the app's own stream prefix.
"""

from __future__ import annotations

import functools
import json
from typing import Any

from fastapi import FastAPI, Response
from fastapi.responses import JSONResponse

from shared.settings import Settings


def add_asyncapi_routes(app: FastAPI, settings: Settings) -> None:
    document = functools.cache(lambda: _document(settings))

    @app.get("/asyncapi", tags=["docs"], summary="The AsyncAPI 3.0 document of every stream (YAML)",
             response_class=Response, responses={200: {"content": {"application/yaml": {}}}})
    def asyncapi_yaml() -> Response:
        return Response(document().to_yaml(), media_type="application/yaml")

    @app.get("/asyncapi.json", tags=["docs"], summary="The AsyncAPI 3.0 document of every stream (JSON)")
    def asyncapi_json() -> JSONResponse:
        return JSONResponse(json.loads(document().to_json()))


def _document(settings: Settings) -> Any:
    from shared.asyncapi import asyncapi_document

    return asyncapi_document(settings)
