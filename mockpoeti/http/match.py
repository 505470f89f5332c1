"""The match step: does a stub or an active scenario rule answer this request?

If one does, its response is carried out here (latency, a scripted error or
body, headers, status) or left on the call for the endpoint's handler
(content, tool calls, usage, stream pacing, stream faults). Faults on whole
bodies are applied here, after the handler, to whatever it answered.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import Final

from aiohttp import web

from mockpoeti.answers.faults import plan_body
from mockpoeti.answers.script import Respond
from mockpoeti.base.catalog import Catalog
from mockpoeti.base.errors import ApiError
from mockpoeti.base.jsonio import encode
from mockpoeti.base.regexes import search_all
from mockpoeti.http.call import Call
from mockpoeti.http.sse import perform
from mockpoeti.http.wire import error_response
from mockpoeti.scripting.matching import Playbook
from mockpoeti.scripting.view import RequestView

DEFAULT_RETRY_AFTER: Final = {429: "1", 503: "1"}  # so SDKs that honour Retry-After retry promptly
# RE2 work (~5 ns a unit at worst: message length x regex program size) done on the event loop;
# a request whose message regexes could take more is searched in a worker thread (RE2 lets go
# of the GIL), so a long prompt against many regexes keeps no other client waiting
MAX_LOOP_REGEX_WORK: Final = 4_000_000


async def follow(call: Call, playbook: Playbook, answer: Callable[[Call], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
    call.playbook = playbook
    key = call.key
    view = call.view = RequestView(call.endpoint, call.method, call.path, call.headers, await call.peek(),
                                   key.secret if key else None)
    if playbook.regex_work(view) > MAX_LOOP_REGEX_WORK:
        view.verdicts.update(await asyncio.to_thread(search_all, playbook.message_regexes(), view.message))
    decision = playbook.decide(view)
    if decision is None:
        return await answer(call)  # the near misses are worked out when the call is logged

    respond = decision.respond
    call.rule, call.respond, call.seed = decision.label, respond, decision.seed
    if respond.latency is not None:
        await asyncio.sleep(respond.latency.draw(random.Random(decision.seed)))
    if respond.headers:
        call.add_headers(dict(respond.headers))
    catalog = call.state.catalog
    if respond.error is not None and respond.fault is None:
        raise scripted_error(respond, catalog)

    response = scripted_response(catalog, respond) if respond.replaces_answer else await answer(call)
    if respond.status is not None and not response.prepared and response.status < 400:
        response.set_status(respond.status)  # a scripted status on the endpoint's own answer
    if respond.fault is None or response.prepared or not isinstance(response, web.Response):
        return response
    if respond.fault.of_the_model:  # the chat handler applied it to its completion, or said why not
        if call.fault is None and call.fault_skipped is None:
            call.fault_skipped = f"{respond.fault.kind} changes a chat completion, and this answer is none"
        return response
    body = response.body
    steps = plan_body(body if isinstance(body, bytes) else b"", respond.fault)
    if steps is None:
        call.fault_skipped = f"{respond.fault.kind} needs a streamed answer"
        return response
    call.fault = respond.fault.kind
    broken = web.StreamResponse(status=response.status, headers={"Content-Type": response.content_type})
    return await perform(call, broken, steps)


def scripted_headers(respond: Respond, status: int | None) -> dict[str, str]:
    """The rule's headers, with a Retry-After on a 429 or 503 that sets none."""
    headers = dict(respond.headers)
    if status in DEFAULT_RETRY_AFTER:
        headers.setdefault("Retry-After", DEFAULT_RETRY_AFTER[status])
    return headers


def scripted_error(respond: Respond, catalog: Catalog) -> ApiError:
    assert respond.error is not None
    known = catalog.errors.get(respond.error)
    status = respond.status or (known.status if known else None)
    return ApiError(respond.error, respond.message, headers=scripted_headers(respond, status), status=respond.status)


def scripted_response(catalog: Catalog, respond: Respond) -> web.Response:
    """An answer that replaces the endpoint's own: an error, or a raw status/body."""
    if respond.error is not None:
        return error_response(catalog, scripted_error(respond, catalog))
    status = respond.status or 200
    headers = scripted_headers(respond, status)
    if isinstance(respond.body, str):
        kind = "application/json" if respond.body.lstrip()[:1] in ("{", "[") else "text/plain"
        return web.Response(text=respond.body, status=status, headers=headers, content_type=kind)
    return web.Response(body=encode(respond.body), status=status, headers=headers, content_type="application/json")
