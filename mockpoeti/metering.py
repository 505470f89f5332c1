"""Every chat call becomes a trace: priced, timed and counted, success or not.

Sits between tracing and auth, so that it sees auth failures of known keys
(auth fills in the key) and the handler's outcome, streams included.
"""

from __future__ import annotations

import time

from aiohttp import web

from .catalog import Model
from .errors import ApiError
from .state import Trace
from .tracing import JOURNAL, STATE, TRACE_ID
from .wire import error_body, peek_json

TRACE = web.RequestKey("mockpoeti.trace", Trace)  # request key: the trace being filled in


@web.middleware
async def meter_chat_calls(request: web.Request, handler) -> web.StreamResponse:
    if request.match_info.route.name != "chat":
        return await handler(request)
    state = request.app[STATE]
    trace = request[TRACE] = Trace(
        trace_id=request[TRACE_ID],
        account="",
        key_id=0,
        key_prefix="",
        created_at=state.clock.now(),
        routing_strategy=state.settings.routing_strategy,
    )
    started = time.perf_counter()
    try:
        response = await handler(request)
        trace.http_status = response.status
        if response.status >= 400 and trace.status == "success":
            trace.status = "error"
        return response
    except ApiError as e:
        fail(trace, *error_body(state.catalog, e))
        if trace.account and trace.model is None and request.can_read_body:
            # refused before the body was read (revoked key, limits): still say which model
            describe_call(trace, await peek_json(request), state.catalog.models)
        raise
    except Exception:
        fail(trace, *error_body(state.catalog, ApiError("internal_error")))
        raise
    finally:
        _mark_delivery(trace, (request.get(JOURNAL) or {}).get("delivery") or {})
        trace.latency_ms = round((time.perf_counter() - started) * 1000)
        if trace.account:  # unknown keys belong to no account: nothing to record
            state.record(trace)


def describe_call(trace: Trace, body: object, models: dict[str, Model]) -> None:
    """What the trace can tell from the body alone, valid or not."""
    if not isinstance(body, dict):
        return
    trace.model = body.get("model") if isinstance(body.get("model"), str) else None
    trace.stream = body.get("stream") is True
    model = models.get(trace.model) if trace.model else None
    trace.provider = model.owned_by if model else None


def fail(trace: Trace, status: int, body: dict) -> None:
    trace.status = "error"
    trace.http_status = status
    trace.error_code = body["error"]["code"]
    trace.error_message = body["error"]["message"]
    trace.prompt_tokens = trace.completion_tokens = 0
    trace.prompt_cost_nanos = trace.completion_cost_nanos = 0


def mark_fault(request: web.Request, kind: str) -> None:
    """A scripted fault is an error in the books, like the real failure it imitates."""
    trace = request.get(TRACE)
    if trace is not None:
        trace.status, trace.error_code, trace.error_message = "error", f"fault_{kind}", f"scripted fault: {kind}"


def _mark_delivery(trace: Trace, delivery: dict) -> None:
    """A client that hung up mid-stream leaves an interrupted, failed trace;
    a call that never got headers (reset, hang) has no HTTP status."""
    if delivery and not delivery.get("headers_sent"):
        trace.http_status = 0
    if delivery.get("interrupted"):
        trace.interrupted = True
        if trace.status == "success":
            trace.status, trace.error_code = "error", "client_disconnected"
            trace.error_message = "The client closed the connection before the answer was complete."
