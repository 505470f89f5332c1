"""Which tools "the model" calls, turn after turn, so that agent loops end.

Pure. On the first turn (the last message is the user's) the model calls the
tools the prompt names, reading tool names as words (`GetWeather`,
`get_weather`, `get-weather` and `weather.get` all hold "weather"). After tool
results it moves on: the tools the prompt named that have not been called since
the prompt; then the output tool (a framework's way to ask for the final,
structured answer: pydantic-ai's `final_result`, LangChain's tool named after
the response class); then, under `"auto"`, no tool at all (the model talks).
Frameworks that force a call (`tool_choice: "required"`) on every turn thus
get their output tool called once the work is done, instead of the same tool
for ever.
"""

from __future__ import annotations

import re
from typing import Final

from mockpoeti.answers.chat_request import ChatRequest

# CamelCase humps (an acronym before a capitalised word stays one: HTTPRequest -> http, request),
# lower-case runs, digits, and letters outside ASCII; anything else (_ - . space) separates.
_NAME_WORD: Final = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|\d+|[^\W\d_a-zA-Z]+")
NAMED_WORD_LENGTH: Final = 4  # a word of the name at least this long, found in the prompt, names the tool
OUTPUT_FIRST_WORDS: Final = frozenset({"final"})  # final_result (pydantic-ai), final_answer, FinalOutput
OUTPUT_LAST_WORDS: Final = frozenset({"output", "response"})  # city_output, CityResponse


def name_words(name: str) -> list[str]:
    """A function name as lower-case words: `GetWeather` -> ["get", "weather"]."""
    return [w.lower() for w in _NAME_WORD.findall(name)]


def chosen_tools(request: ChatRequest) -> list[tuple[int, dict]]:
    """The tools "the model" calls, each with its position in `tools`.

    A tool named by `tool_choice` is called whatever the turn. Otherwise, on
    the first turn: the tools whose names the last user message holds (a word
    of four letters or more: `weather` for `get_weather`), all of them when
    `parallel_tool_calls` allows; else the first tool any word of whose name
    appears; else the first tool that is not an output tool. After tool
    results: see `next_tools`.
    """
    choice = request.tool_choice
    if not request.tools or choice in (None, "none"):
        return []
    tools = list(enumerate(request.tools))
    if choice not in ("auto", "required"):
        return [next((i, t) for i, t in tools if t["function"]["name"] == choice)]
    text = request.last_user_text.lower()
    words = {i: name_words(t["function"]["name"]) for i, t in tools}
    named = [(i, t) for i, t in tools if any(len(w) >= NAMED_WORD_LENGTH and w in text for w in words[i])]
    if request.answering_tool_result:
        return next_tools(request, tools, named)
    if len(named) > 1 and request.parallel_tool_calls:
        return named
    if named:
        return named[:1]
    loose = [(i, t) for i, t in tools if any(w in text for w in words[i])]
    if loose:
        return loose[:1]
    outputs = output_tools(request)
    return [next(((i, t) for i, t in tools if i not in outputs), tools[0])]


def next_tools(request: ChatRequest, tools: list[tuple[int, dict]], named: list[tuple[int, dict]]) -> list[tuple[int, dict]]:
    """After tool results, the loop moves on: the named tools not called since the
    last user message (all at once when `parallel_tool_calls` allows); else the
    output tool; else, under `"auto"`, none (the model answers in words, or JSON
    under `response_format`); else (`"required"`) the last declared tool not yet
    called since the prompt, and when every tool has had its turn, the first."""
    called = called_since_prompt(request.messages)
    outputs = output_tools(request)
    pending = [(i, t) for i, t in named if i not in outputs and t["function"]["name"] not in called]
    if pending:
        return pending if request.parallel_tool_calls else pending[:1]
    if outputs:
        return [tools[min(outputs)]]
    if request.tool_choice == "auto":
        return []
    fresh = [(i, t) for i, t in tools if t["function"]["name"] not in called]
    return [fresh[-1] if fresh else tools[0]]


def called_since_prompt(messages: tuple[dict, ...]) -> set[str]:
    """The names of the functions the assistant called after the last user message."""
    called: set[str] = set()
    for message in messages[::-1]:  # (reversed() here stops mypyc with an internal error)
        role = message.get("role")
        if role == "user":
            break
        if role == "assistant":
            for call in message.get("tool_calls") or ():
                function = call.get("function")
                if isinstance(function, dict) and isinstance(function.get("name"), str):
                    called.add(function["name"])
    return called


def output_tools(request: ChatRequest) -> set[int]:
    """The positions of the tools that are plainly a framework's output tool: `final_result`
    (and `final_result_City`), names ending in `_output`/`_response`, or a tool that is the
    response schema itself (named after its `title`, or with the same properties)."""
    schema = request.json_schema if isinstance(request.json_schema, dict) else {}
    title = schema.get("title")
    keys = _property_names(schema)
    out = set()
    for i, tool in enumerate(request.tools):
        function = tool["function"]
        words = name_words(function["name"])
        by_name = bool(words) and (words[0] in OUTPUT_FIRST_WORDS or words[-1] in OUTPUT_LAST_WORDS)
        is_schema = function["name"] == title or (bool(keys) and _property_names(function.get("parameters")) == keys)
        if by_name or is_schema:
            out.add(i)
    return out


def _property_names(schema: object) -> frozenset[str]:
    properties = schema.get("properties") if isinstance(schema, dict) else None
    return frozenset(properties) if isinstance(properties, dict) else frozenset()
