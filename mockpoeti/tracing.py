"""The outermost step: a trace id for every request, one error format for every
failure, `X-Trace-ID` on every response, and a journal entry for each call."""

from __future__ import annotations

import asyncio
import logging
import time
import traceback

from aiohttp import web

from .cors import allow_origin
from .errors import ApiError
from .journal import JournalEntry
from .state import State
from .wire import BODY, error_response, peek_json

STATE = web.AppKey("mockpoeti.state", State)
TRACE_ID = web.RequestKey("mockpoeti.trace_id", str)
ARRIVED = web.RequestKey("mockpoeti.arrived", float)  # loop time the request arrived: stream deadlines count from it
EXTRA_HEADERS = web.RequestKey("mockpoeti.extra_headers", dict)  # rate-limit headers (auth), scripted headers (scenarios)
STREAM = web.RequestKey("mockpoeti.stream", web.StreamResponse)  # set by the SSE writer once headers are sent
JOURNAL = web.RequestKey("mockpoeti.journal", dict)  # extra journal fields a handler adds (stream info, rule)

log = logging.getLogger("mockpoeti")

_HTTP_CODES = {400: "invalid_request", 404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}


@web.middleware
async def trace_requests(request: web.Request, handler) -> web.StreamResponse:
    state = request.app[STATE]
    request[TRACE_ID] = state.new_trace_id()
    request[ARRIVED] = asyncio.get_running_loop().time()
    started = time.perf_counter()
    try:
        response = await handler(request)
    except ApiError as e:
        response = error_response(state.catalog, e)
    except web.HTTPException as e:
        response = error_response(state.catalog, _from_http(e))
    except Exception:
        response = _crashed(request, state)
    if not response.prepared:
        stamp(request, response)
    if not request.path.startswith("/__admin/"):
        if request.can_read_body and BODY not in request:
            await peek_json(request)  # refused before anyone read it: the journal still shows it
        state.log_request(_journal_entry(request, response, started))
    return response


def stamp(request: web.Request, response: web.StreamResponse) -> None:
    """What every answer carries: X-Trace-ID (and x-request-id), the call's extra
    headers (rate limits, scripted ones), CORS. Called just before the headers
    go out, here or by the SSE writer; an on_response_prepare hook would do the
    same, but aiohttp's signals cost 7% of throughput."""
    trace_id = request[TRACE_ID]
    response.headers["X-Trace-ID"] = trace_id
    response.headers.setdefault("x-request-id", trace_id)
    response.headers.update(request.get(EXTRA_HEADERS) or {})
    allow_origin(response)


def _from_http(e: web.HTTPException) -> ApiError:
    code = _HTTP_CODES.get(e.status, "internal_error" if e.status >= 500 else "invalid_request")
    headers = {"Allow": e.headers["Allow"]} if "Allow" in e.headers else None
    if e.status == 405:
        message = f"Method {e.method} is not allowed on this endpoint; allowed: {', '.join(sorted(e.allowed_methods))}."
    elif e.status == 404:
        message = None
    else:
        message = e.text if e.text and not e.text.startswith(f"{e.status}:") else None
    return ApiError(code, message, headers=headers)


def _crashed(request: web.Request, state: State) -> web.StreamResponse:
    """A bug of ours: log it, keep it for the test that caused it, answer in format."""
    state.server_errors.append(traceback.format_exc())
    log.exception("internal error while serving %s %s", request.method, request.path)
    stream = request.get(STREAM)
    if stream is not None:
        return stream  # headers are out: all we can do is end the stream
    return error_response(state.catalog, ApiError("internal_error"))


def _journal_entry(request: web.Request, response: web.StreamResponse, started: float) -> JournalEntry:
    note = request.get(JOURNAL) or {}
    return JournalEntry(
        at=request.app[STATE].clock.now(),
        method=request.method,
        path=request.path,
        query=request.query,
        headers=request.headers,
        body=request.get(BODY),
        endpoint=request.match_info.route.name,
        status=response.status if note.get("delivery", {}).get("headers_sent", True) else None,
        trace_id=request[TRACE_ID],
        duration_ms=round((time.perf_counter() - started) * 1000, 3),
        note=note,
        monotonic_s=request[ARRIVED],
    )
