"""POST /v1/chat/completions: validate, answer (JSON or SSE), fill in the trace."""

from __future__ import annotations

import random

from aiohttp import web

from ..auth import API_KEY
from ..chat import ChatRequest, parse_chat_request
from ..completion import Completion, apply_script, build_completion, stream_chunks
from ..errors import ApiError
from ..faults import plan_stream
from ..generate import language_of
from ..metering import TRACE, describe_call, mark_fault
from ..scripting import SCRIPT, Script
from ..sse import DONE, HEADERS, frame, offsets, perform
from ..templating import render
from ..tracing import STATE
from ..wire import BODY, error_body, json_response, read_json


async def create_chat_completion(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    trace = request[TRACE]
    body = await read_json(request)
    describe_call(trace, body, state.catalog.models)  # before validation: rejected calls keep their model
    chat = parse_chat_request(body, state.catalog.models)
    completion = build_completion(
        chat, state.text, state.seed, state.new_id("chatcmpl-poeti-"), int(state.clock.now())
    )
    script: Script | None = request.get(SCRIPT)
    if script is not None:
        completion = apply_script(completion, chat, script.respond, _scripted_content(request, chat, script))
    trace.completion_id = completion.id
    trace.prompt_tokens, trace.completion_tokens = completion.prompt_tokens, completion.completion_tokens
    trace.price(chat.model)
    if not chat.stream:
        return json_response(completion.body())
    return await _stream(request, chat, completion, script)


async def _stream(request: web.Request, chat: ChatRequest, completion: Completion, script: Script | None) -> web.StreamResponse:
    respond = script.respond if script else None
    pacing = respond.pacing if respond else None
    fault = respond.fault if respond else None
    kinds, chunks = stream_chunks(completion, chat.include_usage, pacing.chunk if pacing else "token")
    rnd = random.Random(script.seed if script else 0)
    error_frame = b""
    if fault is not None:
        mark_fault(request, fault.kind)
        error_frame = frame(error_body(request.app[STATE].catalog, ApiError(fault.error, fault.message))[1])
    steps = plan_stream(kinds, map(frame, chunks), offsets(kinds, pacing, rnd), DONE, fault, error_frame)
    status = respond.status if respond and respond.status and respond.status < 400 else 200
    return await perform(request, web.StreamResponse(status=status, headers=HEADERS), steps)


def _scripted_content(request: web.Request, chat: ChatRequest, script: Script) -> str | None:
    content = script.respond.content
    if content is None or "{{" not in content:
        return content
    state = request.app[STATE]
    faker = state.text.faker(language_of(chat.last_user_text))
    faker.seed_instance(script.seed)
    key = request.get(API_KEY)
    context = {
        "message": chat.last_user_text,
        "model": chat.model.id,
        "body": request.get(BODY),
        "headers": {k.lower(): v for k, v in request.headers.items()},
        "query": dict(request.query),
        "key": {"id": key.id, "name": key.name} if key else None,
    }
    return render(content, context, faker)
