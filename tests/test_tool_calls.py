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


# --- agent loops: after tool results the model moves on ----------------------------

POPULATION = {"type": "function", "function": {
    "name": "lookup_population", "description": "Look up the population of a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}}
CITY_SCHEMA = {
    "type": "object", "title": "City", "additionalProperties": False, "required": ["name", "population"],
    "properties": {"name": {"type": "string"}, "population": {"type": "integer"}},
}
FINAL_RESULT = {"type": "function", "function": {"name": "final_result", "parameters": CITY_SCHEMA, "strict": True}}
UNTITLED_CITY = {k: v for k, v in CITY_SCHEMA.items() if k != "title"}
CITY_TOOL = {"type": "function", "function": {"name": "City", "parameters": UNTITLED_CITY}}


def after_results(client, prompt: str, tools: list, **extra):
    """The next answer once every call of the first answer has its result (a framework's second request)."""
    messages = [{"role": "user", "content": prompt}]
    first = client.chat.completions.create(model="gpt-4o", messages=messages, tools=tools, **extra).choices[0].message
    messages.append(first.model_dump(exclude_none=True))
    messages += [{"role": "tool", "tool_call_id": c.id, "content": "2100000"} for c in first.tool_calls]
    second = client.chat.completions.create(model="gpt-4o", messages=messages, tools=tools, **extra)
    return first, second.choices[0], messages


def test_the_issue_repro_a_tool_result_under_required_gets_the_output_tool(client):
    messages = [
        {"role": "user", "content": "Tell me about Paris"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "lookup_population", "arguments": '{"city": "Paris"}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "2100000"},
    ]
    choice = client.chat.completions.create(
        model="gpt-4o", messages=messages, tools=[POPULATION, FINAL_RESULT], tool_choice="required"
    ).choices[0]

    [call] = choice.message.tool_calls
    assert call.function.name == "final_result"
    arguments = json.loads(call.function.arguments)
    jsonschema.validate(arguments, CITY_SCHEMA)
    assert arguments["name"] == "Paris"  # from the prompt


@pytest.mark.parametrize("tool_choice", ["required", "auto"])
def test_an_output_tool_is_called_once_the_tools_have_answered(client, tool_choice):
    first, second, _ = after_results(client, "Tell me about Paris", [POPULATION, FINAL_RESULT], tool_choice=tool_choice)

    assert [c.function.name for c in first.tool_calls] == ["lookup_population"]  # the work first, not the output tool
    assert [c.function.name for c in second.message.tool_calls] == ["final_result"]


@pytest.mark.parametrize("name", ["final_result", "final_result_City", "city_output", "CityResponse", "final_answer"])
def test_output_tools_are_known_by_their_names(client, name):
    output = {"type": "function", "function": {"name": name, "parameters": CITY_SCHEMA}}
    _, second, _ = after_results(client, "Tell me about Paris", [POPULATION, output], tool_choice="required")

    assert [c.function.name for c in second.message.tool_calls] == [name]


def test_a_tool_that_is_the_response_schema_is_the_output_tool(client):
    same = {"type": "function", "function": {"name": "Town", "parameters": UNTITLED_CITY}}
    response_format = {"type": "json_schema", "json_schema": {"name": "City", "schema": CITY_SCHEMA}}
    _, second, _ = after_results(client, "Tell me about Paris", [POPULATION, same], response_format=response_format)

    assert [c.function.name for c in second.message.tool_calls] == ["Town"]


def test_required_without_an_output_tool_calls_the_last_tool_not_yet_called(client):
    # LangChain's ToolStrategy: the output tool is named after the response class, declared last
    first, second, messages = after_results(client, "Tell me about Paris", [POPULATION, CITY_TOOL], tool_choice="required")

    assert [c.function.name for c in first.tool_calls] == ["lookup_population"]
    assert [c.function.name for c in second.message.tool_calls] == ["City"]
    messages += [second.message.model_dump(exclude_none=True),
                 {"role": "tool", "tool_call_id": second.message.tool_calls[0].id, "content": "ok"}]
    third = client.chat.completions.create(
        model="gpt-4o", messages=messages, tools=[POPULATION, CITY_TOOL], tool_choice="required"
    ).choices[0].message
    assert [c.function.name for c in third.tool_calls] == ["lookup_population"]  # all had a turn: the first


def test_each_named_tool_gets_its_turn_before_the_output_tool(client):
    tools = [WEATHER, CLOCK, FINAL_RESULT]
    messages: list = [{"role": "user", "content": BOTH}]
    names = []
    for _ in range(3):
        message = client.chat.completions.create(
            model="gpt-4o", messages=messages, tools=tools, tool_choice="required", parallel_tool_calls=False
        ).choices[0].message
        names.append([c.function.name for c in message.tool_calls])
        messages += [message.model_dump(exclude_none=True)]
        messages += [{"role": "tool", "tool_call_id": c.id, "content": "ok"} for c in message.tool_calls]

    assert names == [["get_weather"], ["get_local_time"], ["final_result"]]


def test_under_auto_with_a_json_schema_the_answer_after_the_tools_is_json(client):
    response_format = {"type": "json_schema", "json_schema": {"name": "final_output", "schema": CITY_SCHEMA, "strict": True}}
    _, second, _ = after_results(client, "Tell me about Paris", [POPULATION], response_format=response_format)

    assert second.finish_reason == "stop" and not second.message.tool_calls
    answer = json.loads(second.message.content)
    jsonschema.validate(answer, CITY_SCHEMA)
    assert answer["name"] == "Paris"


def test_a_named_tool_choice_is_called_whatever_the_turn(client):
    named = {"type": "function", "function": {"name": "lookup_population"}}
    _, second, _ = after_results(client, "Tell me about Paris", [POPULATION, FINAL_RESULT], tool_choice=named)

    assert [c.function.name for c in second.message.tool_calls] == ["lookup_population"]


# --- tool names read as words ------------------------------------------------------

def named_pair(weather: str, time: str) -> list[dict]:
    return [{**WEATHER, "function": {**WEATHER["function"], "name": weather}},
            {**CLOCK, "function": {**CLOCK["function"], "name": time}}]


STYLES = [("GetWeather", "GetTime"), ("get_weather", "get_time"), ("get-weather", "get-time"), ("weather.get", "time.get"),
          ("getWeather", "getLocalTime"), ("HTTPWeatherAPI", "TimeOfDay")]


@pytest.mark.parametrize(("weather", "time"), STYLES)
def test_a_question_about_the_time_calls_the_time_tool_whatever_the_naming(client, weather, time):
    completion = ask(client, "What time is it in Tokyo?", named_pair(weather, time))

    assert [c.function.name for c in completion.choices[0].message.tool_calls] == [time]


@pytest.mark.parametrize(("weather", "time"), STYLES)
def test_weather_and_time_get_two_parallel_calls_whatever_the_naming(client, weather, time):
    completion = ask(client, "The weather and time in Tokyo, please", named_pair(weather, time))

    assert [c.function.name for c in completion.choices[0].message.tool_calls] == [weather, time]


# --- arguments from the prompt -----------------------------------------------------

def tool(name: str, properties: dict, required: list | None = None) -> dict:
    parameters = {"type": "object", "properties": properties, "required": required or list(properties)}
    return {"type": "function", "function": {"name": name, "parameters": parameters}}


STRING = {"type": "string"}
ARGUMENTS = [
    ("What is the weather in Paris in fahrenheit?", tool("get_weather", {
        "city": STRING, "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}}),
     {"city": "Paris", "unit": "fahrenheit"}),
    ("What's the weather in New York?", tool("get_weather", {"location": {"type": "string", "description": "A city"}}),
     {"location": "New York"}),
    ("Book a flight from Paris to London on 2026-05-01", tool("book_flight", {
        "origin": STRING, "destination": STRING, "date": {"type": "string", "format": "date"}}),
     {"origin": "Paris", "destination": "London", "date": "2026-05-01"}),
    ("Create a customer named '你好啊集团' (Hello Group)", tool("create_customer", {"customer_name": STRING}),
     {"customer_name": "你好啊集团"}),
    ('Search the web for "quantum entanglement"', tool("web_search", {"query": STRING}), {"query": "quantum entanglement"}),
    ("Find papers about black holes", tool("search", {"q": {"type": "string", "maxLength": 100}}),
     {"q": "Find papers about black holes"}),
    ("Email Ada Lovelace about the meeting on May 3", tool("send_email", {"recipient": STRING, "when": STRING}),
     {"recipient": "Ada Lovelace", "when": "May 3"}),
    ("What is the value of magic_function(3)?", tool("magic_function", {
        "input": {"type": "integer", "exclusiveMinimum": -1000, "exclusiveMaximum": 1000}}), {"input": 3}),
    ("Add 3 and 4.5", tool("add", {"a": {"type": "number"}, "b": {"type": "number"}}), {"a": 3, "b": 4.5}),
    ("Weather in Paris for 3 days", tool("forecast", {
        "city": {"anyOf": [STRING, {"type": "null"}]}, "days": {"type": "integer", "minimum": 1, "maximum": 7}}),
     {"city": "Paris", "days": 3}),
]


@pytest.mark.parametrize(("prompt", "declared", "expected"), ARGUMENTS, ids=[a[1]["function"]["name"] for a in ARGUMENTS])
def test_arguments_take_what_the_prompt_says(client, prompt, declared, expected):
    [call] = ask(client, prompt, [declared], tool_choice="required").choices[0].message.tool_calls
    arguments = json.loads(call.function.arguments)

    jsonschema.validate(arguments, declared["function"]["parameters"], format_checker=jsonschema.FormatChecker())
    assert {k: arguments[k] for k in expected} == expected


NO_FIT = [
    ("Weather in Paris", tool("get_weather", {"city": {"type": "string", "maxLength": 3}})),  # "Paris" is too long
    ("Weather in Paris", tool("get_weather", {"city": {"type": "string", "pattern": "^[A-Z]{3}$"}})),  # never run on the prompt
    ("上海今天天气怎么样？", tool("get_weather", {"city": STRING})),  # no capitalised name, no quotes
    ("Add 3000 and 4", tool("add", {"a": {"type": "integer", "maximum": 10}})),  # out of bounds: the next number that fits
]


@pytest.mark.parametrize(("prompt", "declared"), NO_FIT, ids=["maxLength", "pattern", "chinese", "bounds"])
def test_where_the_prompt_gives_nothing_that_fits_the_value_is_generated_and_valid(client, twin, prompt, declared):
    [call] = ask(client, prompt, [declared], tool_choice="required").choices[0].message.tool_calls
    [again] = ask(twin, prompt, [declared], tool_choice="required").choices[0].message.tool_calls
    arguments = json.loads(call.function.arguments)

    jsonschema.validate(arguments, declared["function"]["parameters"])
    assert "Paris" not in call.function.arguments
    assert call.function.arguments == again.function.arguments  # still seeded
    if declared["function"]["name"] == "add":
        assert arguments["a"] == 4


def test_a_json_schema_answer_takes_the_prompts_name_too(client):
    response_format = {"type": "json_schema", "json_schema": {"name": "City", "schema": CITY_SCHEMA, "strict": True}}
    completion = client.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "Tell me about Lisbon"}], response_format=response_format
    )

    assert json.loads(completion.choices[0].message.content)["name"] == "Lisbon"


def test_only_the_first_4096_characters_of_a_prompt_are_read_for_arguments(client):
    declared = tool("get_weather", {"city": STRING})
    near, far = "x " * 2000 + "the weather in Paris", "x " * 2100 + "the weather in Paris"  # Paris at 4,015 and 4,215

    [inside] = ask(client, near, [declared], tool_choice="required").choices[0].message.tool_calls
    [beyond] = ask(client, far, [declared], tool_choice="required").choices[0].message.tool_calls
    assert json.loads(inside.function.arguments) == {"city": "Paris"}
    assert json.loads(beyond.function.arguments) != {"city": "Paris"}


def test_only_the_first_256_values_of_an_enum_are_looked_for_in_the_prompt(client):
    declared = tool("pick", {"code": {"type": "string", "enum": [f"code{i}" for i in range(1000)]}})

    [early] = ask(client, "use code17", [declared], tool_choice="required").choices[0].message.tool_calls
    [late] = ask(client, "use code999", [declared], tool_choice="required").choices[0].message.tool_calls
    assert json.loads(early.function.arguments) == {"code": "code17"}
    assert json.loads(late.function.arguments) != {"code": "code999"}
