"""The match step: does an active scenario rule answer this request?

If one does, its response is carried out here (latency, a scripted error or
body, headers, status) or handed to the endpoint's handler as overrides
(content, tool calls, usage, stream pacing, stream faults). Faults on whole
bodies are applied here, after the handler, to whatever it answered.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass

from aiohttp import web

from .auth import API_KEY
from .catalog import Catalog
from .errors import ApiError
from .faults import plan_body
from .matching import RequestView, view_of
from .metering import mark_fault
from .scenario import Respond
from .sse import perform
from .tracing import EXTRA_HEADERS, JOURNAL, STATE
from .wire import encode, error_response, peek_json

DEFAULT_RETRY_AFTER = {429: "1", 503: "1"}  # so SDKs that honour Retry-After retry promptly


@dataclass(frozen=True, slots=True)
class Script:
    respond: Respond
    seed: int  # seeds this answer's template, timing and content


SCRIPT = web.RequestKey("mockpoeti.script", Script)  # the Script chosen for this request


@web.middleware
async def follow_scenarios(request: web.Request, handler) -> web.StreamResponse:
    state = request.app[STATE]
    playbook = state.playbook
    endpoint = request.match_info.route.name
    if not playbook.active or (endpoint or "").startswith("admin"):
        return await handler(request)
    view = await request_view(request, endpoint)
    decision = playbook.decide(view)
    note = request.setdefault(JOURNAL, {})
    if decision is None:
        note["rule"] = None
        if playbook.rules:
            note["near_misses"] = playbook.near_misses(view)
        return await handler(request)

    respond = decision.respond
    note["rule"] = decision.label
    request[SCRIPT] = Script(respond, decision.seed)
    if respond.latency is not None:
        await asyncio.sleep(respond.latency.draw(random.Random(decision.seed)))
    if respond.headers:
        request[EXTRA_HEADERS] = {**(request.get(EXTRA_HEADERS) or {}), **dict(respond.headers)}
    if respond.error is not None and respond.fault is None:
        raise scripted_error(respond, state.catalog)

    response = scripted_response(state.catalog, respond) if respond.replaces_answer else await handler(request)
    if respond.status is not None and not response.prepared and response.status < 400:
        response.set_status(respond.status)  # a scripted status on the endpoint's own answer
    if respond.fault is None or response.prepared or not isinstance(response, web.Response):
        return response
    steps = plan_body(response.body or b"", respond.fault)
    if steps is None:
        note["fault_skipped"] = f"{respond.fault.kind} needs a streamed answer"
        return response
    mark_fault(request, respond.fault.kind)
    broken = web.StreamResponse(status=response.status, headers={"Content-Type": response.content_type})
    return await perform(request, broken, steps)


async def request_view(request: web.Request, endpoint: str | None) -> RequestView:
    body = await peek_json(request) if request.can_read_body else None
    key = request.get(API_KEY)
    return view_of(endpoint, request.method, request.path, request.headers, body, key.secret if key else None)


def scripted_error(respond: Respond, catalog: Catalog) -> ApiError:
    headers = dict(respond.headers)
    known = catalog.errors.get(respond.error)
    status = respond.status or (known.status if known else None)
    if status in DEFAULT_RETRY_AFTER:
        headers.setdefault("Retry-After", DEFAULT_RETRY_AFTER[status])
    return ApiError(respond.error, respond.message, headers=headers, status=respond.status)


def scripted_response(catalog: Catalog, respond: Respond) -> web.Response:
    """An answer that replaces the endpoint's own: an error, or a raw status/body."""
    if respond.error is not None:
        return error_response(catalog, scripted_error(respond, catalog))
    headers = dict(respond.headers)
    status = respond.status or 200
    if status in DEFAULT_RETRY_AFTER:
        headers.setdefault("Retry-After", DEFAULT_RETRY_AFTER[status])
    if isinstance(respond.body, str):
        kind = "application/json" if respond.body.lstrip()[:1] in ("{", "[") else "text/plain"
        return web.Response(text=respond.body, status=status, headers=headers, content_type=kind)
    return web.Response(body=encode(respond.body), status=status, headers=headers, content_type="application/json")
