"""A request's path through mockpoeti, top to bottom, in one place.

    arrive     a `Call` with its trace id and arrival time, against the server's state or
               the session's its path names (`/sessions/{id}/...`, answered as the root
               answers the rest of the path)
    route      which endpoint (a 404/405 waits: a scenario may answer any path)
    CORS       preflights answered
    auth       key -> account, revocation, rate limit and budget (`auth.py`)
    match      does a stub or scenario rule answer? (`scripting.py`)
    respond    the endpoint's handler, or the scripted answer, or a fault (`routes/`, `sse.py`)
    finish     stamp the headers, record the trace and the journal entry (`finish` below)

Every failure on the way is an `ApiError`, answered in the one error format.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
import traceback
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiohttp import web

from mockpoeti.base.endpoints import CHAT, OPENAPI
from mockpoeti.base.errors import ApiError
from mockpoeti.base.secrets import key_prefix, mask_keys
from mockpoeti.books.journal import JournalEntry
from mockpoeti.books.ledger import Trace, clip
from mockpoeti.books.meters import Meters
from mockpoeti.books.sessions import SESSION_PATH, Sessions
from mockpoeti.books.state import State
from mockpoeti.http import auth, cors, match
from mockpoeti.http.call import Call, Delivery
from mockpoeti.http.router import Router
from mockpoeti.http.wire import error_body, error_response, json_response

log = logging.getLogger("mockpoeti")

PUBLIC_ROUTES = frozenset({OPENAPI})
MAX_SERVER_ERRORS = 100  # kept for the test that caused them; a bug that fires on every request must not fill memory


class Pipeline:
    """The low-level server's one handler: every request goes through `__call__`."""

    def __init__(self, state: State, router: Router, sessions: Sessions) -> None:
        self.state = state
        self.router = router
        self.sessions = sessions

    async def __call__(self, request: web.BaseRequest) -> web.StreamResponse:
        arrived = asyncio.get_running_loop().time()
        path, state, prefix = request.path, self.state, ""
        if path.startswith(SESSION_PATH):  # the root's only cost of sessions
            found = self.sessions.route(path)
            if found is None:
                return no_session(state)
            session, path = found
            state, prefix = session.state, session.prefix
        call = Call(request, state, arrived, path, prefix)
        try:
            response = await self.answer(call)
        except ApiError as e:
            response = refuse(call, e)
        except asyncio.CancelledError:  # the client left (aiohttp cancels its handler)
            call.client_left()
            finish_or_crash(call, call.stream)
            raise
        except Exception:
            response = crashed(call)
        if not call.is_admin:
            await call.keep_body()  # refused before anyone read it: the journal still shows it
        return finish_or_crash(call, response) or response

    async def answer(self, call: Call) -> web.StreamResponse:
        route, call.params, missing = self.router.resolve(call.method, call.path)
        if route is not None:
            call.endpoint = route.name
        if cors.is_preflight(call.request):
            return cors.preflight(call.request)
        admin = route is not None and call.is_admin
        if admin:
            auth.check_admin(call)
        elif route is not None and route.name not in PUBLIC_ROUTES:
            auth.authenticate(call)  # first: a known key's call is traced whatever else is wrong with it
        auth.check_headers(call)
        handler = route.handler if route is not None else _answer_with(missing)
        playbook = call.state.playbook
        if admin or not playbook.active:
            return await handler(call)
        return await match.follow(call, playbook, handler)


def _answer_with(error: ApiError | None) -> Callable[[Call], Awaitable[web.StreamResponse]]:
    async def missing(call: Call) -> web.StreamResponse:
        raise error or ApiError("not_found")

    return missing


def no_session(root: State) -> web.StreamResponse:
    """A path under /sessions/ that names no live session: 404, seen by nobody's books
    (not the root's, whose ids and journal stay as if it never came)."""
    error = ApiError("not_found", "No such session: it was ended, it expired unused, or it never existed.")
    response = error_response(root.catalog, error)
    response.headers["X-Trace-ID"] = response.headers["x-request-id"] = "trace-poeti-" + secrets.token_hex(8)
    cors.allow_origin(response)
    return response


def refuse(call: Call, error: ApiError) -> web.StreamResponse:
    status, body = error_body(call.state.catalog, error)
    call.error = (status, error.code, body["error"]["message"])
    response = json_response(body, status=status, headers=error.headers)
    if error.close:
        response.force_close()
    return call.stream or response  # headers already out: all that is left is to end the stream


def crashed(call: Call) -> web.StreamResponse:
    """A bug of ours: log it, keep it for the test that caused it, answer in format."""
    errors = call.state.server_errors
    if len(errors) < MAX_SERVER_ERRORS:
        errors.append(traceback.format_exc())
    log.exception("internal error while serving %s %s", call.method, call.path)
    return refuse(call, ApiError("internal_error"))


def finish_or_crash(call: Call, response: web.StreamResponse | None) -> web.StreamResponse | None:
    """`finish`, under the same guard as the stages before it: a failure in the books or
    the journal is a bug of ours like any other, kept for the test and answered in format
    (the answer returned, to send instead; None when all went well)."""
    try:
        finish(call, response)
    except Exception:
        failed = crashed(call)
        if not failed.prepared:
            call.stamp(failed)
        return failed
    return None


def finish(call: Call, response: web.StreamResponse | None) -> None:
    """The request is over: its trace (chat calls of known keys) and its journal entry,
    from one measurement of how long it took."""
    delivery = call.delivery
    if response is not None and not response.prepared:
        call.stamp(response)
    status = response.status if response is not None and (delivery is None or delivery.headers_sent) else None
    elapsed_ms = (time.perf_counter() - call.started) * 1000
    state = call.state
    trace = None
    if call.endpoint == CHAT and call.key_seen is not None:
        trace = trace_of(call, status, round(elapsed_ms))
        state.record(trace)
    if not call.is_admin:
        count(call, state.meters, status, elapsed_ms, trace)
        headers = response.headers if response is not None and status is not None else {}
        entry = journal_entry(call, status, headers, round(elapsed_ms, 3))
        entry.keep_answer(*_answer(response, delivery))
        state.log_request(entry)


def count(call: Call, meters: Meters, status: int | None, elapsed_ms: float, trace: Trace | None) -> None:
    """What GET /metrics reports, from the same figures as the trace and the journal."""
    meters.request(call.endpoint, status, elapsed_ms / 1000)
    if trace is not None:
        model = trace.model if trace.model is not None and trace.model in call.state.catalog.models else ""  # as usage counts
        meters.chat(model, trace.prompt_tokens, trace.completion_tokens, trace.cost_nanos)
    if call.fault is not None:
        meters.fault(call.fault)
    delivery = call.delivery
    if delivery is not None and delivery.events_sent:
        meters.stream_chunks += delivery.events_sent


def _answer(response: web.StreamResponse | None, delivery: Delivery | None) -> tuple[bytes | None, int]:
    """The answer's first bytes as the journal keeps them, and its whole length."""
    if delivery is not None and delivery.bytes_sent:
        return delivery.answer(), delivery.bytes_sent
    if isinstance(response, web.Response):
        body = response.body
        if isinstance(body, bytes):
            return body, len(body)
    return None, 0


def journal_entry(call: Call, status: int | None, response_headers: Mapping[str, str], duration_ms: float) -> JournalEntry:
    note: dict[str, Any] = {}
    near_misses = None
    playbook = call.playbook
    if playbook is not None:
        note["rule"] = call.rule
        if call.rule is None and call.view is not None and playbook.rules:
            near_misses = playbook.near_misses(call.view)
    if call.fault is not None:
        note["fault"] = call.fault
    if call.fault_skipped:
        note["fault_skipped"] = call.fault_skipped
    if call.unknown_fields:
        note["unknown_fields"] = list(call.unknown_fields)
    if call.delivery is not None:
        note["delivery"] = call.delivery.to_json()
    request = call.request
    return JournalEntry.bounded(
        raw=call.raw,
        authenticated=call.key is not None,
        path=call.path,
        query=request.query,
        query_string=request.query_string,
        headers=request.headers,
        header_bytes=len(call.header_bytes),
        at=call.at,
        method=request.method,
        endpoint=call.endpoint,
        status=status,
        response_headers=response_headers,
        trace_id=call.trace_id,
        duration_ms=duration_ms,
        note=note,
        monotonic_s=call.arrived,
        near_misses=near_misses,
        timeline=None if call.delivery is None else call.delivery.timeline,
    )


def trace_of(call: Call, status: int | None, latency_ms: int) -> Trace:
    """A chat call as the books keep it: priced, timed, success or not."""
    key, state = call.key_seen, call.state
    assert key is not None
    trace = Trace(
        trace_id=call.trace_id,
        account=key.account,
        key_id=key.id,
        key_prefix=key_prefix(key.secret),
        created_at=call.at,
        routing_strategy=state.settings.routing_strategy,
        http_status=status or 0,
        latency_ms=latency_ms,
    )
    chat = call.chat
    if chat is not None:  # validated: its model is the catalog's
        trace.model, trace.provider, trace.stream = chat.model.id, chat.model.owned_by, chat.stream
    else:  # refused: what the body says, valid or not, so rejected calls keep their model
        body = call.body_as_sent()
        if isinstance(body, dict):
            model_id = body.get("model")
            if isinstance(model_id, str):
                model = state.catalog.models.get(model_id)
                trace.model = model_id if model is not None else mask_keys(clip(model_id))
                trace.provider = model.owned_by if model is not None else None
            trace.stream = body.get("stream") is True
    completion = call.completion
    if call.error is not None:
        trace.status = "error"
        trace.http_status, trace.error_code, message = call.error
        trace.error_message = clip(message, 1024)
        return trace
    if completion is not None:
        trace.completion_id = completion.id
        trace.prompt_tokens = completion.prompt_tokens
        trace.completion_tokens = _tokens_delivered(call, completion.completion_tokens)
        trace.price(state.catalog.models.get(completion.model))
    if call.fault is not None:
        trace.status, trace.error_code, trace.error_message = "error", f"fault_{call.fault}", f"scripted fault: {call.fault}"
    elif status is not None and status >= 400:
        trace.status = "error"
    if call.delivery is not None and call.delivery.interrupted:
        trace.interrupted = True
        if trace.status == "success":
            trace.status, trace.error_code = "error", "client_disconnected"
            trace.error_message = "The client closed the connection before the answer was complete."
    return trace


def _tokens_delivered(call: Call, tokens: int) -> int:
    """An interrupted answer is billed for what was sent: the share of its content chunks
    that went out (exact when chunks are tokens, the default), nothing if none did."""
    delivery = call.delivery
    if delivery is None or not delivery.interrupted:
        return tokens
    if not delivery.content_chunks:
        return tokens if delivery.completed else 0
    return round(tokens * min(delivery.chunks_sent, delivery.content_chunks) / delivery.content_chunks)
