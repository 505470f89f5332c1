"""`Completion.json()` splices the usual answer into a fixed frame instead of serialising
`body()`: for every kind of answer, the bytes must be the ones `body()` serialises to."""

from __future__ import annotations

import pytest
from sources import from_source

from mockpoeti.answers.chat_request import parse_chat_request
from mockpoeti.answers.completion import apply_script, build_completion
from mockpoeti.answers.script import Respond
from mockpoeti.base.jsonio import encode
from mockpoeti.http.app import make_state

TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]
SCHEMA = {"type": "json_schema", "json_schema": {"name": "answer", "schema": {
    "type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]}}}
VARIANTS = {
    "text": {},
    "two choices": {"n": 2},
    "cut by max_tokens": {"max_tokens": 3},
    "cut by stop": {"stop": ["e"]},
    "logprobs": {"logprobs": True, "top_logprobs": 2},
    "service tier": {"service_tier": "auto"},
    "tools": {"tools": TOOLS},
    "tools not used": {"tools": TOOLS, "tool_choice": "none"},
    "json mode": {"response_format": {"type": "json_object"}},
    "json schema": {"response_format": SCHEMA},
    "another model": {"model": "claude-3-5-sonnet"},
}
PROMPTS = [
    "What is the weather in Paris?", "你好，今天天气怎么样？", 'Quote "this" \\ and\nthat',
    "日本語のテキスト", "🙂 emoji\u2028line",
]


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_an_answer_serialises_as_its_body(variant):
    state = make_state()
    models = state.catalog.models
    for k, prompt in enumerate(PROMPTS):
        body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": prompt}], **VARIANTS[variant]}
        if body["model"] not in models:
            body["model"] = next(iter(models))
        chat = parse_chat_request(body, models)
        completion = build_completion(chat, state.text, 1, f"chatcmpl-poeti-{k:016x}", 1_796_000_000 + k)
        assert completion.json() == encode(completion.body())
        for respond in (Respond(content=f"scripted {prompt}"), Respond(content=""), Respond(finish_reason="length")):
            scripted = apply_script(completion, chat, respond, respond.content)
            assert scripted.json() == encode(scripted.body())


def test_the_usual_answer_takes_the_spliced_frame(monkeypatch):
    """Not a fall-back to body() each time: the frame is what answers a plain prompt."""
    completions = from_source("mockpoeti.answers.completion")
    state = make_state()
    chat = parse_chat_request({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}, state.catalog.models)
    completion = completions.build_completion(chat, state.text, 1, "chatcmpl-poeti-0", 1)
    expected = encode(completion.body())
    assert expected == build_completion(chat, state.text, 1, "chatcmpl-poeti-0", 1).json()  # the module as imported
    monkeypatch.setattr(completions.Completion, "body", lambda self: pytest.fail("body() was built"))
    assert completion.json() == expected
