"""The model's misbehaviour as fault kinds: answers well formed on the wire and
wrong in what they say, in plain answers and streams, from stubs, scenario rules
and chaos, each named in the journal and the trace; and what the official SDK
raises or returns on each (the README's table of the model's faults)."""

from __future__ import annotations

import json

import httpx
import jsonschema
import openai
import pydantic
import pytest
from pydantic import BaseModel
from test_tool_calls import sse_chunks

from mockpoeti import MockServer


class GetWeather(BaseModel):
    city: str


class City(BaseModel):
    name: str
    population: int


TOOLS = [openai.pydantic_function_tool(GetWeather)]
PARAMETERS = TOOLS[0]["function"]["parameters"]
QUESTION = [{"role": "user", "content": "What is the weather in Paris?"}]
CITY_FORMAT = {"type": "json_schema", "json_schema": {"name": "City", "schema": City.model_json_schema()}}
REFUSAL = "I'm sorry, but I can't help with that request."


def only_entry(poeti) -> dict:
    [entry] = [e for e in poeti.requests if e["endpoint"] == "chat"]
    return entry


def stream_message(client, **request) -> tuple[dict, str | None]:
    """A streamed answer put back together as the SDK's iterator gives it: the message, the finish reason."""
    message: dict = {"content": "", "refusal": "", "tool_calls": {}}
    finish = None
    for chunk in client.chat.completions.create(model="gpt-4o", messages=QUESTION, stream=True, **request):
        for choice in chunk.choices:
            delta = choice.delta
            message["content"] += delta.content or ""
            message["refusal"] += delta.refusal or ""
            for call in delta.tool_calls or ():
                slot = message["tool_calls"].setdefault(call.index, {"id": None, "name": None, "arguments": ""})
                slot["id"] = call.id or slot["id"]
                slot["name"] = (call.function.name if call.function else None) or slot["name"]
                slot["arguments"] += (call.function.arguments if call.function else None) or ""
            finish = choice.finish_reason or finish
    message["tool_calls"] = [message["tool_calls"][k] for k in sorted(message["tool_calls"])]
    return message, finish


# --- each kind, plain and streamed: the same answer ------------------------------

def plain_message(client, **request) -> tuple[dict, str | None]:
    choice = client.chat.completions.create(model="gpt-4o", messages=QUESTION, **request).choices[0]
    calls = [{"id": c.id, "name": c.function.name, "arguments": c.function.arguments} for c in choice.message.tool_calls or ()]
    message = {"content": choice.message.content or "", "refusal": choice.message.refusal or "", "tool_calls": calls}
    return message, choice.finish_reason


@pytest.mark.parametrize("read", [plain_message, stream_message], ids=["plain", "stream"])
def test_invalid_tool_arguments_are_not_json(poeti, client, read):
    poeti.stub({"fault": "invalid_tool_arguments"})
    message, finish = read(client, tools=TOOLS)

    [call] = message["tool_calls"]
    assert (call["name"], call["arguments"], finish) == ("GetWeather", '{"city": "Paris",}', "tool_calls")
    with pytest.raises(json.JSONDecodeError):
        json.loads(call["arguments"])
    assert only_entry(poeti)["fault"] == "invalid_tool_arguments"


@pytest.mark.parametrize("read", [plain_message, stream_message], ids=["plain", "stream"])
def test_schema_violation_breaks_tool_arguments_and_json_answers(poeti, client, read):
    poeti.stub({"fault": "schema_violation"})
    tool_message, _ = read(client, tools=TOOLS)
    json_message, finish = read(client, response_format=CITY_FORMAT)

    arguments = json.loads(tool_message["tool_calls"][0]["arguments"])
    answer = json.loads(json_message["content"])
    assert arguments == {}  # `city` is required
    assert list(answer) == ["population"] and finish == "stop"  # `name` is required
    for value, schema in ((arguments, PARAMETERS), (answer, City.model_json_schema())):
        with pytest.raises(jsonschema.ValidationError, match="is a required property"):
            jsonschema.validate(value, schema)


@pytest.mark.parametrize("read", [plain_message, stream_message], ids=["plain", "stream"])
def test_unknown_tool_calls_a_tool_nobody_declared(poeti, client, read):
    poeti.stub({"fault": "unknown_tool"})
    declared, _ = read(client, tools=TOOLS)
    undeclared, finish = read(client)

    assert [(c["name"], json.loads(c["arguments"])) for c in declared["tool_calls"]] == [("GetWeather_v2", {"city": "Paris"})]
    assert [(c["name"], json.loads(c["arguments"])) for c in undeclared["tool_calls"]] == [
        ("lookup", {"query": "What is the weather in Paris?"})
    ]
    assert finish == "tool_calls"


@pytest.mark.parametrize("read", [plain_message, stream_message], ids=["plain", "stream"])
def test_truncated_tool_call_stops_inside_the_arguments(poeti, client, read):
    poeti.stub({"fault": "truncated_tool_call"})
    message, finish = read(client, tools=TOOLS)

    assert finish == "length"
    assert [(c["name"], c["arguments"]) for c in message["tool_calls"]] == [("GetWeather", '{"city":')]


@pytest.mark.parametrize("read", [plain_message, stream_message], ids=["plain", "stream"])
def test_refusal_sets_refusal_and_no_content(poeti, client, read):
    poeti.stub({"fault": "refusal"})
    message, finish = read(client, tools=TOOLS)

    assert message == {"content": "", "refusal": REFUSAL, "tool_calls": []}
    assert finish == "stop"


@pytest.mark.parametrize("read", [plain_message, stream_message], ids=["plain", "stream"])
def test_duplicate_tool_call_ids_two_calls_one_id(poeti, client, read):
    poeti.stub({"fault": "duplicate_tool_call_ids"})
    message, finish = read(client, tools=TOOLS)

    first, second = message["tool_calls"]
    assert first["id"] == second["id"] and first["name"] == second["name"] == "GetWeather"
    assert finish == "tool_calls"


def test_a_refusal_on_the_wire_as_openai_streams_it(poeti):
    poeti.stub({"fault": {"kind": "refusal", "message": "Nope."}})
    chunks = sse_chunks(poeti, {"model": "gpt-4o", "messages": QUESTION})
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]

    assert deltas[0] == {"role": "assistant", "content": None, "refusal": ""}
    assert "".join(d.get("refusal", "") for d in deltas[1:]) == "Nope."
    assert all("content" not in d for d in deltas[1:])
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"


def test_a_refusal_speaks_the_prompts_language_unless_told_what_to_say(poeti, client):
    poeti.stub({"fault": "refusal"}, message="天气")
    poeti.stub({"fault": {"kind": "refusal", "message": "Not today."}}, message="today")
    chinese = client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "上海天气"}])
    told = client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "today?"}], logprobs=True)

    assert chinese.choices[0].message.refusal == "抱歉，我无法协助处理这个请求。"
    assert told.choices[0].message.refusal == "Not today."
    assert told.choices[0].logprobs.content is None
    assert "".join(t.token for t in told.choices[0].logprobs.refusal) == "Not today."
    assert told.usage.completion_tokens > 0


# --- what the SDK raises or returns -------------------------------------------------

def parse_tool(client):
    return client.chat.completions.parse(model="gpt-4o", messages=QUESTION, tools=TOOLS).choices[0].message


def parse_output(client):
    return client.chat.completions.parse(model="gpt-4o", messages=QUESTION, response_format=City).choices[0].message


def stream_helper(client, **request):
    with client.chat.completions.stream(model="gpt-4o", messages=QUESTION, **request) as stream:
        events = {event.type for event in stream}
        return stream.get_final_completion().choices[0].message, events


def test_the_sdk_on_invalid_tool_arguments(poeti, client):
    poeti.stub({"fault": "invalid_tool_arguments"})

    with pytest.raises(pydantic.ValidationError, match=r"json_invalid|Invalid JSON"):
        parse_tool(client)
    with pytest.raises(ValueError, match="trailing comma"):
        stream_helper(client, tools=TOOLS)


def test_the_sdk_on_schema_violation(poeti, client):
    poeti.stub({"fault": "schema_violation"})

    with pytest.raises(pydantic.ValidationError, match="city"):
        parse_tool(client)
    with pytest.raises(pydantic.ValidationError, match="name"):
        parse_output(client)
    with pytest.raises(pydantic.ValidationError, match="name"):
        stream_helper(client, response_format=City)


def test_the_sdk_on_unknown_tool(poeti, client):
    poeti.stub({"fault": "unknown_tool"})

    [call] = parse_tool(client).tool_calls
    assert call.function.name == "GetWeather_v2" and call.function.parsed_arguments is None
    message, events = stream_helper(client, tools=TOOLS)
    assert message.tool_calls[0].function.parsed_arguments is None
    assert "tool_calls.function.arguments.done" in events


def test_the_sdk_on_truncated_tool_call(poeti, client):
    poeti.stub({"fault": "truncated_tool_call"})

    with pytest.raises(openai.LengthFinishReasonError):
        parse_tool(client)
    with pytest.raises(openai.LengthFinishReasonError):
        stream_helper(client, tools=TOOLS)


def test_the_sdk_on_refusal(poeti, client):
    poeti.stub({"fault": "refusal"})

    message = parse_output(client)
    assert message.parsed is None and message.refusal == REFUSAL
    message, events = stream_helper(client, response_format=City)
    assert message.parsed is None and message.refusal == REFUSAL
    assert {"refusal.delta", "refusal.done"} <= events


def test_the_sdk_on_duplicate_tool_call_ids(poeti, client):
    poeti.stub({"fault": "duplicate_tool_call_ids"})

    calls = parse_tool(client).tool_calls
    assert [c.function.parsed_arguments for c in calls] == [GetWeather(city="Paris")] * 2
    assert calls[0].id == calls[1].id


# --- where they come from, and what the books say -----------------------------------

def test_a_fault_the_request_gives_nothing_to_break_is_skipped_and_the_journal_says_why(poeti, client):
    poeti.stub({"fault": "truncated_tool_call"})
    answer = client.chat.completions.create(model="gpt-4o", messages=QUESTION)

    assert answer.choices[0].message.content and answer.choices[0].finish_reason == "stop"
    entry = only_entry(poeti)
    assert "fault" not in entry
    assert entry["fault_skipped"] == "truncated_tool_call needs tools in the request"
    assert poeti.traces[-1]["status"] == "success"


def test_a_model_fault_on_another_endpoint_is_skipped(poeti, http):
    poeti.stub({"fault": "refusal"}, endpoint="models")
    listing = http.get("/v1/models")

    assert listing.status_code == 200 and listing.json()["data"]
    assert poeti.requests[-1]["fault_skipped"] == "refusal changes a chat completion, and this answer is none"


def test_the_trace_names_the_fault_and_the_answer_is_billed(poeti, client, http):
    poeti.stub({"fault": "schema_violation"})
    answer = client.chat.completions.create(model="gpt-4o", messages=QUESTION, tools=TOOLS)

    trace = http.get(f"/api/v1/request-traces/{only_entry(poeti)['trace_id']}").json()["data"]
    assert (trace["status"], trace["error_code"]) == ("error", "fault_schema_violation")
    assert trace["completion_tokens"] == answer.usage.completion_tokens > 0


def test_scripted_calls_misbehave_too_and_every_choice_alike(poeti, client):
    poeti.stub({"tool_calls": [{"name": "GetWeather", "arguments": {"city": "Oslo"}}], "fault": "invalid_tool_arguments"})
    answer = client.chat.completions.create(model="gpt-4o", messages=QUESTION, tools=TOOLS, n=2)

    assert [c.message.tool_calls[0].function.arguments for c in answer.choices] == ['{"city": "Oslo",}'] * 2


def test_a_scenario_rule_and_chaos_script_them_and_the_same_seed_spoils_the_same_calls():
    scenario = {"name": "bad-model", "seed": 3, "rules": [
        {"match": {"endpoint": "chat", "message": "refuse"}, "respond": {"fault": "refusal"}},
    ], "chaos": {"rate": 0.5, "faults": ["unknown_tool", {"kind": "refusal", "message": "chaos says no"}]}}

    def run() -> list:
        with MockServer() as server, httpx.Client(base_url=server.base_url) as http:
            server.use(scenario)
            for i in range(12):
                body = {"model": "gpt-4o", "messages": [{"role": "user", "content": f"question {i}"}], "tools": TOOLS}
                http.post("/chat/completions", json=body, headers={"Authorization": f"Bearer {server.api_key}"})
            http.post("/chat/completions", headers={"Authorization": f"Bearer {server.api_key}"},
                      json={"model": "gpt-4o", "messages": [{"role": "user", "content": "please refuse"}]})
            return [(e["rule"], e.get("fault")) for e in server.requests]

    seen = run()
    assert seen[-1] == ("bad-model/rules[0]", "refusal")
    spoiled = [fault for rule, fault in seen[:-1] if rule == "bad-model/chaos"]
    assert 2 <= len(spoiled) <= 10 and set(spoiled) <= {"unknown_tool", "refusal"}
    assert all(fault is None for rule, fault in seen[:-1] if rule is None)
    assert run() == seen
