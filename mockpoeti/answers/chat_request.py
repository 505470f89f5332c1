"""A chat completion request, validated into a frozen dataclass.

Pure. Every rejection is an `invalid_request` that names the field, the way
OpenAI does (`messages[1].role`), so a client sees exactly what to fix.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from mockpoeti.answers.generate import count_tokens
from mockpoeti.base.catalog import Model
from mockpoeti.base.errors import ApiError, invalid

ROLES: Final[tuple[str, ...]] = ("system", "developer", "user", "assistant", "tool", "function")
RESPONSE_FORMATS: Final[tuple[str, ...]] = ("text", "json_object", "json_schema")
MAX_UNKNOWN_SHOWN: Final = 32  # unknown top-level fields the journal names (the first, sorted)
MESSAGE_OVERHEAD: Final = 3  # tokens per message, as OpenAI counts them
IMAGE_TOKENS: Final = 85
MAX_TOP_LOGPROBS: Final = 20

# Enumerated parameters, as OpenAI's CreateChatCompletionRequest defines them.
SERVICE_TIERS: Final[tuple[str, ...]] = ("auto", "default", "flex", "scale", "priority", "fast")
REASONING_EFFORTS: Final[tuple[str, ...]] = ("none", "minimal", "low", "medium", "high", "xhigh", "max")
VERBOSITIES: Final[tuple[str, ...]] = ("low", "medium", "high")
MODALITIES: Final[tuple[str, ...]] = ("text", "audio")
CACHE_RETENTIONS: Final[tuple[str, ...]] = ("in_memory", "24h")
AUDIO_FORMATS: Final[tuple[str, ...]] = ("wav", "aac", "mp3", "flac", "opus", "pcm16")
SEARCH_CONTEXT_SIZES: Final[tuple[str, ...]] = ("low", "medium", "high")

# Every top-level field OpenAI's Chat Completions API knows; others are passed
# through (a gateway forwards provider parameters) but listed in `unknown_fields`.
KNOWN_FIELDS: Final = frozenset({
    "model", "messages", "audio", "frequency_penalty", "function_call", "functions", "logit_bias", "logprobs",
    "max_completion_tokens", "max_tokens", "metadata", "modalities", "moderation", "n", "parallel_tool_calls",
    "prediction", "presence_penalty", "prompt_cache_key", "prompt_cache_options", "prompt_cache_retention",
    "reasoning_effort", "response_format", "safety_identifier", "seed", "service_tier", "stop", "store", "stream",
    "stream_options", "temperature", "tool_choice", "tools", "top_logprobs", "top_p", "user", "verbosity",
    "web_search_options",
})


@dataclass(slots=True, init=False)
class ChatRequest:
    """Not frozen, though nothing writes to it: a frozen dataclass's __init__ sets each of these
    fields through object.__setattr__, 1.8 µs more per chat call (measured, 21 fields). Its
    `__init__` is written out (`init=False`): mypyc compiles that one, while the one `dataclass`
    makes runs interpreted, ~8x slower (tests/test_records.py keeps the two lists the same)."""

    model: Model
    messages: tuple[dict, ...]
    stream: bool = False
    include_usage: bool = False
    n: int = 1
    max_tokens: int | None = None
    stop: tuple[str, ...] = ()
    tools: tuple[dict, ...] = ()
    tool_choice: str | None = None  # None (no tools), "auto", "none", "required" or a function name
    response_format: str = "text"
    json_schema: dict | None = None
    prompt_tokens: int = 0
    logprobs: bool = False
    top_logprobs: int | None = None
    parallel_tool_calls: bool = True
    seed: int | None = None
    user: str | None = None
    service_tier: str | None = None
    reasoning_effort: str | None = None
    unknown_fields: tuple[str, ...] = ()  # top-level fields OpenAI does not define (typos such as `max_token`), sorted
    last_user_text: str = ""  # the text of the last user message: read by generation, templates, arguments

    def __init__(
        self, model: Model, messages: tuple[dict, ...], stream: bool = False, include_usage: bool = False, n: int = 1,
        max_tokens: int | None = None, stop: tuple[str, ...] = (), tools: tuple[dict, ...] = (),
        tool_choice: str | None = None, response_format: str = "text", json_schema: dict | None = None,
        prompt_tokens: int = 0, logprobs: bool = False, top_logprobs: int | None = None,
        parallel_tool_calls: bool = True, seed: int | None = None, user: str | None = None,
        service_tier: str | None = None, reasoning_effort: str | None = None, unknown_fields: tuple[str, ...] = (),
        last_user_text: str = "",
    ) -> None:
        self.model, self.messages, self.stream, self.include_usage, self.n = model, messages, stream, include_usage, n
        self.max_tokens, self.stop, self.tools, self.tool_choice = max_tokens, stop, tools, tool_choice
        self.response_format, self.json_schema, self.prompt_tokens = response_format, json_schema, prompt_tokens
        self.logprobs, self.top_logprobs, self.parallel_tool_calls = logprobs, top_logprobs, parallel_tool_calls
        self.seed, self.user, self.service_tier, self.reasoning_effort = seed, user, service_tier, reasoning_effort
        self.unknown_fields, self.last_user_text = unknown_fields, last_user_text

    @property
    def last_by_role(self) -> dict[str, str]:
        return last_texts(self.messages)

    @property
    def answering_tool_result(self) -> bool:
        return bool(self.messages) and self.messages[-1].get("role") in ("tool", "function")


def last_texts(messages: tuple[dict, ...] | list[dict]) -> dict[str, str]:
    """The text of the last message of each role (`{{ last.tool }}` in templates)."""
    out: dict[str, str] = {}
    for message in messages:
        role = message.get("role")
        if isinstance(role, str):
            out[role] = message_text(message)
    return out


def message_text(message: dict) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    return ""


def parse_chat_request(body: Any, models: dict[str, Model]) -> ChatRequest:
    """Check a request body the way the real gateway does; raise `ApiError` otherwise.

    One pass over the fields the client sent, each checked by its entry in `_CHECKS`: a
    request pays for what it sends, not for the forty fields it could have (the chain of
    lookups this replaced was a sixth of a chat call's cost). The rules between fields
    come after the pass."""
    if not isinstance(body, dict):
        raise invalid("body", "a JSON object")
    model_id = _required(body, "model", str, "a string")
    messages = _messages(_required(body, "messages", list, "a non-empty array of messages"))
    given: dict[str, Any] = {}
    unknown: list[str] = []
    checks = _CHECKS
    for name, value in body.items():
        check = checks.get(name)
        if check is None:
            if name not in KNOWN_FIELDS:
                unknown.append(name)
        elif value is not None:  # null is the field left out, as OpenAI reads it
            given[name] = check(value)
    stream = include_usage = False
    n, max_tokens, response_format, schema = 1, None, "text", None
    stop: tuple[str, ...] = ()  # declared: compiled, a variable holds only the type inferred from its first value
    tools: tuple[dict, ...] = ()
    logprobs, top_logprobs, parallel_tool_calls, seed, user, service_tier, reasoning_effort = _LESS_USED_DEFAULTS
    if given:
        get = given.get
        stream = get("stream", False)
        if "stream_options" in given:
            if not stream:
                raise invalid("stream_options", "to be set only when 'stream' is true")
            include_usage = given["stream_options"]
        n = get("n", 1)
        max_tokens = get("max_completion_tokens", get("max_tokens"))
        stop = get("stop", ())
        tools = get("tools", ())
        response_format, schema = get("response_format", ("text", None))
        logprobs = get("logprobs", False)
        top_logprobs = get("top_logprobs")
        if top_logprobs is not None and not logprobs:
            raise invalid("top_logprobs", "to be set only when 'logprobs' is true")
        parallel_tool_calls = get("parallel_tool_calls", True)
        seed, user, service_tier, reasoning_effort = get("seed"), get("user"), get("service_tier"), get("reasoning_effort")
        if "audio" not in given and "audio" in get("modalities", ()):
            raise ApiError("invalid_request", "Missing required field 'audio': it is required when 'modalities' includes "
                                              "'audio'.")
    tool_choice = _tool_choice(body.get("tool_choice"), tools)

    model = models.get(model_id)
    if model is None:
        raise ApiError("model_not_found", f"The model '{model_id}' does not exist or you do not have access to it.")
    prompt_tokens = count_prompt_tokens(messages, tools)
    if prompt_tokens + (max_tokens or 0) > model.context_length:
        raise ApiError(
            "context_length_exceeded",
            f"This model's maximum context length is {model.context_length} tokens. However, you requested "
            f"{prompt_tokens + (max_tokens or 0)} tokens ({prompt_tokens} in the messages, "
            f"{max_tokens or 0} in the completion). Please reduce the length of the messages or completion.",
        )
    return ChatRequest(  # positionally, in the fields' order: a call with twenty keywords costs more than its answer's id
        model, messages, stream, include_usage, n, max_tokens, stop, tools, tool_choice, response_format, schema,
        prompt_tokens, logprobs, top_logprobs, parallel_tool_calls, seed, user, service_tier, reasoning_effort,
        tuple(heapq.nsmallest(MAX_UNKNOWN_SHOWN, unknown)) if unknown else (), _last_user_text(messages),
    )


def _last_user_text(messages: tuple[dict, ...]) -> str:
    for message in messages[::-1]:  # (reversed() here stops mypyc with an internal error)
        if message.get("role") == "user":
            return message_text(message)
    return ""


def count_prompt_tokens(messages: tuple[dict, ...], tools: tuple[dict, ...] = ()) -> int:
    total = 3  # every reply is primed with <|start|>assistant<|message|>
    for message in messages:
        total += MESSAGE_OVERHEAD + count_tokens(message_text(message))
        if isinstance(message.get("content"), list):
            total += IMAGE_TOKENS * sum(1 for p in message["content"] if isinstance(p, dict) and p.get("type") == "image_url")
        for call in message.get("tool_calls") or ():
            function = call.get("function") if isinstance(call.get("function"), dict) else {}
            total += count_tokens(str(function.get("name", ""))) + count_tokens(str(function.get("arguments", "")))
    for tool in tools:
        total += count_tokens(str(tool["function"]))
    return total


def _required(body: dict, field: str, kind: type, expected: str) -> Any:
    if field not in body or body[field] is None:
        raise ApiError("invalid_request", f"Missing required field '{field}'.")
    value = body[field]
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise invalid(field, expected)
    return value


def _optional(body: dict, field: str, kind: type, expected: str, default: Any, prefix: str = "") -> Any:
    value = body.get(field)
    if value is None:
        return default
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise invalid(prefix + field, expected)
    return value


def _choice(body: dict, field: str, allowed: tuple[str, ...], prefix: str = "") -> str | None:
    value = body.get(field)
    if value is None:
        return None
    if value not in allowed or not isinstance(value, str):
        raise invalid(prefix + field, "one of " + ", ".join(allowed))
    return value


_LESS_USED_DEFAULTS: Final[tuple[bool, int | None, bool, int | None, str | None, str | None, str | None]] = (
    False, None, True, None, None, None, None,
)


# --- one check per field: the value sent (never None) -> what the request keeps of it ----------

Check = Callable[[Any], Any]


def _of_kind(field: str, kind: type, expected: str) -> Check:
    def check(value: Any) -> Any:
        if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
            raise invalid(field, expected)
        return value

    return check


def _whole(field: str, low: int, high: int | None) -> Check:
    expected = f"an integer from {low}" + (f" to {high}" if high is not None else " up")

    def check(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < low or (high is not None and value > high):
            raise invalid(field, expected)
        return value

    return check


def _number(field: str, low: float, high: float) -> Check:
    def check(value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
            raise invalid(field, f"a number from {low} to {high}")
        return value

    return check


def _one_of(field: str, allowed: tuple[str, ...]) -> Check:
    def check(value: Any) -> str:
        if value not in allowed or not isinstance(value, str):
            raise invalid(field, "one of " + ", ".join(allowed))
        return value

    return check


def _stream_options(value: Any) -> bool:
    """Whether the usage chunk is wanted."""
    if not isinstance(value, dict):
        raise invalid("stream_options", "an object")
    _optional(value, "include_obfuscation", bool, "a boolean", None, "stream_options.")
    return _optional(value, "include_usage", bool, "a boolean", False, "stream_options.")


def _metadata(value: Any) -> dict:
    if not isinstance(value, dict) or len(value) > 16:
        raise invalid("metadata", "an object of up to 16 string values")
    for key, text in value.items():
        if len(key) > 64 or not isinstance(text, str) or len(text) > 512:
            raise invalid(f"metadata.{key}", "a string of up to 512 characters, under a key of up to 64")
    return value


def _logit_bias(value: Any) -> dict:
    if not isinstance(value, dict):
        raise invalid("logit_bias", "an object mapping token ids to numbers from -100 to 100")
    for token, bias in value.items():
        if not token.isdigit() or not token.isascii():
            raise invalid(f"logit_bias.{token}", "a token id (a string of digits) as the key")
        if isinstance(bias, bool) or not isinstance(bias, (int, float)) or not -100 <= bias <= 100:
            raise invalid(f"logit_bias.{token}", "a number from -100 to 100")
    return value


def _modalities(value: Any) -> list:
    if not isinstance(value, list) or not all(isinstance(m, str) and m in MODALITIES for m in value):
        raise invalid("modalities", "an array of 'text' and 'audio'")
    return value


def _audio(value: Any) -> dict:
    if not isinstance(value, dict):
        raise invalid("audio", "an object with 'voice' and 'format'")
    if not isinstance(value.get("voice"), (str, dict)):
        raise invalid("audio.voice", "a voice name or {\"id\": ...}")
    if _choice(value, "format", AUDIO_FORMATS, "audio.") is None:
        raise ApiError("invalid_request", "Missing required field 'audio.format'.")
    return value


def _prediction(value: Any) -> dict:
    if not isinstance(value, dict):
        raise invalid("prediction", "an object {\"type\": \"content\", \"content\": ...}")
    if value.get("type") != "content":
        raise invalid("prediction.type", "'content'")
    if not isinstance(value.get("content"), (str, list)):
        raise invalid("prediction.content", "a string or an array of text parts")
    return value


def _web_search_options(value: Any) -> dict:
    if not isinstance(value, dict):
        raise invalid("web_search_options", "an object")
    _choice(value, "search_context_size", SEARCH_CONTEXT_SIZES, "web_search_options.")
    _optional(value, "user_location", dict, "an object", None, "web_search_options.")
    return value


def _functions(value: Any) -> list:
    if not isinstance(value, list):
        raise invalid("functions", "an array of functions")
    for i, function in enumerate(value):
        if not isinstance(function, dict) or not isinstance(function.get("name"), str) or not function["name"]:
            raise invalid(f"functions[{i}].name", "a non-empty string")
    return value


def _function_call(value: Any) -> Any:
    if value not in ("none", "auto") and not (isinstance(value, dict) and isinstance(value.get("name"), str)):
        raise invalid("function_call", "'none', 'auto' or {\"name\": ...}")
    return value


def _messages(raw: list) -> tuple[dict, ...]:
    if not raw:
        raise invalid("messages", "a non-empty array of messages")
    for i, message in enumerate(raw):
        if not isinstance(message, dict):
            raise invalid(f"messages[{i}]", "an object with 'role' and 'content'")
        role = message.get("role")
        if role not in ROLES:
            raise invalid(f"messages[{i}].role", "one of " + ", ".join(ROLES))
        content = message.get("content")
        if type(content) is str:  # the usual message: nothing more to look at
            if role != "tool" and "tool_calls" not in message:
                continue
        elif content is None:
            if role != "assistant" or not message.get("tool_calls"):
                raise ApiError("invalid_request", f"Missing required field 'messages[{i}].content'.")
        elif isinstance(content, list):
            for j, part in enumerate(content):
                if not isinstance(part, dict) or not isinstance(part.get("type"), str):
                    raise invalid(f"messages[{i}].content[{j}]", "an object with a 'type'")
                if part["type"] == "text" and not isinstance(part.get("text"), str):
                    raise invalid(f"messages[{i}].content[{j}].text", "a string")
        elif not isinstance(content, str):
            raise invalid(f"messages[{i}].content", "a string or an array of content parts")
        calls = message.get("tool_calls")
        if calls is not None and (not isinstance(calls, list) or not all(isinstance(c, dict) for c in calls)):
            raise invalid(f"messages[{i}].tool_calls", "an array of tool calls")
        if role == "tool" and not isinstance(message.get("tool_call_id"), str):
            raise ApiError("invalid_request", f"Missing required field 'messages[{i}].tool_call_id'.")
    return tuple(raw)


def _stop(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,) if value else ()
    if isinstance(value, list) and len(value) <= 4 and all(isinstance(s, str) for s in value):
        return tuple(s for s in value if s)
    raise invalid("stop", "a string or an array of up to 4 strings")


def _tools(value: Any) -> tuple[dict, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise invalid("tools", "an array of tools")
    for i, tool in enumerate(value):
        if not isinstance(tool, dict) or tool.get("type") != "function":
            raise invalid(f"tools[{i}].type", "'function'")
        function = tool.get("function")
        if not isinstance(function, dict) or not isinstance(function.get("name"), str) or not function["name"]:
            raise invalid(f"tools[{i}].function.name", "a non-empty string")
        if function.get("parameters") is not None and not isinstance(function["parameters"], dict):
            raise invalid(f"tools[{i}].function.parameters", "a JSON Schema object")
    return tuple(value)


def _tool_choice(value: Any, tools: tuple[dict, ...]) -> str | None:
    names = [t["function"]["name"] for t in tools]
    if value is None:
        return "auto" if tools else None
    if value in ("none", "auto", "required"):
        if value != "none" and not tools:
            raise invalid("tool_choice", "'none' when no tools are given")
        return value
    if isinstance(value, dict) and value.get("type") == "function":
        name = (value.get("function") or {}).get("name")
        if name in names:
            return name
        raise invalid("tool_choice.function.name", "one of the tools' names: " + (", ".join(names) or "none given"))
    raise invalid("tool_choice", "'none', 'auto', 'required' or {\"type\": \"function\", \"function\": {\"name\": ...}}")


def _response_format(value: Any) -> tuple[str, dict | None]:
    if value is None:
        return "text", None
    if not isinstance(value, dict) or value.get("type") not in RESPONSE_FORMATS:
        raise invalid("response_format.type", "one of " + ", ".join(RESPONSE_FORMATS))
    if value["type"] != "json_schema":
        return value["type"], None
    spec = value.get("json_schema")
    if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
        raise invalid("response_format.json_schema", "an object with a 'name' and a 'schema'")
    schema = spec.get("schema", {})
    if not isinstance(schema, dict):
        raise invalid("response_format.json_schema.schema", "a JSON Schema object")
    return "json_schema", schema


# How each field OpenAI defines is checked. Fields in KNOWN_FIELDS without an entry
# (`moderation`, `prompt_cache_options`) pass unchecked; fields in neither are `unknown_fields`.
_CHECKS: Final[dict[str, Check]] = {
    "stream": _of_kind("stream", bool, "a boolean"),
    "stream_options": _stream_options,
    "n": _whole("n", 1, 128),
    "max_completion_tokens": _whole("max_completion_tokens", 1, None),
    "max_tokens": _whole("max_tokens", 1, None),
    "temperature": _number("temperature", 0, 2),
    "top_p": _number("top_p", 0, 1),
    "presence_penalty": _number("presence_penalty", -2, 2),
    "frequency_penalty": _number("frequency_penalty", -2, 2),
    "stop": _stop,
    "tools": _tools,
    "tool_choice": lambda value: value,  # checked against the tools once they are known
    "response_format": _response_format,
    "logprobs": _of_kind("logprobs", bool, "a boolean"),
    "top_logprobs": _whole("top_logprobs", 0, MAX_TOP_LOGPROBS),
    "parallel_tool_calls": _of_kind("parallel_tool_calls", bool, "a boolean"),
    "seed": _whole("seed", -(2**63), 2**63 - 1),
    "user": _of_kind("user", str, "a string"),
    "service_tier": _one_of("service_tier", SERVICE_TIERS),
    "reasoning_effort": _one_of("reasoning_effort", REASONING_EFFORTS),
    # known parameters mockpoeti does not act on, type-checked as OpenAI does
    "store": _of_kind("store", bool, "a boolean"),
    "prompt_cache_key": _of_kind("prompt_cache_key", str, "a string"),
    "safety_identifier": _of_kind("safety_identifier", str, "a string"),
    "verbosity": _one_of("verbosity", VERBOSITIES),
    "prompt_cache_retention": _one_of("prompt_cache_retention", CACHE_RETENTIONS),
    "metadata": _metadata,
    "logit_bias": _logit_bias,
    "modalities": _modalities,
    "audio": _audio,
    "prediction": _prediction,
    "web_search_options": _web_search_options,
    "functions": _functions,
    "function_call": _function_call,
}
