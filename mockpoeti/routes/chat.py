"""POST /v1/chat/completions: validate, answer (JSON or SSE), fill in the trace."""

from __future__ import annotations

from aiohttp import web

from ..chat import parse_chat_request
from ..completion import build_completion, stream_chunks
from ..metering import TRACE
from ..sse import send_all
from ..tracing import STATE
from ..wire import json_response, read_json


async def create_chat_completion(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    trace = request[TRACE]
    body = await read_json(request)
    if isinstance(body, dict):
        # Known before validation, so even a rejected call is traced with its model.
        trace.model = body.get("model") if isinstance(body.get("model"), str) else None
        trace.stream = body.get("stream") is True
        model = state.catalog.models.get(trace.model) if trace.model else None
        trace.provider = model.owned_by if model else None
    chat = parse_chat_request(body, state.catalog.models)
    completion = build_completion(
        chat, state.text, state.seed, state.new_id("chatcmpl-poeti-"), int(state.clock.now())
    )
    trace.completion_id = completion.id
    trace.prompt_tokens, trace.completion_tokens = completion.prompt_tokens, completion.completion_tokens
    trace.price(chat.model)
    if not chat.stream:
        return json_response(completion.body())
    chunks = [chunk for _, chunk in stream_chunks(completion, chat.include_usage)]
    return await send_all(request, chunks)
