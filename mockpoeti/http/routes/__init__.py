"""One module per endpoint family. Route names double as scenario `endpoint` names
(one name per path, whatever the method)."""

from __future__ import annotations

from mockpoeti.base import endpoints
from mockpoeti.books.sessions import Sessions
from mockpoeti.http.call import METRICS_PATH
from mockpoeti.http.router import Router
from mockpoeti.http.routes import admin, chat, keys, metrics, models, openapi, sessions, traces, ui, usage


def make_router(live: Sessions) -> Router:
    r = Router()
    r.add_post("/v1/chat/completions", chat.create_chat_completion, name=endpoints.CHAT)
    r.add_get("/v1/models", models.list_models, name=endpoints.MODELS)
    r.add_get("/v1/models/{model_id}", models.get_model, name=endpoints.MODEL)
    r.add_get("/api/v1/api-keys", keys.list_keys, name=endpoints.API_KEYS)
    r.add_post("/api/v1/api-keys", keys.create_key, name=endpoints.API_KEYS)
    r.add_get("/api/v1/api-keys/{key_id}", keys.get_key, name=endpoints.API_KEY)
    r.add_delete("/api/v1/api-keys/{key_id}", keys.revoke_key, name=endpoints.API_KEY)
    r.add_get("/api/v1/usage", usage.get_usage, name=endpoints.USAGE)
    r.add_get("/api/v1/request-traces", traces.list_traces, name=endpoints.TRACES)
    r.add_get("/api/v1/request-traces/stats", traces.get_stats, name=endpoints.TRACE_STATS)
    r.add_get("/api/v1/request-traces/{trace_id}", traces.get_trace, name=endpoints.TRACE)
    r.add_get("/openapi.json", openapi.get_document, name=endpoints.OPENAPI)
    r.add_get(METRICS_PATH, metrics.get_metrics, name="metrics")
    admin.add_routes(r)
    ui.add_routes(r)
    sessions.add_routes(r, live)
    return r
