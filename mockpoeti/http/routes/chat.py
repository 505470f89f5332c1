"""POST /v1/chat/completions: validate, answer (JSON or SSE); the pipeline traces it."""

from __future__ import annotations

import random
from collections.abc import Iterator
from functools import partial

from aiohttp import web

from mockpoeti.answers.chat_request import ChatRequest, parse_chat_request
from mockpoeti.answers.completion import DONE, Completion, StreamedAnswer, apply_script, build_completion, frame, replayable
from mockpoeti.answers.faults import Step, plan_stream
from mockpoeti.answers.generate import language_of
from mockpoeti.answers.misbehaviour import misbehave
from mockpoeti.answers.script import Fault, Pacing
from mockpoeti.answers.templating import TemplateTooLargeError, render
from mockpoeti.base.errors import ApiError
from mockpoeti.base.secrets import mask_header, mask_param
from mockpoeti.http.call import Call
from mockpoeti.http.sse import HEADERS, WholeStream, offsets, perform
from mockpoeti.http.wire import encoded_response, error_body


async def create_chat_completion(call: Call) -> web.StreamResponse:
    state = call.state
    chat = call.chat = parse_chat_request(await call.json(), state.catalog.models)
    call.unknown_fields = chat.unknown_fields
    completion = build_completion(chat, state.text, state.seed, state.new_id("chatcmpl-poeti-"), int(call.at))
    if call.respond is not None:
        completion = apply_script(completion, chat, call.respond, _scripted_content(call, chat))
        fault = call.respond.fault
        if fault is not None and fault.of_the_model:
            completion, call.fault_skipped = misbehave(completion, chat, fault, state.text)
            call.fault = None if call.fault_skipped else fault.kind
    call.completion = completion
    if not chat.stream:
        return encoded_response(completion.json())
    return await _stream(call, chat, completion)


async def _stream(call: Call, chat: ChatRequest, completion: Completion) -> web.StreamResponse:
    respond = call.respond
    pacing = respond.pacing if respond else None
    fault = respond.fault if respond and respond.fault and not respond.fault.of_the_model else None  # the model's: done
    error_frame = b""
    if fault is not None:
        call.fault = fault.kind
        error_frame = frame(error_body(call.state.catalog, ApiError(fault.error, fault.message))[1])
    answer = StreamedAnswer(completion, chat.include_usage, pacing.chunk if pacing else "token")
    steps = _plan(completion, chat.include_usage, pacing, call.seed, fault, error_frame, answer)
    # A short answer is kept by the journal as what makes the same plan again, not as the bytes written.
    replay = partial(_plan, completion, chat.include_usage, pacing, call.seed, fault, error_frame) if replayable(
        completion) else None
    status = respond.status if respond and respond.status and respond.status < 400 else 200
    kind = web.StreamResponse if fault is not None or (pacing is not None and pacing.paces) else WholeStream
    return await perform(call, kind(status=status, headers=HEADERS), steps, answer.kinds.count("content"), replay)


def _plan(completion: Completion, include_usage: bool, pacing: Pacing | None, seed: int, fault: Fault | None,
          error_frame: bytes, answer: StreamedAnswer | None = None) -> Iterator[Step]:
    """The stream's plan: a pure function of what it is given (made again, the same)."""
    answer = answer or StreamedAnswer(completion, include_usage, pacing.chunk if pacing else "token")
    deadlines = None
    if pacing is not None:  # a generator is seeded only when something is drawn: it is 2.5 KB, and ~5 us to seed
        deadlines = offsets(answer.kinds, pacing, random.Random(seed) if pacing.drawn else None)
    frames = answer.frames() if deadlines is not None or fault is not None else ()  # (else: written from its blocks)
    return plan_stream(answer.kinds, frames, deadlines, DONE, fault, error_frame, answer.blocks)


def _scripted_content(call: Call, chat: ChatRequest) -> str | None:
    assert call.respond is not None
    content = call.respond.content
    if content is None or "{{" not in content:
        return content
    faker = call.state.text.faker(language_of(chat.last_user_text))
    faker.seed_instance(call.seed)
    key = call.key
    context = {
        "message": chat.last_user_text,
        "model": chat.model.id,
        "body": call.body,
        "headers": {k.lower(): mask_header(k, v) for k, v in call.headers.items()},  # templates never see a whole key
        "query": {k: mask_param(k, v) for k, v in call.query.items()},
        "key": {"id": key.id, "name": key.name} if key else None,
        "last": chat.last_by_role,  # {{ last.tool }}: the text of the last message of that role
    }
    try:
        return render(content, context, faker)
    except TemplateTooLargeError as e:
        raise ApiError("invalid_request", f"The content scripted by {call.rule} {e}.") from None
