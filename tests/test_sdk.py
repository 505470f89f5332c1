"""The official openai Python SDK against mockpoeti, used the way an app uses it."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Literal

import openai
import pytest
from payloads import WEATHER
from pydantic import BaseModel

from mockpoeti import MockServer

CJK = re.compile(r"[\u4e00-\u9fff]")
HELLO = [{"role": "user", "content": "Tell me about the weather in spring."}]

FLIGHTS = {
    "type": "function",
    "function": {
        "name": "search_flights",
        "description": "Find flights between two airports.",
        "parameters": {
            "type": "object",
            "properties": {
                "origin": {"type": "string"},
                "destination": {"type": "string"},
                "nonstop": {"type": "boolean"},
            },
            "required": ["origin", "destination"],
        },
    },
}
TOOLS = {t["function"]["name"]: t for t in (WEATHER, FLIGHTS)}
JSON_TYPES = {"string": str, "integer": int, "boolean": bool, "number": (int, float), "array": list, "object": dict}


def assert_matches_schema(arguments: str, schema: dict) -> None:
    """Tool arguments and JSON-mode content: a JSON object with the schema's fields and types."""
    value = json.loads(arguments)
    assert isinstance(value, dict), arguments
    properties = schema["properties"]
    assert set(schema.get("required", ())) <= set(value) <= set(properties), arguments
    for name, field in properties.items():
        if name in value:
            assert isinstance(value[name], JSON_TYPES[field["type"]]), (name, value[name])
            assert field["type"] == "boolean" or not isinstance(value[name], bool), (name, value[name])
            if "minimum" in field or "maximum" in field:
                assert field.get("minimum", value[name]) <= value[name] <= field.get("maximum", value[name]), name
            if "enum" in field:
                assert value[name] in field["enum"]


# --- plain completions -------------------------------------------------------


def test_create_returns_a_complete_chat_completion(client, twin, frozen_at):
    completion = client.chat.completions.create(model="gpt-4o", messages=HELLO)

    assert completion == twin.chat.completions.create(model="gpt-4o", messages=HELLO)  # id and text included
    assert completion.id.startswith("chatcmpl-poeti-")
    assert completion.object == "chat.completion"
    assert completion.model == "gpt-4o"
    assert completion.created == frozen_at
    assert completion.system_fingerprint.startswith("fp_")
    [choice] = completion.choices
    assert choice.index == 0
    assert choice.message.role == "assistant"
    assert choice.message.content.strip()
    assert choice.message.tool_calls is None
    assert choice.finish_reason == "stop"
    usage = completion.usage
    assert usage.prompt_tokens > 0 and usage.completion_tokens > 0
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


# What seed 7 and clock 2026-04-09T14:23:18Z (pyproject.toml) answer to the first call after a reset
# asking gpt-4o for HELLO. Pinned on purpose: users snapshot seeded answers, so a change here
# changes their snapshots and must be deliberate (and said in the changelog).
PINNED_TRACE_ID = "trace-poeti-f2a74de452e6b438"
PINNED = {
    "id": "chatcmpl-poeti-6513270e269e0d37",
    "object": "chat.completion",
    "created": 1775744598,
    "model": "gpt-4o",
    "choices": [{
        "index": 0,
        "message": {
            "role": "assistant",
            "content": "Democratic right effect during factor. Professional sit several heart result very team. Eye "
                       "series attention purpose economy member else point TV station. Enter magazine once Mrs later "
                       "war. Hair point stuff for main style. Something step man draw interest baby you.",
            "refusal": None,
        },
        "logprobs": None,
        "finish_reason": "stop",
    }],
    "usage": {
        "prompt_tokens": 17,
        "completion_tokens": 75,
        "total_tokens": 92,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
    },
    "system_fingerprint": "fp_f29e1acd22",
}


def test_a_seeded_answer_is_pinned(http, poeti_seed, poeti_clock):
    assert (poeti_seed, poeti_clock) == (7, "2026-04-09T14:23:18Z"), "PINNED is for pyproject.toml's seed and clock"

    response = http.post("/v1/chat/completions", json={"model": "gpt-4o", "messages": HELLO})

    assert response.headers["X-Trace-ID"] == PINNED_TRACE_ID
    assert response.json() == PINNED


async def test_async_client_creates_a_completion(twin, poeti_seed, poeti_clock, frozen_at):
    async with MockServer(seed=poeti_seed, clock=poeti_clock) as server, openai.AsyncOpenAI(
        base_url=server.base_url, api_key=server.api_key, max_retries=0
    ) as client:
        completion = await client.chat.completions.create(model="claude-3-5-sonnet-20241022", messages=HELLO)
        stream = await client.chat.completions.create(model="claude-3-5-sonnet-20241022", messages=HELLO, stream=True)
        chunks = [chunk async for chunk in stream]

    assert completion == twin.chat.completions.create(model="claude-3-5-sonnet-20241022", messages=HELLO)
    assert completion.model == "claude-3-5-sonnet-20241022"
    assert completion.created == frozen_at
    assert completion.choices[0].message.content.strip()
    assert completion.choices[0].finish_reason == "stop"
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == completion.choices[0].message.content
    assert chunks[-1].choices[0].finish_reason == "stop"


@pytest.mark.parametrize(
    ("prompt", "chinese"),
    [("解释量子纠缠", True), ("写一首关于春天的诗", True), ("Explain quantum entanglement", False)],
)
def test_answer_is_in_the_language_of_the_prompt(client, prompt, chinese):
    completion = client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": prompt}])

    assert bool(CJK.search(completion.choices[0].message.content)) is chinese


def test_n_returns_that_many_choices(client, twin):
    completion = client.chat.completions.create(model="gpt-4o", messages=HELLO, n=2)

    assert completion.choices == twin.chat.completions.create(model="gpt-4o", messages=HELLO, n=2).choices
    assert [c.index for c in completion.choices] == [0, 1]
    assert all(c.message.content.strip() and c.finish_reason == "stop" for c in completion.choices)
    assert completion.choices[0].message.content != completion.choices[1].message.content


@pytest.mark.parametrize("field", ["max_tokens", "max_completion_tokens"])
def test_token_limit_cuts_the_answer_with_finish_reason_length(client, field):
    full = client.chat.completions.create(model="gpt-4o", messages=HELLO)
    cut = client.chat.completions.create(model="gpt-4o", messages=HELLO, **{field: 5})

    assert full.usage.completion_tokens > 5
    assert cut.choices[0].finish_reason == "length"
    assert cut.usage.completion_tokens == 5
    assert cut.usage.total_tokens == cut.usage.prompt_tokens + 5
    assert full.choices[0].message.content.startswith(cut.choices[0].message.content)


def test_token_limit_also_cuts_a_stream(client):
    chunks = list(
        client.chat.completions.create(
            model="gpt-4o", messages=HELLO, max_tokens=5, stream=True, stream_options={"include_usage": True}
        )
    )

    assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) == 5
    assert chunks[-2].choices[0].finish_reason == "length"
    assert chunks[-1].usage.completion_tokens == 5


def test_stop_sequence_ends_the_answer_before_it(client):
    full = client.chat.completions.create(model="gpt-4o", messages=HELLO).choices[0].message.content
    words = full.split()
    early, late = words[3], words[-2]  # from the middle and the end of what the model would say

    completion = client.chat.completions.create(model="gpt-4o", messages=HELLO, stop=[late, early, "\n\n"])

    content = completion.choices[0].message.content
    assert content == full[: min(full.index(early), full.index(late))]  # cut at the first stop that occurs
    assert early not in content and late not in content
    assert completion.choices[0].finish_reason == "stop"


# --- streaming ---------------------------------------------------------------


def test_stream_yields_chunks_of_one_completion(client, twin, frozen_at):
    chunks = list(client.chat.completions.create(model="gpt-4o", messages=HELLO, stream=True))
    plain = client.chat.completions.create(model="gpt-4o", messages=HELLO)  # the same request: the same text

    assert {c.id for c in chunks} == {twin.chat.completions.create(model="gpt-4o", messages=HELLO).id}
    assert {c.object for c in chunks} == {"chat.completion.chunk"}
    assert {c.model for c in chunks} == {"gpt-4o"}
    assert {c.created for c in chunks} == {frozen_at}
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in chunks[:-1]] == [None] * (len(chunks) - 1)
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == plain.choices[0].message.content


def test_stream_include_usage_ends_with_a_usage_chunk(client):
    plain = client.chat.completions.create(model="gpt-4o", messages=HELLO)
    chunks = list(
        client.chat.completions.create(
            model="gpt-4o", messages=HELLO, stream=True, stream_options={"include_usage": True}
        )
    )

    final = chunks[-1]
    assert final.choices == []
    content_chunks = [c for c in chunks if c.choices and c.choices[0].delta.content]
    assert final.usage.completion_tokens == len(content_chunks)  # streamed one token per chunk
    assert final.usage.prompt_tokens == plain.usage.prompt_tokens
    assert final.usage.total_tokens == final.usage.prompt_tokens + final.usage.completion_tokens
    assert all(c.usage is None for c in chunks[:-1])
    assert chunks[-2].choices[0].finish_reason == "stop"


# --- tools -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tool_choice", "names"),
    [
        ("required", {"get_weather", "search_flights"}),
        ({"type": "function", "function": {"name": "get_weather"}}, {"get_weather"}),
        ({"type": "function", "function": {"name": "search_flights"}}, {"search_flights"}),
    ],
)
def test_tool_choice_gets_a_tool_call_with_arguments_that_fit_the_schema(client, tool_choice, names):
    completion = client.chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": "Is it raining in Paris? Also find me a flight there."}],
        tools=[WEATHER, FLIGHTS],
        tool_choice=tool_choice,
    )

    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    [call] = choice.message.tool_calls
    assert call.type == "function"
    assert call.id
    assert call.function.name in names
    assert_matches_schema(call.function.arguments, TOOLS[call.function.name]["function"]["parameters"])


def test_tool_choice_none_answers_in_text(client):
    completion = client.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "Weather in Paris?"}], tools=[WEATHER], tool_choice="none"
    )

    assert completion.choices[0].message.tool_calls is None
    assert completion.choices[0].message.content.strip()
    assert completion.choices[0].finish_reason == "stop"


def test_streamed_tool_call_deltas_reassemble_into_json(client):
    request = {"model": "gpt-4o", "messages": [{"role": "user", "content": "Weather in Berlin?"}], "tools": [WEATHER],
               "tool_choice": "required"}
    stream = client.chat.completions.create(**request, stream=True)

    calls: dict[int, dict] = {}
    finish_reasons = []
    for chunk in stream:
        choice = chunk.choices[0]
        finish_reasons.append(choice.finish_reason)
        for delta in choice.delta.tool_calls or ():
            call = calls.setdefault(delta.index, {"id": None, "name": "", "arguments": ""})
            call["id"] = call["id"] or delta.id
            if delta.function is not None:
                call["name"] += delta.function.name or ""
                call["arguments"] += delta.function.arguments or ""

    assert list(calls) == [0]
    assert calls[0]["id"] and calls[0]["name"] == "get_weather"
    assert_matches_schema(calls[0]["arguments"], WEATHER["function"]["parameters"])
    assert finish_reasons[-1] == "tool_calls"
    [plain] = client.chat.completions.create(**request).choices[0].message.tool_calls  # the same request, not streamed
    assert (calls[0]["name"], calls[0]["arguments"]) == (plain.function.name, plain.function.arguments)


def test_tool_result_gets_an_answer_not_another_call(client):
    messages = [
        {"role": "user", "content": "What's the weather in Paris?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": '{"temperature": 18, "sky": "rain"}'},
    ]

    completion = client.chat.completions.create(model="gpt-4o", messages=messages, tools=[WEATHER])

    choice = completion.choices[0]
    assert choice.message.tool_calls is None
    assert choice.message.content.strip()
    assert choice.finish_reason == "stop"


# --- structured output -------------------------------------------------------


def test_json_object_mode_answers_a_json_object(client):
    completion = client.chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": "List three fruits as JSON."}],
        response_format={"type": "json_object"},
    )

    assert isinstance(json.loads(completion.choices[0].message.content), dict)


def test_json_schema_mode_answers_the_schema(client):
    schema = {
        "type": "object",
        "properties": {
            "title": {"type": "string"},
            "year": {"type": "integer"},
            "tags": {"type": "array", "items": {"type": "string"}},
            "rating": {"type": "number"},
            "available": {"type": "boolean"},
        },
        "required": ["title", "year", "tags", "rating", "available"],
        "additionalProperties": False,
    }

    completion = client.chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": "Describe a film."}],
        response_format={"type": "json_schema", "json_schema": {"name": "film", "strict": True, "schema": schema}},
    )

    content = completion.choices[0].message.content
    assert_matches_schema(content, schema)
    assert set(json.loads(content)) == set(schema["properties"])


class Person(BaseModel):
    name: str
    born: int


class Film(BaseModel):
    title: str
    year: int
    genre: Literal["drama", "comedy"]
    director: Person
    cast: list[Person]
    sequel: str | None


class Place(BaseModel):
    city: str
    country: str


class GetWeather(BaseModel):
    place: Place
    unit: Literal["celsius", "fahrenheit"]


def test_parse_fills_a_pydantic_response_format(client):
    # The SDK sends nested models as "$ref": "#/$defs/Person" in a strict json_schema.
    completion = client.chat.completions.parse(
        model="gpt-4o", messages=[{"role": "user", "content": "Describe a film."}], response_format=Film
    )

    film = completion.choices[0].message.parsed
    assert isinstance(film, Film)
    assert isinstance(film.director, Person)
    assert all(isinstance(p, Person) for p in film.cast)


def test_parse_fills_a_pydantic_tool_call(client):
    completion = client.chat.completions.parse(
        model="gpt-4o",
        messages=[{"role": "user", "content": "Weather in Oslo?"}],
        tools=[openai.pydantic_function_tool(GetWeather)],
        tool_choice="required",
    )

    [call] = completion.choices[0].message.tool_calls
    assert call.function.name == "GetWeather"
    assert isinstance(call.function.parsed_arguments, GetWeather)
    assert isinstance(call.function.parsed_arguments.place, Place)


# --- models and traces -------------------------------------------------------


def test_models_list_has_the_reference_models(client):
    owners = {m.id: m.owned_by for m in client.models.list()}

    assert owners["gpt-4o"] == "openai"
    assert owners["claude-3-5-sonnet-20241022"] == "anthropic"
    assert all(owners.values())


def test_trace_id_header_finds_the_trace_of_the_call(client, http, twin, frozen_at):
    raw = client.chat.completions.with_raw_response.create(model="gpt-4o", messages=HELLO)
    completion = raw.parse()
    trace_id = raw.headers["X-Trace-ID"]
    assert trace_id == twin.chat.completions.with_raw_response.create(model="gpt-4o", messages=HELLO).headers["X-Trace-ID"]

    response = http.get(f"/api/v1/request-traces/{trace_id}")

    assert response.status_code == 200
    trace = response.json()["data"]
    assert trace["trace_id"] == trace_id
    assert (trace["model"], trace["provider"], trace["status"]) == ("gpt-4o", "openai", "success")
    assert trace["prompt_tokens"] == completion.usage.prompt_tokens
    assert trace["completion_tokens"] == completion.usage.completion_tokens
    # gpt-4o lists at $2.50 / $10.00 per 1M tokens in fixtures/models.yaml
    expected = (completion.usage.prompt_tokens * 2.50 + completion.usage.completion_tokens * 10.00) / 1_000_000
    assert trace["cost_usd"] == pytest.approx(expected)
    assert trace["latency_ms"] >= 0
    assert trace["request_id"] == completion.id
    assert trace["created_at"] == datetime.fromtimestamp(frozen_at, UTC).isoformat().replace("+00:00", "Z")


# --- errors ------------------------------------------------------------------


def test_wrong_key_raises_authentication_error(poeti):
    with openai.OpenAI(base_url=poeti.base_url, api_key="sk-poeti-wrong", max_retries=0) as client:
        with pytest.raises(openai.AuthenticationError) as caught:
            client.chat.completions.create(model="gpt-4o", messages=HELLO)

    assert caught.value.status_code == 401
    assert caught.value.code == "invalid_api_key"
    assert caught.value.response.headers["X-Trace-ID"]


def test_unknown_model_raises_not_found_error(client):
    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(model="gpt-9-imaginary", messages=HELLO)

    assert caught.value.code == "model_not_found"
    assert "gpt-9-imaginary" in caught.value.message


def test_missing_messages_raises_bad_request_naming_the_field(client):
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="gpt-4o", messages=openai.omit)

    assert caught.value.code == "invalid_request"
    assert "'messages'" in caught.value.message
