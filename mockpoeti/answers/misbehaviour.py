"""The model's misbehaviour, on demand: answers that are well formed on the wire and
wrong in what they say, the failures agent code must survive.

Pure. Each fault kind of `script.MODEL_FAULTS` turns a completion (generated or
scripted) into its broken twin, every choice alike:

- `invalid_tool_arguments`: the first call's `arguments` is not JSON (a trailing
  comma: `{"city": "Paris",}`);
- `schema_violation`: the first call's arguments, or under `response_format:
  json_schema` the content, parse but break their schema (the first required
  property left out; else a property of the wrong type; else the wrong type
  altogether);
- `unknown_tool`: the first call names a tool the request did not declare
  (its name with `_v2` appended; `lookup` when no tool is declared);
- `truncated_tool_call`: the answer stops halfway through the last call's
  arguments, with `finish_reason: "length"`;
- `refusal`: `content` null and `refusal` set (the fault's `message`, or a
  sentence in the prompt's language);
- `duplicate_tool_call_ids`: two calls share one id (a second call is added
  when the answer had one).

A text answer gets the calls the model would make under `tool_choice:
"required"` first. A fault that needs what the request lacks (tools; for
`schema_violation`, tools or a JSON schema) leaves the answer as it was and
says why, for the journal.
"""

from __future__ import annotations

import json
from dataclasses import replace

from mockpoeti.answers.chat_request import ChatRequest
from mockpoeti.answers.completion import Choice, Completion, ToolCall, call_tokens, generated_calls
from mockpoeti.answers.generate import TextGenerator, count_tokens, derive_seed, json_text, language_of
from mockpoeti.answers.script import Fault
from mockpoeti.answers.tool_choice import chosen_tools

# What a model says when it declines, by the prompt's language (a fault's `message` replaces it).
REFUSALS = {
    "en": "I'm sorry, but I can't help with that request.",
    "zh": "抱歉，我无法协助处理这个请求。",
    "ja": "申し訳ありませんが、そのご依頼にはお応えできません。",
}
UNDECLARED_TOOL = "lookup"  # what `unknown_tool` calls when the request declares no tool
UNKNOWN_SUFFIX = "_v2"  # ... and what it appends to a declared name otherwise


def misbehave(
    completion: Completion, request: ChatRequest, fault: Fault, generator: TextGenerator
) -> tuple[Completion, str | None]:
    """The completion as the misbehaving model answers it, and None; or the completion
    unchanged and the reason the fault was skipped."""
    kind = fault.kind
    if kind == "refusal":
        text = fault.message or REFUSALS.get(language_of(request.last_user_text), REFUSALS["en"])
        refused = tuple(Choice(c.index, None, "stop", count_tokens(text), refusal=text) for c in completion.choices)
        return replace(completion, choices=refused), None
    if kind == "schema_violation":
        if not request.tools and request.response_format != "json_schema" and not _has_calls(completion):
            return completion, "schema_violation needs tools or response_format json_schema in the request"
    elif kind != "unknown_tool" and not request.tools and not _has_calls(completion):
        return completion, f"{kind} needs tools in the request"
    broken = _BREAKERS[kind]
    choices = tuple(
        broken(c, request, generator, derive_seed(completion.seed, "misbehaviour", c.index)) for c in completion.choices
    )
    return replace(completion, choices=choices), None


def _has_calls(completion: Completion) -> bool:
    return any(c.tool_calls for c in completion.choices)


def _calls(choice: Choice, request: ChatRequest, generator: TextGenerator, seed: int) -> list[ToolCall]:
    """The choice's calls; for a text answer, the calls the model makes when it must call."""
    if choice.tool_calls:
        return list(choice.tool_calls)
    if not request.tools:
        return []
    forced = request if request.tool_choice not in ("auto", "none", None) else replace(request, tool_choice="required")
    return list(generated_calls(forced, generator, seed, chosen_tools(forced)))


def _with_calls(choice: Choice, calls: list[ToolCall], finish_reason: str = "tool_calls") -> Choice:
    content = choice.content if choice.tool_calls else None  # a forced call replaces the text
    tokens = call_tokens(tuple(calls)) + (count_tokens(content) if content else 0)
    return replace(choice, content=content, tool_calls=tuple(calls), finish_reason=finish_reason, completion_tokens=tokens)


def _invalid_arguments(choice: Choice, request: ChatRequest, generator: TextGenerator, seed: int) -> Choice:
    calls = _calls(choice, request, generator, seed)
    text = calls[0].arguments.rstrip()
    broken = text[:-1].rstrip() + ",}" if text.endswith("}") else text + ","
    calls[0] = replace(calls[0], arguments=broken)
    return _with_calls(choice, calls)


def _schema_violation(choice: Choice, request: ChatRequest, generator: TextGenerator, seed: int) -> Choice:
    if choice.tool_calls or (request.tools and request.response_format != "json_schema"):
        calls = _calls(choice, request, generator, seed)
        value = violate(_loads(calls[0].arguments), _parameters(request, calls[0].name))
        calls[0] = replace(calls[0], arguments=json_text(value))
        return _with_calls(choice, calls)
    content = json_text(violate(_loads(choice.content or ""), request.json_schema or {}))
    return replace(choice, content=content, completion_tokens=count_tokens(content))


def _unknown_tool(choice: Choice, request: ChatRequest, generator: TextGenerator, seed: int) -> Choice:
    calls = _calls(choice, request, generator, seed)
    declared = {t["function"]["name"] for t in request.tools}
    if not calls:
        arguments = json_text({"query": request.last_user_text[:200]})
        calls = [ToolCall(id="call_" + format(derive_seed(seed, "id"), "016x"), name=UNDECLARED_TOOL, arguments=arguments)]
    else:
        name = calls[0].name + UNKNOWN_SUFFIX
        while name in declared:
            name += UNKNOWN_SUFFIX
        calls[0] = replace(calls[0], name=name)
    return _with_calls(choice, calls)


def _truncated(choice: Choice, request: ChatRequest, generator: TextGenerator, seed: int) -> Choice:
    calls = _calls(choice, request, generator, seed)
    last = calls[-1]
    calls[-1] = replace(last, arguments=last.arguments[: max(1, len(last.arguments) // 2)])
    return _with_calls(choice, calls, "length")


def _duplicate_ids(choice: Choice, request: ChatRequest, generator: TextGenerator, seed: int) -> Choice:
    calls = _calls(choice, request, generator, seed)
    if len(calls) == 1:
        position = next((i for i, t in enumerate(request.tools) if t["function"]["name"] == calls[0].name), None)
        if position is None:
            calls.append(calls[0])
        else:
            calls += generated_calls(request, generator, derive_seed(seed, "again"), [(position, request.tools[position])])
    calls[1] = replace(calls[1], id=calls[0].id)
    return _with_calls(choice, calls)


_BREAKERS = {
    "invalid_tool_arguments": _invalid_arguments,
    "schema_violation": _schema_violation,
    "unknown_tool": _unknown_tool,
    "truncated_tool_call": _truncated,
    "duplicate_tool_call_ids": _duplicate_ids,
}


def _parameters(request: ChatRequest, name: str) -> dict:
    for tool in request.tools:
        if tool["function"]["name"] == name:
            parameters = tool["function"].get("parameters")
            return parameters if isinstance(parameters, dict) else {}
    return {}


def _loads(text: str) -> object:
    try:
        return json.loads(text)
    except ValueError:
        return {}


# JSON values of each type, tried in this order for one the schema does not allow.
_WRONG_VALUES: tuple[tuple[tuple[str, ...], object], ...] = (
    (("string",), "not a valid value"),
    (("integer", "number"), 0),
    (("boolean",), True),
    (("array",), []),
    (("object",), {}),
)


def violate(value: object, schema: dict) -> object:
    """`value` made to break `schema` while staying JSON: a required property left out,
    else a property of a type it does not allow, else a value of the wrong type."""
    if isinstance(value, dict):
        required = schema.get("required")
        if isinstance(required, list):
            for key in required:
                if key in value:
                    return {k: v for k, v in value.items() if k != key}
        properties = schema.get("properties")
        if isinstance(properties, dict):
            for key in value:
                wrong = _wrong_value(properties.get(key))
                if wrong is not None:
                    return {**value, key: wrong[0]}
    wrong = _wrong_value(schema)
    return wrong[0] if wrong is not None else [value]


def _wrong_value(schema: object) -> tuple[object] | None:
    """A value whose JSON type `schema`'s `type` leaves out, or None when it names no type."""
    kinds = schema.get("type") if isinstance(schema, dict) else None
    allowed = {kinds} if isinstance(kinds, str) else set(kinds) if isinstance(kinds, list) else None
    if not allowed:
        return None
    for types, wrong in _WRONG_VALUES:
        if allowed.isdisjoint(types):
            return (wrong,)
    return None
