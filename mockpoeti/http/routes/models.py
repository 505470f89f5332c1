"""GET /v1/models and /v1/models/{id}: the catalog, with prices and context lengths."""

from __future__ import annotations

from aiohttp import web

from mockpoeti.base.errors import ApiError
from mockpoeti.http.call import Call
from mockpoeti.http.wire import json_response


async def list_models(call: Call) -> web.Response:
    models = call.state.catalog.models.values()
    return json_response({"object": "list", "data": [m.to_json() for m in models]})


async def get_model(call: Call) -> web.Response:
    model_id = call.params["model_id"]
    model = call.state.catalog.models.get(model_id)
    if model is None:
        raise ApiError("model_not_found", f"The model '{model_id}' does not exist or you do not have access to it.")
    return json_response(model.to_json())
