"""One module per endpoint family. Route names double as scenario `endpoint` names
(one name per path, whatever the method)."""

from __future__ import annotations

from ..router import Router
from . import admin, chat, keys, models, openapi, traces, usage


def make_router() -> Router:
    r = Router()
    r.add_post("/v1/chat/completions", chat.create_chat_completion, name="chat")
    r.add_get("/v1/models", models.list_models, name="models")
    r.add_get("/v1/models/{model_id}", models.get_model, name="model")
    r.add_get("/api/v1/api-keys", keys.list_keys, name="api_keys")
    r.add_post("/api/v1/api-keys", keys.create_key, name="api_keys")
    r.add_get("/api/v1/api-keys/{key_id}", keys.get_key, name="api_key")
    r.add_delete("/api/v1/api-keys/{key_id}", keys.revoke_key, name="api_key")
    r.add_get("/api/v1/usage", usage.get_usage, name="usage")
    r.add_get("/api/v1/request-traces", traces.list_traces, name="traces")
    r.add_get("/api/v1/request-traces/stats", traces.get_stats, name="trace_stats")
    r.add_get("/api/v1/request-traces/{trace_id}", traces.get_trace, name="trace")
    r.add_get("/openapi.json", openapi.get_document, name="openapi")
    admin.add_routes(r)
    return r
