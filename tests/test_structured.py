"""Structured outputs that validate: every generated value passes its JSON Schema.

Through the official SDK against the `poeti` fixture: `response_format:
json_schema` content and tool-call arguments, for pydantic-made schemas with
every constraint and for raw schemas, each checked with `jsonschema` (Draft
2020-12, format checking on) and, for pydantic models, by the model itself.
And the bounds: a schema that needs more than mockpoeti generates is a prompt
400 naming the bound and the schema path, never a hang.
"""

from __future__ import annotations

import concurrent.futures
import datetime
import decimal
import enum
import ipaddress
import json
import time
import uuid
from typing import Annotated, Literal, Optional, Union

import httpx
import jsonschema
import openai
import pytest
from pydantic import BaseModel, EmailStr, Field, HttpUrl, TypeAdapter, conint, conlist, constr

from mockpoeti import MockServer
from mockpoeti.answers.structured import MAX_DEPTH, MAX_ITEMS, MAX_NODES, MAX_OUTPUT_BYTES, MAX_PATTERN_LENGTH, MAX_STRING_LENGTH

ANSWERS = 50  # per schema: different prompts, so different seeded answers
FORMATS = ("date-time", "date", "time", "duration", "email", "hostname", "ipv4", "ipv6", "uri", "uuid")
Validator = jsonschema.Draft202012Validator


# --- the battery: pydantic models ---------------------------------------------

class Person(BaseModel):
    id: uuid.UUID
    name: str = Field(min_length=1, max_length=20)
    email: EmailStr
    website: HttpUrl
    age: conint(ge=0, le=130)  # type: ignore[valid-type]
    score: float = Field(gt=0, lt=1)
    tags: conlist(str, min_length=1, max_length=3)  # type: ignore[valid-type]


class Event(BaseModel):
    when: datetime.datetime
    day: datetime.date
    at: datetime.time
    lasts: datetime.timedelta
    kind: Literal["meeting", "call", "lunch"]
    note: Optional[str]  # noqa: UP045 (the Optional spelling is what users write)
    attendees: Optional[conint(ge=10, le=20)] = None  # type: ignore[valid-type]  # noqa: UP045


class Network(BaseModel):
    v4: ipaddress.IPv4Address
    v6: ipaddress.IPv6Address
    hosts: list[ipaddress.IPv4Address] = Field(min_length=2, max_length=4)


class Codes(BaseModel):
    code: constr(pattern=r"^[A-Z]{3}-\d{4}$")  # type: ignore[valid-type]
    slug: constr(pattern=r"^[a-z0-9]+(?:-[a-z0-9]+)*$", min_length=3, max_length=30)  # type: ignore[valid-type]
    phone: constr(pattern=r"^\+?[1-9]\d{7,14}$")  # type: ignore[valid-type]
    color: constr(pattern=r"^#[0-9a-fA-F]{6}$")  # type: ignore[valid-type]
    zip: constr(pattern=r"^\d{5}(-\d{4})?$")  # type: ignore[valid-type]
    word: Annotated[str, Field(pattern=r"^\w+$", max_length=8)]


class Node(BaseModel):
    name: str = Field(max_length=10)
    children: list[Node] = Field(default_factory=list, max_length=3)


class Linked(BaseModel):
    value: int
    next: Optional[Linked] = None  # noqa: UP045


class Numbers(BaseModel):
    step5: conint(multiple_of=5, ge=-50, le=50)  # type: ignore[valid-type]
    quarter: float = Field(multiple_of=0.25, ge=0, le=10)
    tenth: float = Field(multiple_of=0.1, gt=0, le=1)
    big: conint(gt=1_000_000)  # type: ignore[valid-type]
    negative: float = Field(lt=-5)
    exact: decimal.Decimal
    between: int = Field(gt=3, lt=5)


class Collections(BaseModel):
    ids: set[int]
    pair: tuple[int, str, bool]
    weights: dict[str, float]
    letters: conlist(Literal["x", "y", "z"], min_length=2, max_length=3)  # type: ignore[valid-type]
    matrix: list[conlist(int, min_length=2, max_length=2)] = Field(min_length=1, max_length=3)  # type: ignore[valid-type]


class Cat(BaseModel):
    pet: Literal["cat"]
    lives: conint(ge=1, le=9)  # type: ignore[valid-type]


class Dog(BaseModel):
    pet: Literal["dog"]
    good: bool


class Pets(BaseModel):
    pet: Union[Cat, Dog] = Field(discriminator="pet")  # noqa: UP007
    id_or_name: Union[int, str]  # noqa: UP007


class Color(enum.Enum):
    RED = "red"
    GREEN = "green"


class Item(BaseModel):
    sku: constr(pattern=r"^SKU-[0-9]{6}$")  # type: ignore[valid-type]
    quantity: conint(ge=1)  # type: ignore[valid-type]
    price: float = Field(ge=0)
    color: Color


class Order(BaseModel):
    order_id: uuid.UUID
    items: list[Item] = Field(min_length=1, max_length=5)
    placed: datetime.datetime
    customer: Person


MODELS = [Person, Event, Network, Codes, Node, Linked, Numbers, Collections, Pets, Order]


# --- the battery: raw schemas -------------------------------------------------

RAW = {
    "every-format": {
        "type": "object",
        "properties": {f.replace("-", "_"): {"type": "string", "format": f} for f in FORMATS},
        "required": [f.replace("-", "_") for f in FORMATS],
        "additionalProperties": False,
    },
    "type-lists": {
        "type": "object",
        "properties": {
            "maybe": {"type": ["string", "null"]},
            "either": {"type": ["integer", "string"], "minimum": 3, "maxLength": 2},
            "nothing": {"type": "null"},
        },
        "required": ["maybe", "either", "nothing"],
    },
    "const-and-enum": {
        "type": "object",
        "properties": {
            "version": {"const": 2},
            "mixed": {"enum": ["a", 1, None, True, {"k": "v"}]},
            "typed": {"type": "integer", "enum": ["one", 1, 2]},
        },
        "required": ["version", "mixed", "typed"],
    },
    "all-of": {
        "allOf": [
            {"type": "object", "properties": {"a": {"type": "integer", "minimum": 0}}, "required": ["a"]},
            {"properties": {"a": {"maximum": 3}, "b": {"type": "string", "format": "email"}}, "required": ["b"]},
        ],
    },
    "tuple-closed": {
        "type": "array",
        "prefixItems": [{"type": "string", "format": "uuid"}, {"type": "integer", "minimum": 10, "maximum": 10}],
        "items": False,
        "minItems": 1,
    },
    "unique-nested": {
        "type": "array",
        "minItems": 3,
        "maxItems": 6,
        "uniqueItems": True,
        "items": {"type": "array", "items": {"type": "boolean"}, "minItems": 2, "maxItems": 2},
    },
    "map-with-minimum": {
        "type": "object",
        "additionalProperties": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
        "minProperties": 3,
        "maxProperties": 4,
    },
    "lengths": {
        "type": "object",
        "properties": {
            "long": {"type": "string", "minLength": 50, "maxLength": 60},
            "exact": {"type": "string", "minLength": 7, "maxLength": 7},
            "empty": {"type": "string", "maxLength": 0},
        },
        "required": ["long", "exact", "empty"],
    },
    "json-value": {
        "$defs": {"json": {"anyOf": [
            {"type": "string"}, {"type": "number"}, {"type": "boolean"}, {"type": "null"},
            {"type": "array", "items": {"$ref": "#/$defs/json"}},
            {"type": "object", "additionalProperties": {"$ref": "#/$defs/json"}},
        ]}},
        "$ref": "#/$defs/json",
    },
    "openai-strict": {
        "type": "object",
        "properties": {
            "steps": {"type": "array", "items": {
                "type": "object",
                "properties": {"explanation": {"type": "string"}, "output": {"type": "string"}},
                "required": ["explanation", "output"],
                "additionalProperties": False,
            }},
            "final_answer": {"type": "string"},
            "confidence": {"anyOf": [{"type": "number", "minimum": 0, "maximum": 1}, {"type": "null"}]},
        },
        "required": ["steps", "final_answer", "confidence"],
        "additionalProperties": False,
    },
    "ref-with-siblings": {
        "$defs": {"Code": {"type": "string", "pattern": "^[a-z]{2,}$"}},
        "type": "object",
        "properties": {"code": {"$ref": "#/$defs/Code", "maxLength": 4}},
        "required": ["code"],
    },
    "lookahead-pattern": {  # pydantic's regex engine has no look-around; JSON Schema's has
        "type": "object",
        "properties": {"secret": {"type": "string", "pattern": "^(?=.*[A-Z])(?=.*\\d)[A-Za-z\\d]{8,12}$"}},
        "required": ["secret"],
    },
    "multiple-of-integers": {
        "type": "array",
        "minItems": 5,
        "items": {"type": "integer", "multipleOf": 7, "exclusiveMinimum": 0, "maximum": 70},
    },
}

BATTERY = [pytest.param(m.model_json_schema(), m, id=m.__name__) for m in MODELS]
BATTERY += [pytest.param(schema, None, id=name) for name, schema in RAW.items()]


def checker(schema: dict) -> jsonschema.protocols.Validator:
    Validator.check_schema(schema)  # the battery itself must be valid JSON Schema
    return Validator(schema, format_checker=Validator.FORMAT_CHECKER)


def structured(client: openai.OpenAI, schema: dict, prompt: str, **extra) -> str:
    completion = client.chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": prompt}],
        response_format={"type": "json_schema", "json_schema": {"name": "answer", "schema": schema}},
        **extra,
    )
    assert completion.choices[0].finish_reason == "stop"
    return completion.choices[0].message.content


def test_format_checking_covers_every_generated_format():
    """jsonschema checks some formats only with extra packages (fqdn, rfc3986-validator,
    isoduration: `jsonschema[format-nongpl]`); without them it would pass anything."""
    assert set(FORMATS) <= set(Validator.FORMAT_CHECKER.checkers)
    with pytest.raises(jsonschema.ValidationError):
        checker({"type": "string", "format": "hostname"}).validate("not a host name!")
    with pytest.raises(jsonschema.ValidationError):
        checker({"type": "string", "format": "duration"}).validate("three days")


@pytest.mark.parametrize(("schema", "model"), BATTERY)
def test_every_json_schema_answer_validates(client, schema, model):
    validator = checker(schema)
    answers = [structured(client, schema, f"Answer number {i}, please.") for i in range(ANSWERS)]

    for text in answers:
        value = json.loads(text)
        errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(value)]
        assert not errors, (errors, text)
        if model is not None:
            model.model_validate_json(text)  # pydantic's own checks (EmailStr, HttpUrl, timedelta, ...)
    assert len(set(answers)) > 1, "the answers should vary with the prompt"


@pytest.mark.parametrize(("schema", "model"), BATTERY)
def test_every_tool_argument_validates(client, schema, model):
    if schema.get("type") != "object":  # parameters are an object: the schema becomes its one property
        inner = {k: v for k, v in schema.items() if k != "$defs"}
        schema = {"type": "object", "properties": {"value": inner}, "required": ["value"], "$defs": schema.get("$defs", {})}
    validator = checker(schema)
    tool = {"type": "function", "function": {"name": "record", "parameters": schema}}

    for i in range(ANSWERS):
        completion = client.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": f"Record case {i}"}], tools=[tool], tool_choice="required"
        )
        [call] = completion.choices[0].message.tool_calls
        arguments = json.loads(call.function.arguments)
        assert not list(validator.iter_errors(arguments)), call.function.arguments
        if model is not None and schema.get("title") == model.__name__:
            model.model_validate(arguments)


@pytest.mark.parametrize("model", [Person, Event, Codes, Node, Numbers, Pets, Order])
def test_sdk_parse_returns_the_model(client, model):
    """`parse` sends OpenAI's strict version of the model's schema and validates the answer with pydantic."""
    for i in range(10):
        completion = client.chat.completions.parse(
            model="gpt-4o", messages=[{"role": "user", "content": f"Make one, #{i}"}], response_format=model
        )
        message = completion.choices[0].message
        assert isinstance(message.parsed, model)
        assert message.parsed == model.model_validate_json(message.content)


def test_sdk_parse_with_strict_function_tools(client):
    tools = [openai.pydantic_function_tool(Codes), openai.pydantic_function_tool(Event)]
    for i in range(10):
        completion = client.chat.completions.parse(
            model="gpt-4o", messages=[{"role": "user", "content": f"Codes please ({i})"}], tools=tools, tool_choice="required"
        )
        [call] = completion.choices[0].message.tool_calls
        assert call.function.name == "Codes"
        assert isinstance(call.function.parsed_arguments, Codes)


def test_the_same_request_gets_the_same_value_and_another_prompt_another(client):
    first = structured(client, Order.model_json_schema(), "the same")
    again = structured(client, Order.model_json_schema(), "the same")
    other = structured(client, Order.model_json_schema(), "another")

    assert first == again
    assert first != other


class Price(BaseModel):
    amount: decimal.Decimal  # pydantic 2.14: anyOf [number, string]; older ones give the string a pattern
    currency: Literal["EUR", "USD", "CNY"]


@pytest.mark.parametrize("seed", [1, 7, 42, 2026])
def test_sdk_parse_of_a_decimal_gets_a_number_whatever_the_seed(seed):
    """A model writes `"amount": 12.5`, not a word that fits `{"type": "string"}` and fails `Decimal`."""
    with MockServer(seed=seed) as server:
        with openai.OpenAI(base_url=server.base_url, api_key=server.api_key, max_retries=0) as client:
            for i in range(10):
                completion = client.chat.completions.parse(
                    model="gpt-4o", messages=[{"role": "user", "content": f"What does it cost? #{i}"}], response_format=Price
                )
                message = completion.choices[0].message
                assert isinstance(message.parsed, Price) and isinstance(message.parsed.amount, decimal.Decimal)
                assert isinstance(json.loads(message.content)["amount"], (int, float)), message.content


UNIONS = [  # (a union, what every answer must be): the branch a model would answer with
    ({"anyOf": [{"type": "string"}, {"type": "number"}]}, lambda v: isinstance(v, (int, float))),
    ({"anyOf": [{"type": "null"}, {"type": "string"}, {"type": "integer"}]}, lambda v: isinstance(v, int)),
    ({"type": ["null", "string", "boolean"]}, lambda v: isinstance(v, bool)),
    ({"anyOf": [{"type": "string"}, {"type": "string", "pattern": "^[A-Z]{3}$"}]}, lambda v: len(v) == 3 and v.isupper()),
    ({"anyOf": [{"type": "string"}, {"$ref": "#/$defs/Color"}], "$defs": {"Color": {"enum": ["red", "green"]}}},
     lambda v: v in ("red", "green")),
    ({"anyOf": [{"type": "number"}, {"type": "integer", "minimum": 1_000}]}, lambda v: isinstance(v, int) and v >= 1_000),
    ({"anyOf": [{"type": "number", "minimum": 5, "maximum": 1}, {"type": "string"}]}, lambda v: isinstance(v, str)),  # no number
]


@pytest.mark.parametrize(("union", "expected"), UNIONS, ids=[
    "number-before-string", "integer-before-string-and-null", "type-list", "pattern-before-free-string", "enum-via-ref",
    "integer-before-number", "string-when-no-number-fits",
])
def test_a_union_is_answered_with_the_branch_a_model_would_take(client, union, expected):
    schema = {"type": "object", "properties": {"value": union.copy()}, "required": ["value"]}
    if "$defs" in union:
        schema["$defs"] = schema["properties"]["value"].pop("$defs")
    values = [json.loads(structured(client, schema, f"Pick one, #{i}"))["value"] for i in range(10)]

    assert all(expected(v) for v in values), values
    assert not [e for v in values for e in checker(schema).iter_errors({"value": v})]


def test_named_fields_keep_realistic_strings(client):
    schema = {"type": "object", "properties": {"city": {"type": "string"}, "email": {"type": "string"}}}
    values = [json.loads(structured(client, schema, f"where {i}")) for i in range(10)]

    assert all("@" in v["email"] for v in values)
    assert all(v["city"][:1].isupper() for v in values)


def test_json_object_mode_keeps_its_shape(client):
    completion = client.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "Give me JSON"}], response_format={"type": "json_object"}
    )
    value = json.loads(completion.choices[0].message.content)

    assert set(value) == {"answer", "confidence", "keywords"}
    assert 0 <= value["confidence"] <= 1 and isinstance(value["keywords"], list)


def test_several_choices_all_validate(client):
    schema = Person.model_json_schema()
    completion = client.chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": "three people"}],
        response_format={"type": "json_schema", "json_schema": {"name": "p", "schema": schema}},
        n=3,
    )

    assert len(completion.choices) == 3
    for choice in completion.choices:
        Person.model_validate_json(choice.message.content)


# --- tools without parameters -------------------------------------------------

@pytest.mark.parametrize("function", [
    {"name": "ping"},
    {"name": "ping", "parameters": {"type": "object", "properties": {}}},
    {"name": "ping", "parameters": {"type": "object", "properties": {}, "required": [], "additionalProperties": False}},
])
def test_a_tool_without_parameters_gets_empty_arguments(client, function):
    completion = client.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "ping"}], tools=[{"type": "function", "function": function}]
    )

    [call] = completion.choices[0].message.tool_calls
    assert call.function.name == "ping"
    assert call.function.arguments == "{}"


# --- bounds: refused at once, naming the bound and the path ------------------

SELF_12 = {
    "$defs": {"N": {
        "type": "object",
        "properties": {f"p{i}": {"$ref": "#/$defs/N"} for i in range(12)},
        "required": [f"p{i}" for i in range(12)],
    }},
    "$ref": "#/$defs/N",
}
REFUSED = [
    pytest.param(
        {"type": "object", "properties": {"items": {"type": "array", "minItems": 1_000_000_000}}},
        "response_format.json_schema.schema.properties.items.minItems", str(MAX_ITEMS), id="minItems-1e9",
    ),
    pytest.param(
        {"type": "array", "minItems": 2_000_000}, "response_format.json_schema.schema.minItems", str(MAX_ITEMS), id="minItems-2e6"
    ),
    pytest.param(
        {"type": "string", "minLength": 1_000_000_000},
        "response_format.json_schema.schema.minLength", str(MAX_STRING_LENGTH), id="minLength-1e9",
    ),
    pytest.param(SELF_12, "response_format.json_schema.schema.$defs.N", str(MAX_DEPTH), id="12-self-references"),
    pytest.param(
        {"type": "array", "minItems": 100, "items": {"type": "array", "minItems": 100, "items": {"type": "integer"}}},
        "response_format.json_schema.schema.items.items", str(MAX_NODES), id="too-many-nodes",
    ),
    pytest.param(
        {"type": "array", "minItems": 100, "items": {"type": "string", "minLength": 4000}},
        "response_format.json_schema.schema.items", str(MAX_OUTPUT_BYTES), id="too-many-bytes",
    ),
    pytest.param(
        {"type": "integer", "minimum": 5, "maximum": 3},
        "response_format.json_schema.schema.minimum", "no integer", id="min-above-max",
    ),
    pytest.param(
        {"type": "object", "properties": {"n": {"type": "number", "minimum": "abc"}}},
        "response_format.json_schema.schema.properties.n.minimum", "expected a number", id="minimum-abc",
    ),
    pytest.param(
        {"$defs": {"A": {"allOf": [{"$ref": "#/$defs/A"}]}}, "$ref": "#/$defs/A"},
        "response_format.json_schema.schema.$defs.A.allOf[0].$ref", "refers back to itself", id="self-allOf",
    ),
    pytest.param(
        {"$defs": {"A": {"anyOf": [{"$ref": "#/$defs/A"}]}}, "$ref": "#/$defs/A"},
        "response_format.json_schema.schema.$defs.A.anyOf[0].$ref", "refers back to itself", id="self-anyOf",
    ),
    pytest.param(
        {"type": "string", "pattern": "^(a{1000}){1000}$"},
        "response_format.json_schema.schema.pattern", str(MAX_STRING_LENGTH), id="pattern-too-long",
    ),
    pytest.param(
        {"type": "string", "pattern": "^[a-z]+$", "minLength": 5, "maxLength": 3},
        "response_format.json_schema.schema.minLength", "maxLength", id="minLength-above-maxLength",
    ),
    pytest.param(
        {"type": "array", "items": {"enum": [1, 2]}, "uniqueItems": True, "minItems": 3},
        "response_format.json_schema.schema.uniqueItems", "distinct", id="unique-impossible",
    ),
    pytest.param(
        {"type": "string", "pattern": "\\p{L}+"},
        "response_format.json_schema.schema.pattern", "regular expression", id="bad-regex",
    ),
    pytest.param({"$ref": "#/$defs/Missing"}, "response_format.json_schema.schema.$ref", "leads nowhere", id="dangling-ref"),
    pytest.param(
        {"type": "string", "pattern": "a" * (MAX_PATTERN_LENGTH + 1)},
        "response_format.json_schema.schema.pattern", str(MAX_PATTERN_LENGTH), id="pattern-too-long-to-read",
    ),
]


@pytest.mark.parametrize(("schema", "path", "bound"), REFUSED)
def test_a_schema_past_the_bounds_is_refused_at_once(poeti, schema, path, bound):
    body = {
        "model": "gpt-4o",
        "messages": [{"role": "user", "content": "fill it"}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}},
    }
    with httpx.Client(base_url=poeti.url, headers={"Authorization": f"Bearer {poeti.api_key}"}, timeout=10) as http:
        started = time.perf_counter()
        response = http.post("/v1/chat/completions", json=body)
        elapsed = time.perf_counter() - started
        probe = http.post("/v1/chat/completions", json={"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]})

    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_request"
    assert f"'{path}'" in error["message"]
    assert bound in error["message"]
    assert elapsed < 2.0  # a few ms of work (README: Generation bounds); the margin is for a loaded machine
    assert probe.status_code == 200


def test_tool_parameters_past_the_bounds_are_refused_naming_the_tool(client):
    tools = [
        {"type": "function", "function": {"name": "ok", "parameters": {"type": "object", "properties": {}}}},
        {"type": "function", "function": {"name": "huge", "parameters": {
            "type": "object", "properties": {"rows": {"type": "array", "minItems": 2_000_000}}, "required": ["rows"],
        }}},
    ]
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "go"}], tools=tools,
            tool_choice={"type": "function", "function": {"name": "huge"}},
        )

    assert "'tools[1].function.parameters.properties.rows.minItems'" in caught.value.message
    assert str(MAX_ITEMS) in caught.value.message


def test_a_refused_schema_does_not_hold_up_other_clients(poeti):
    """While hostile schemas are refused on one connection, another is answered promptly."""
    body = {
        "model": "gpt-4o",
        "messages": [{"role": "user", "content": "x"}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": SELF_12}},
    }
    headers = {"Authorization": f"Bearer {poeti.api_key}"}

    def attack() -> list[int]:
        with httpx.Client(base_url=poeti.url, headers=headers, timeout=10) as http:
            return [http.post("/v1/chat/completions", json=body).status_code for _ in range(30)]

    # The work of a refusal, in CPU time (this process's: the server's thread and the client's), which a
    # busy machine does not change; a refusal that holds the loop long needs that much work.
    cpu = time.process_time()
    alone = attack()
    cpu_per_refusal = (time.process_time() - cpu) / len(alone)
    with concurrent.futures.ThreadPoolExecutor(1) as pool, httpx.Client(base_url=poeti.url, headers=headers, timeout=10) as probe:
        attacking = pool.submit(attack)
        waits = []
        while not attacking.done():
            started = time.perf_counter()
            assert probe.get("/v1/models").status_code == 200
            waits.append(time.perf_counter() - started)
        statuses = attacking.result()

    assert alone == statuses == [400] * 30
    assert cpu_per_refusal < 0.05, f"{cpu_per_refusal * 1000:.0f} ms of CPU per refused schema"  # measured ~1 ms
    assert max(waits) < 3.0  # answered throughout; how fast, on a loaded machine, is mostly the machine


def test_answers_are_byte_identical_under_one_seed():
    schema = Order.model_json_schema()
    body = {
        "model": "gpt-4o",
        "messages": [{"role": "user", "content": "an order"}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "o", "schema": schema}},
    }
    contents = []
    for _ in range(2):
        with MockServer(seed=5) as server, httpx.Client(base_url=server.url) as http:
            response = http.post("/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {server.api_key}"})
            contents.append(response.json()["choices"][0]["message"]["content"])

    assert contents[0] == contents[1]
    Order.model_validate_json(contents[0])


def test_timedelta_answers_parse_as_durations(client):
    """pydantic reads ISO 8601 durations; the generated ones must be ones it reads."""
    adapter = TypeAdapter(datetime.timedelta)
    schema = {"type": "object", "properties": {"d": {"type": "string", "format": "duration"}}, "required": ["d"]}
    for i in range(10):
        assert adapter.validate_python(json.loads(structured(client, schema, f"how long {i}"))["d"]) >= datetime.timedelta(0)
