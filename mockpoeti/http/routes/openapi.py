"""GET /openapi.json: the OpenAPI 3.1 document of everything mockpoeti serves."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from aiohttp import web

from mockpoeti.base.jsonio import dumps
from mockpoeti.base.yamlfiles import load_shipped_yaml
from mockpoeti.http.call import Call

DOCUMENT = Path(__file__).resolve().parents[1] / "openapi.yaml"


@cache  # a file shipped with the package: it never changes while we run
def openapi_json() -> str:
    return dumps(load_shipped_yaml(DOCUMENT))


async def get_document(call: Call) -> web.Response:
    return web.Response(text=openapi_json(), content_type="application/json")
