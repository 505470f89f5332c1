"""logprobs as OpenAI answers them: per token, joining to the content, in streams
per chunk, deterministic under a seed."""

from __future__ import annotations

import math

import httpx
import openai
import pytest

from mockpoeti import MockServer

QUESTION = [{"role": "user", "content": "Tell me about the sea."}]
CHINESE = [{"role": "user", "content": "介绍一下长城"}]


def check_entries(content: str, entries, top: int) -> None:
    assert "".join(e.token for e in entries) == content
    for entry in entries:
        assert entry.bytes == list(entry.token.encode())
        assert entry.logprob <= 0
        assert len(entry.top_logprobs) == top
        if top:
            first = entry.top_logprobs[0]
            assert (first.token, first.logprob, first.bytes) == (entry.token, entry.logprob, entry.bytes)
            logprobs = [t.logprob for t in entry.top_logprobs]
            assert logprobs == sorted(logprobs, reverse=True)
            assert len({t.token for t in entry.top_logprobs}) == top
            assert sum(math.exp(lp) for lp in logprobs) <= 1.0 + 1e-9
            for alternative in entry.top_logprobs:
                assert alternative.bytes == list(alternative.token.encode())


@pytest.mark.parametrize("top", [0, 1, 5, 20])
def test_logprobs_cover_every_token_of_the_content(client, top):
    completion = client.chat.completions.create(model="gpt-4o", messages=QUESTION, logprobs=True, top_logprobs=top)

    choice = completion.choices[0]
    assert choice.logprobs.refusal is None
    check_entries(choice.message.content, choice.logprobs.content, top)


def test_logprobs_without_top_logprobs_have_empty_alternatives(client):
    completion = client.chat.completions.create(model="gpt-4o", messages=CHINESE, logprobs=True)

    entries = completion.choices[0].logprobs.content
    check_entries(completion.choices[0].message.content, entries, 0)
    assert any(len(e.bytes) == 3 for e in entries)  # a Chinese character is three UTF-8 bytes


def test_without_logprobs_they_are_null(client):
    completion = client.chat.completions.create(model="gpt-4o", messages=QUESTION)

    assert completion.choices[0].logprobs is None


def test_each_choice_and_a_cut_answer_have_their_own(client):
    completion = client.chat.completions.create(
        model="gpt-4o", messages=QUESTION, logprobs=True, top_logprobs=2, n=2, max_tokens=5
    )

    for choice in completion.choices:
        assert choice.finish_reason == "length"
        assert len(choice.logprobs.content) == 5
        check_entries(choice.message.content, choice.logprobs.content, 2)


def test_scripted_content_gets_logprobs_for_its_tokens(client, poeti):
    poeti.stub("Hello there, 世界!")
    completion = client.chat.completions.create(model="gpt-4o", messages=QUESTION, logprobs=True, top_logprobs=3)

    check_entries("Hello there, 世界!", completion.choices[0].logprobs.content, 3)


def test_a_tool_call_has_no_content_logprobs(client):
    tool = {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object", "properties": {}}}}
    completion = client.chat.completions.create(
        model="gpt-4o", messages=QUESTION, tools=[tool], tool_choice="required", logprobs=True
    )

    assert completion.choices[0].logprobs.content is None


def test_streams_carry_each_chunks_logprobs_and_match_the_whole_answer(client):
    whole = client.chat.completions.create(model="gpt-4o", messages=QUESTION, logprobs=True, top_logprobs=3)
    stream = client.chat.completions.create(model="gpt-4o", messages=QUESTION, logprobs=True, top_logprobs=3, stream=True)

    streamed = []
    for chunk in stream:
        for choice in chunk.choices:
            if choice.delta.content:
                assert choice.logprobs.refusal is None
                assert "".join(e.token for e in choice.logprobs.content) == choice.delta.content
                streamed += choice.logprobs.content
            else:
                assert choice.logprobs is None
    assert streamed == whole.choices[0].logprobs.content


def test_the_sdk_stream_helper_collects_logprobs(client):
    with client.chat.completions.stream(model="gpt-4o", messages=CHINESE, logprobs=True, top_logprobs=2) as stream:
        events = [e for e in stream if e.type == "logprobs.content.delta"]
        final = stream.get_final_completion()

    assert events
    check_entries(final.choices[0].message.content, final.choices[0].logprobs.content, 2)


def test_the_same_seed_gives_the_same_logprobs_and_another_seed_others():
    body = {"model": "gpt-4o", "messages": QUESTION, "logprobs": True, "top_logprobs": 4}

    def logprobs(seed: int) -> list:
        with MockServer(seed=seed) as server, httpx.Client(base_url=server.url) as http:
            response = http.post("/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {server.api_key}"})
            return response.json()["choices"][0]["logprobs"]["content"]

    assert logprobs(3) == logprobs(3)
    assert logprobs(3) != logprobs(4)


@pytest.mark.parametrize(("extra", "field"), [
    ({"logprobs": True, "top_logprobs": 21}, "top_logprobs"),
    ({"logprobs": True, "top_logprobs": -1}, "top_logprobs"),
    ({"logprobs": True, "top_logprobs": 2.5}, "top_logprobs"),
    ({"top_logprobs": 3}, "top_logprobs"),
    ({"logprobs": False, "top_logprobs": 3}, "top_logprobs"),
    ({"logprobs": "yes"}, "logprobs"),
])
def test_bad_logprobs_parameters_are_invalid_requests(client, extra, field):
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="gpt-4o", messages=QUESTION, extra_body=extra)

    assert caught.value.body["code"] == "invalid_request"
    assert f"'{field}'" in caught.value.message
