"""Known Chat Completions parameters are type-checked as OpenAI's
CreateChatCompletionRequest defines them; unknown ones pass, and are listed."""

from __future__ import annotations

import openai
import pytest

QUESTION = [{"role": "user", "content": "hi"}]

INVALID = [
    ({"logprobs": "yes"}, "logprobs"),
    ({"top_logprobs": 50, "logprobs": True}, "top_logprobs"),
    ({"seed": "x"}, "seed"),
    ({"seed": 1.5}, "seed"),
    ({"seed": 2**64}, "seed"),
    ({"user": 123}, "user"),
    ({"parallel_tool_calls": "no"}, "parallel_tool_calls"),
    ({"service_tier": "bogus"}, "service_tier"),
    ({"reasoning_effort": "extreme"}, "reasoning_effort"),
    ({"verbosity": "loud"}, "verbosity"),
    ({"store": "true"}, "store"),
    ({"metadata": ["a"]}, "metadata"),
    ({"metadata": {"team": 7}}, "metadata.team"),
    ({"metadata": {f"k{i}": "v" for i in range(17)}}, "metadata"),
    ({"modalities": ["text", "video"]}, "modalities"),
    ({"modalities": ["text", "audio"]}, "audio"),
    ({"audio": {"voice": "alloy", "format": "ogg"}}, "audio.format"),
    ({"prediction": {"type": "guess", "content": "x"}}, "prediction.type"),
    ({"logit_bias": {"abc": 1}}, "logit_bias.abc"),
    ({"logit_bias": {"50256": -101}}, "logit_bias.50256"),
    ({"logit_bias": {"50256": True}}, "logit_bias.50256"),
    ({"prompt_cache_key": 5}, "prompt_cache_key"),
    ({"prompt_cache_retention": "forever"}, "prompt_cache_retention"),
    ({"safety_identifier": ["x"]}, "safety_identifier"),
    ({"web_search_options": {"search_context_size": "huge"}}, "web_search_options.search_context_size"),
    ({"stream": True, "stream_options": {"include_obfuscation": "no"}}, "stream_options.include_obfuscation"),
    ({"functions": [{"description": "no name"}]}, "functions[0].name"),
    ({"function_call": "sometimes"}, "function_call"),
]


@pytest.mark.parametrize(("extra", "field"), INVALID, ids=[f for _, f in INVALID])
def test_a_mistyped_known_parameter_is_an_invalid_request_naming_it(client, extra, field):
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="gpt-4o", messages=QUESTION, extra_body=extra)

    assert caught.value.status_code == 400
    assert caught.value.body["code"] == "invalid_request"
    assert f"'{field}'" in caught.value.message


VALID = [
    {"logprobs": False},
    {"seed": 42},
    {"seed": -(2**63)},
    {"user": "user-1234"},
    {"parallel_tool_calls": False},
    *({"service_tier": tier} for tier in ("auto", "default", "flex", "scale", "priority")),
    *({"reasoning_effort": effort} for effort in ("none", "minimal", "low", "medium", "high")),
    {"verbosity": "low"},
    {"store": True, "metadata": {"team": "search", "run": "7"}},
    {"modalities": ["text"]},
    {"modalities": ["text", "audio"], "audio": {"voice": "alloy", "format": "mp3"}},
    {"prediction": {"type": "content", "content": "hello"}},
    {"logit_bias": {"50256": -100, "15339": 2.5}},
    {"prompt_cache_key": "k", "safety_identifier": "s", "prompt_cache_retention": "24h"},
    {"web_search_options": {"search_context_size": "low", "user_location": {"type": "approximate", "approximate": {}}}},
    {"user": None, "seed": None, "service_tier": None},
]


@pytest.mark.parametrize("extra", VALID, ids=lambda e: ",".join(e))
def test_well_typed_known_parameters_are_accepted(client, poeti, extra):
    completion = client.chat.completions.create(model="gpt-4o", messages=QUESTION, extra_body=extra)

    assert completion.choices[0].message.content
    assert "unknown_fields" not in poeti.requests[-1]


def test_unknown_top_level_fields_pass_and_are_listed_in_the_journal(client, poeti):
    completion = client.chat.completions.create(
        model="gpt-4o", messages=QUESTION, extra_body={"max_token": 5, "top_k": 3, "provider": {"order": ["a"]}}
    )

    assert completion.choices[0].message.content
    assert poeti.requests[-1]["unknown_fields"] == ["max_token", "provider", "top_k"]


@pytest.mark.parametrize(("asked", "served"), [("auto", "default"), ("default", "default"), ("flex", "flex"),
                                               ("priority", "priority")])
def test_service_tier_is_echoed_as_the_tier_that_served_the_call(client, asked, served):
    reply = client.chat.completions.create(model="gpt-4o", messages=QUESTION, service_tier=asked)
    chunks = list(client.chat.completions.create(model="gpt-4o", messages=QUESTION, service_tier=asked, stream=True))

    assert reply.service_tier == served
    assert {chunk.service_tier for chunk in chunks} == {served}


def test_without_a_service_tier_the_answer_names_none(client, http):
    raw = http.post("/v1/chat/completions", json={"model": "gpt-4o", "messages": QUESTION}).json()

    assert "service_tier" not in raw
    assert client.chat.completions.create(model="gpt-4o", messages=QUESTION).service_tier is None
