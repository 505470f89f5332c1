"""Tool calls as OpenAI sends them: several per answer, each call's header right
before its own argument deltas in a stream, so the SDK's `stream()` helper and
strict tools work; the `tool-calling` scenario and `{{ last.ROLE }}` templates."""

from __future__ import annotations

import json

import httpx
import jsonschema
import openai
import pytest
from pydantic import BaseModel, Field

from mockpoeti import MockServer

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
            "required": ["city", "unit"],
            "additionalProperties": False,
        },
    },
}
CLOCK = {
    "type": "function",
    "function": {
        "name": "get_local_time",
        "parameters": {
            "type": "object",
            "properties": {"timezone": {"type": "string", "pattern": "^[A-Z][a-z]+/[A-Z][a-z]+$"}},
            "required": ["timezone"],
        },
    },
}
NEWS = {"type": "function", "function": {"name": "read_news", "parameters": {"type": "object", "properties": {}}}}
BOTH = "What is the weather and the local time in Paris?"


def ask(client: openai.OpenAI, content: str, tools: list, **extra):
    return client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": content}], tools=tools, **extra)


def sse_chunks(poeti, body: dict) -> list[dict]:
    with httpx.Client(base_url=poeti.url, headers={"Authorization": f"Bearer {poeti.api_key}"}) as http:
        raw = http.post("/v1/chat/completions", json={**body, "stream": True}).content
    events = [e.removeprefix(b"data: ") for e in raw.split(b"\n\n") if e]
    assert events[-1] == b"[DONE]"
    return [json.loads(e) for e in events[:-1]]


def tool_deltas(chunks: list[dict]) -> list[dict]:
    return [call for chunk in chunks for choice in chunk["choices"] for call in choice["delta"].get("tool_calls") or ()]


def assert_openai_order(deltas: list[dict]) -> None:
    """Each call's header (id, type, name, empty arguments) comes right before its own
    argument deltas; calls follow one another in index order."""
    expected_index = 0
    for i, delta in enumerate(deltas):
        if "id" in delta:
            assert delta["index"] == expected_index, deltas
            assert delta["type"] == "function" and delta["function"]["name"] and delta["function"]["arguments"] == ""
            expected_index += 1
        else:
            assert set(delta) == {"index", "function"} and set(delta["function"]) == {"arguments"}, delta
            assert delta["index"] == expected_index - 1, f"delta {i} belongs to call {delta['index']}, not the open one"


# --- several calls -------------------------------------------------------------

def test_the_tools_a_prompt_names_are_all_called(client):
    completion = ask(client, BOTH, [WEATHER, CLOCK, NEWS])

    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert [c.function.name for c in choice.message.tool_calls] == ["get_weather", "get_local_time"]
    assert len({c.id for c in choice.message.tool_calls}) == 2
    for call, tool in zip(choice.message.tool_calls, (WEATHER, CLOCK), strict=True):
        jsonschema.validate(json.loads(call.function.arguments), tool["function"]["parameters"])
    assert completion.usage.completion_tokens > 0


def test_parallel_tool_calls_false_makes_one_call(client):
    completion = ask(client, BOTH, [WEATHER, CLOCK], parallel_tool_calls=False)

    assert [c.function.name for c in completion.choices[0].message.tool_calls] == ["get_weather"]


def test_a_named_tool_choice_makes_exactly_that_call(client):
    completion = ask(client, BOTH, [WEATHER, CLOCK], tool_choice={"type": "function", "function": {"name": "get_local_time"}})

    assert [c.function.name for c in completion.choices[0].message.tool_calls] == ["get_local_time"]


def test_after_the_tool_results_the_model_talks(client):
    first = ask(client, BOTH, [WEATHER, CLOCK]).choices[0].message
    messages = [{"role": "user", "content": BOTH}, first.model_dump(exclude_none=True)]
    messages += [{"role": "tool", "tool_call_id": c.id, "content": "ok"} for c in first.tool_calls]
    answer = client.chat.completions.create(model="gpt-4o", messages=messages, tools=[WEATHER, CLOCK])

    assert answer.choices[0].finish_reason == "stop"
    assert answer.choices[0].message.content and not answer.choices[0].message.tool_calls


# --- the stream order -----------------------------------------------------------

def test_streamed_calls_come_one_after_another(poeti):
    chunks = sse_chunks(poeti, {"model": "gpt-4o", "messages": [{"role": "user", "content": BOTH}], "tools": [WEATHER, CLOCK]})
    deltas = tool_deltas(chunks)

    assert_openai_order(deltas)
    assert [d["function"]["name"] for d in deltas if "id" in d] == ["get_weather", "get_local_time"]
    first = chunks[0]["choices"][0]["delta"]
    assert first["role"] == "assistant" and first["tool_calls"][0]["index"] == 0  # the first header rides in the role chunk
    for k in (0, 1):
        json.loads("".join(d["function"]["arguments"] for d in deltas if d["index"] == k))
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"


def test_scripted_calls_stream_in_openai_order(poeti):
    poeti.stub({"tool_calls": [
        {"name": "get_weather", "arguments": {"city": "Oslo", "unit": "celsius"}},
        {"name": "get_local_time", "arguments": {"timezone": "Europe/Oslo"}},
        {"name": "read_news", "arguments": {}},
    ]})
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "go"}], "tools": [WEATHER, CLOCK, NEWS]}
    chunks = sse_chunks(poeti, body)

    deltas = tool_deltas(chunks)
    assert_openai_order(deltas)
    assert [d["function"]["name"] for d in deltas if "id" in d] == ["get_weather", "get_local_time", "read_news"]


def test_the_sdk_stream_helper_reports_each_calls_full_arguments(client):
    with client.chat.completions.stream(
        model="gpt-4o", messages=[{"role": "user", "content": BOTH}], tools=[WEATHER, CLOCK]
    ) as stream:
        done = [(e.name, e.arguments) for e in stream if e.type == "tool_calls.function.arguments.done"]
        final = stream.get_final_completion()

    calls = final.choices[0].message.tool_calls
    assert [name for name, _ in done] == ["get_weather", "get_local_time"]
    assert [arguments for _, arguments in done] == [c.function.arguments for c in calls]
    assert all(json.loads(arguments) for _, arguments in done)


class Weather(BaseModel):
    city: str = Field(max_length=30)
    unit: str = Field(pattern="^(celsius|fahrenheit)$")


class LocalTime(BaseModel):
    timezone: str = Field(pattern=r"^[A-Z][a-z]+/[A-Z][a-z]+$")


def test_the_sdk_stream_helper_parses_strict_tools(client):
    tools = [openai.pydantic_function_tool(Weather), openai.pydantic_function_tool(LocalTime)]
    with client.chat.completions.stream(
        model="gpt-4o", messages=[{"role": "user", "content": "weather and localtime please"}], tools=tools
    ) as stream:
        done = [e for e in stream if e.type == "tool_calls.function.arguments.done"]
        final = stream.get_final_completion()

    assert [e.name for e in done] == ["Weather", "LocalTime"]
    assert isinstance(done[0].parsed_arguments, Weather) and isinstance(done[1].parsed_arguments, LocalTime)
    parsed = [c.function.parsed_arguments for c in final.choices[0].message.tool_calls]
    assert parsed == [e.parsed_arguments for e in done]


def test_content_and_calls_stream_text_first_then_each_call(poeti):
    poeti.stub({"content": "Let me check.", "tool_calls": [
        {"name": "get_weather", "arguments": {"city": "Oslo", "unit": "celsius"}},
        {"name": "read_news", "arguments": {}},
    ]})
    chunks = sse_chunks(poeti, {"model": "gpt-4o", "messages": [{"role": "user", "content": "go"}], "tools": [WEATHER, NEWS]})

    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == "Let me check."
    last_text = max(i for i, c in enumerate(chunks) if c["choices"] and c["choices"][0]["delta"].get("content"))
    first_call = min(i for i, c in enumerate(chunks) if c["choices"] and c["choices"][0]["delta"].get("tool_calls"))
    assert last_text < first_call
    assert_openai_order(tool_deltas(chunks))


# --- the tool-calling scenario and {{ last.ROLE }} ------------------------------

@pytest.mark.poeti_scenario("tool-calling")
def test_the_tool_calling_scenario_quotes_the_tool_result_after_a_system_message(client):
    messages = [
        {"role": "system", "content": "You are a weather bot."},
        {"role": "user", "content": "上海今天天气怎么样？"},
    ]
    first = client.chat.completions.create(model="gpt-4o", messages=messages, tools=[WEATHER]).choices[0].message
    [call] = first.tool_calls
    messages += [first.model_dump(exclude_none=True), {"role": "tool", "tool_call_id": call.id, "content": "晴，22°C"}]
    second = client.chat.completions.create(model="gpt-4o", messages=messages, tools=[WEATHER])

    assert json.loads(call.function.arguments) == {"city": "上海", "unit": "celsius"}
    assert second.choices[0].message.content == "上海现在 晴，22°C。"


@pytest.mark.poeti_scenario("tool-calling")
def test_the_tool_calling_scenario_answers_requests_without_tools_in_words(client, poeti):
    answer = client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "上海今天天气怎么样？"}])

    assert answer.choices[0].finish_reason == "stop"
    assert answer.choices[0].message.tool_calls is None
    assert answer.choices[0].message.content
    assert not poeti.requests[-1].get("rule")


def test_last_role_templates_reach_each_role(client, poeti):
    poeti.stub("system={{ last.system }} | user={{ last.user }} | assistant={{ last.assistant }} | tool={{ last.tool }}")
    messages = [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "first question"},
        {"role": "assistant", "content": "first answer"},
        {"role": "user", "content": [{"type": "text", "text": "second "}, {"type": "text", "text": "question"}]},
    ]
    answer = client.chat.completions.create(model="gpt-4o", messages=messages)

    assert answer.choices[0].message.content == "system=be brief | user=second question | assistant=first answer | tool="


def test_a_template_naming_an_unknown_root_is_still_refused():
    with MockServer() as server, pytest.raises(ValueError, match="unknown name 'lastt'"):
        server.stub("{{ lastt.user }}")
