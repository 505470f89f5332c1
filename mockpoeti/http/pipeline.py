"""A request's path through mockpoeti, top to bottom, in one place.

    arrive     a `Call` with its trace id and arrival time, against the server's state or
               the session's its path names (`/sessions/{id}/...`, answered as the root
               answers the rest of the path)
    route      which endpoint (a 404/405 waits: a scenario may answer any path)
    CORS       preflights answered
    auth       key -> account, revocation, rate limit and budget (`auth.py`)
    match      does a stub or scenario rule answer? (`match.py`)
    respond    the endpoint's handler, or the scripted answer, or a fault (`routes/`, `sse.py`)
    finish     stamp the headers, record the trace and the journal entry (`finish` below)

Every failure on the way is an `ApiError`, answered in the one error format.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import traceback
from collections.abc import Awaitable, Callable, Mapping
from time import perf_counter
from types import MappingProxyType
from typing import Any, Final

from aiohttp import web

from mockpoeti.base.endpoints import CHAT, OPENAPI
from mockpoeti.base.errors import ApiError
from mockpoeti.base.secrets import mask_keys
from mockpoeti.books.journal import JournalEntry
from mockpoeti.books.ledger import Trace, clip, costs
from mockpoeti.books.meters import Meters
from mockpoeti.books.sessions import NO_SESSION, SESSION_PATH, Sessions
from mockpoeti.books.state import State
from mockpoeti.http import auth, cors, match
from mockpoeti.http.call import Call
from mockpoeti.http.router import Router
from mockpoeti.http.wire import error_body, error_response, json_response

log = logging.getLogger("mockpoeti")

PUBLIC_ROUTES: Final = frozenset({OPENAPI})
MAX_SERVER_ERRORS: Final = 100  # kept for the test that caused them; a bug that fires on every request must not fill memory


class Pipeline:
    """The low-level server's one handler: every request goes through `__call__`."""

    def __init__(self, state: State, router: Router, sessions: Sessions) -> None:
        self.state = state
        self.router = router
        self.sessions = sessions
        # the serving loop's clock, found once: asyncio.get_running_loop() makes a getpid() system call
        # on each use in Python 3.11, and aiohttp makes enough of them already
        self.loop_time = asyncio.get_running_loop().time

    async def __call__(self, request: web.BaseRequest) -> web.StreamResponse:
        arrived = self.loop_time()
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
    response = error_response(root.catalog, ApiError("not_found", NO_SESSION), "trace-poeti-" + secrets.token_hex(8))
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
    elapsed_ms = (perf_counter() - call.started) * 1000
    state = call.state
    trace = None
    if call.endpoint == CHAT and call.key_seen is not None:
        trace = trace_of(call, status, round(elapsed_ms))
        state.record(trace)
    if not call.is_admin:
        count(call, state.meters, status, elapsed_ms, trace)
        state.log_request(journal_entry(call, response, status, round(elapsed_ms, 3)))


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


_EMPTY: Final[Mapping[str, str]] = MappingProxyType({})  # no query string, or no headers sent


def journal_entry(call: Call, response: web.StreamResponse | None, status: int | None, duration_ms: float) -> JournalEntry:
    note: dict[str, Any] = {}
    near_misses = None
    playbook = call.playbook
    if playbook is not None:
        note["rule"] = call.rule
        if call.rule is None and call.view is not None and playbook.has_rules:
            near_misses = playbook.noted(call.view)
    if call.fault is not None:
        note["fault"] = call.fault
    if call.fault_skipped:
        note["fault_skipped"] = call.fault_skipped
    if call.unknown_fields:
        note["unknown_fields"] = list(call.unknown_fields)
    delivery = call.delivery
    answer: bytes | Callable[[], bytes] | None = None
    answer_size = 0
    if delivery is not None:
        note["delivery"] = delivery.to_json()
        if delivery.bytes_sent:
            answer, answer_size = delivery.answer(), delivery.bytes_sent
    if answer is None and isinstance(response, web.Response) and isinstance(response.body, bytes):
        answer = response.body
        answer_size = len(answer)
    request = call.request
    query_string = request.query_string
    return JournalEntry.bounded(
        call.at, request.method, call.path, request.query if query_string else _EMPTY, len(query_string),
        request.headers, len(call.header_bytes), call.raw, call.key is not None, call.endpoint, status,
        response.headers if response is not None and status is not None else _EMPTY, call.trace_id, duration_ms, note,
        call.arrived, near_misses, None if delivery is None else delivery.timeline, answer, answer_size,
    )


def trace_of(call: Call, status: int | None, latency_ms: int) -> Trace:
    """A chat call as the books keep it: priced, timed, success or not. (Made in one positional
    call, every field worked out first: one per chat call.)"""
    key, state = call.key_seen, call.state
    assert key is not None
    model_id = provider = None
    stream = False
    chat = call.chat
    if chat is not None:  # validated: its model is the catalog's
        model_id, provider, stream = chat.model.id, chat.model.owned_by, chat.stream
    else:  # refused: what the body says, valid or not, so rejected calls keep their model
        body = call.body_as_sent()
        if isinstance(body, dict):
            sent = body.get("model")
            if isinstance(sent, str):
                known = state.catalog.models.get(sent)
                model_id = sent if known is not None else mask_keys(clip(sent))
                provider = known.owned_by if known is not None else None
            stream = body.get("stream") is True
    outcome, http_status, error_code, error_message = "success", status or 0, None, None
    prompt_tokens = completion_tokens = prompt_cost = completion_cost = 0
    completion_id, interrupted = None, False
    completion, delivery = call.completion, call.delivery
    if call.error is not None:
        outcome = "error"
        http_status, error_code, message = call.error
        error_message = clip(message, 1024)
    else:
        if completion is not None:
            completion_id = completion.id
            prompt_tokens = completion.prompt_tokens
            completion_tokens = _tokens_delivered(call, completion.completion_tokens)
            prompt_cost, completion_cost = costs(state.catalog.models.get(completion.model), prompt_tokens, completion_tokens)
        if call.fault is not None:
            outcome, error_code, error_message = "error", f"fault_{call.fault}", f"scripted fault: {call.fault}"
        elif status is not None and status >= 400:
            outcome = "error"
        if delivery is not None and delivery.interrupted:
            interrupted = True
            if outcome == "success":
                outcome, error_code = "error", "client_disconnected"
                error_message = "The client closed the connection before the answer was complete."
    return Trace(
        call.trace_id, key.account, key.id, key.prefix, call.at, state.settings.routing_strategy, model_id, provider,
        outcome, http_status, stream, prompt_tokens, completion_tokens, prompt_cost, completion_cost,
        prompt_cost + completion_cost, latency_ms, error_code, error_message, completion_id, interrupted,
    )


def _tokens_delivered(call: Call, tokens: int) -> int:
    """An interrupted answer is billed for what was sent: the share of its content chunks
    that went out (exact when chunks are tokens, the default), nothing if none did."""
    delivery = call.delivery
    if delivery is None or not delivery.interrupted:
        return tokens
    if not delivery.content_chunks:
        return tokens if delivery.completed else 0
    return round(tokens * min(delivery.chunks_sent, delivery.content_chunks) / delivery.content_chunks)
