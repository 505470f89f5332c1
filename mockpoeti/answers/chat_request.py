"""A chat completion request, validated into a frozen dataclass.

Pure. Every rejection is an `invalid_request` that names the field, the way
OpenAI does (`messages[1].role`), so a client sees exactly what to fix.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from typing import Any

from mockpoeti.answers.generate import count_tokens
from mockpoeti.base.catalog import Model
from mockpoeti.base.errors import ApiError, invalid

ROLES = ("system", "developer", "user", "assistant", "tool", "function")
RESPONSE_FORMATS = ("text", "json_object", "json_schema")
MAX_UNKNOWN_SHOWN = 32  # unknown top-level fields the journal names (the first, sorted)
MESSAGE_OVERHEAD = 3  # tokens per message, as OpenAI counts them
IMAGE_TOKENS = 85
MAX_TOP_LOGPROBS = 20

# Enumerated parameters, as OpenAI's CreateChatCompletionRequest defines them.
SERVICE_TIERS = ("auto", "default", "flex", "scale", "priority", "fast")
REASONING_EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh", "max")
VERBOSITIES = ("low", "medium", "high")
MODALITIES = ("text", "audio")
CACHE_RETENTIONS = ("in_memory", "24h")
AUDIO_FORMATS = ("wav", "aac", "mp3", "flac", "opus", "pcm16")
SEARCH_CONTEXT_SIZES = ("low", "medium", "high")

# Every top-level field OpenAI's Chat Completions API knows; others are passed
# through (a gateway forwards provider parameters) but listed in `unknown_fields`.
KNOWN_FIELDS = frozenset({
    "model", "messages", "audio", "frequency_penalty", "function_call", "functions", "logit_bias", "logprobs",
    "max_completion_tokens", "max_tokens", "metadata", "modalities", "moderation", "n", "parallel_tool_calls",
    "prediction", "presence_penalty", "prompt_cache_key", "prompt_cache_options", "prompt_cache_retention",
    "reasoning_effort", "response_format", "safety_identifier", "seed", "service_tier", "stop", "store", "stream",
    "stream_options", "temperature", "tool_choice", "tools", "top_logprobs", "top_p", "user", "verbosity",
    "web_search_options",
})


@dataclass(frozen=True, slots=True)
class ChatRequest:
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

    @property
    def last_user_text(self) -> str:
        for message in reversed(self.messages):
            if message.get("role") == "user":
                return message_text(message)
        return ""

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
    """Check a request body the way the real gateway does; raise `ApiError` otherwise."""
    if not isinstance(body, dict):
        raise invalid("body", "a JSON object")
    model_id = _required(body, "model", str, "a string")
    messages = _messages(_required(body, "messages", list, "a non-empty array of messages"))
    stream = _optional(body, "stream", bool, "a boolean", False)
    options = _optional(body, "stream_options", dict, "an object", None)
    include_usage = False
    if options is not None:
        if not stream:
            raise invalid("stream_options", "to be set only when 'stream' is true")
        include_usage = _optional(options, "include_usage", bool, "a boolean", False, "stream_options.")
        _optional(options, "include_obfuscation", bool, "a boolean", None, "stream_options.")
    n = _int(body, "n", 1, 128) or 1
    max_tokens = _int(body, "max_completion_tokens", 1, None)
    if max_tokens is None:
        max_tokens = _int(body, "max_tokens", 1, None)
    if not _SAMPLING.isdisjoint(body):
        _number(body, "temperature", 0, 2)
        _number(body, "top_p", 0, 1)
        _number(body, "presence_penalty", -2, 2)
        _number(body, "frequency_penalty", -2, 2)
    stop = _stop(body.get("stop"))
    tools = _tools(body.get("tools"))
    tool_choice = _tool_choice(body.get("tool_choice"), tools)
    response_format, schema = _response_format(body.get("response_format"))
    logprobs, top_logprobs, parallel_tool_calls, seed, user, service_tier, reasoning_effort = _LESS_USED_DEFAULTS
    if not _LESS_USED.isdisjoint(body):
        logprobs = _optional(body, "logprobs", bool, "a boolean", False)
        top_logprobs = _int(body, "top_logprobs", 0, MAX_TOP_LOGPROBS)
        if top_logprobs is not None and not logprobs:
            raise invalid("top_logprobs", "to be set only when 'logprobs' is true")
        parallel_tool_calls = _optional(body, "parallel_tool_calls", bool, "a boolean", True)
        seed = _int(body, "seed", -(2**63), 2**63 - 1)
        user = _optional(body, "user", str, "a string", None)
        service_tier = _choice(body, "service_tier", SERVICE_TIERS)
        reasoning_effort = _choice(body, "reasoning_effort", REASONING_EFFORTS)
    if not _OTHER_PARAMETERS.isdisjoint(body):
        _check_other_parameters(body)

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
    return ChatRequest(
        model=model,
        messages=messages,
        stream=stream,
        include_usage=include_usage,
        n=n,
        max_tokens=max_tokens,
        stop=stop,
        tools=tools,
        tool_choice=tool_choice,
        response_format=response_format,
        json_schema=schema,
        prompt_tokens=prompt_tokens,
        logprobs=logprobs,
        top_logprobs=top_logprobs,
        parallel_tool_calls=parallel_tool_calls,
        seed=seed,
        user=user,
        service_tier=service_tier,
        reasoning_effort=reasoning_effort,
        unknown_fields=tuple(heapq.nsmallest(MAX_UNKNOWN_SHOWN, body.keys() - KNOWN_FIELDS)),
    )


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


def _int(body: dict, field: str, low: int, high: int | None, prefix: str = "") -> int | None:
    value = body.get(field)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < low or (high is not None and value > high):
        raise invalid(prefix + field, f"an integer from {low}" + (f" to {high}" if high is not None else " up"))
    return value


def _choice(body: dict, field: str, allowed: tuple[str, ...], prefix: str = "") -> str | None:
    value = body.get(field)
    if value is None:
        return None
    if value not in allowed or not isinstance(value, str):
        raise invalid(prefix + field, "one of " + ", ".join(allowed))
    return value


_LESS_USED = frozenset({"logprobs", "top_logprobs", "parallel_tool_calls", "seed", "user", "service_tier", "reasoning_effort"})
_LESS_USED_DEFAULTS: tuple[bool, int | None, bool, int | None, str | None, str | None, str | None] = (
    False, None, True, None, None, None, None,
)
_SAMPLING = frozenset({"temperature", "top_p", "presence_penalty", "frequency_penalty"})
_OTHER_PARAMETERS = frozenset({
    "store", "prompt_cache_key", "safety_identifier", "verbosity", "prompt_cache_retention", "metadata", "logit_bias",
    "modalities", "audio", "prediction", "web_search_options", "functions", "function_call",
})  # what `_check_other_parameters` looks at: most requests send none of them


def _check_other_parameters(body: dict) -> None:
    """The known parameters mockpoeti does not act on, type-checked as OpenAI does."""
    for field in ("store",):
        _optional(body, field, bool, "a boolean", None)
    for field in ("prompt_cache_key", "safety_identifier"):
        _optional(body, field, str, "a string", None)
    _choice(body, "verbosity", VERBOSITIES)
    _choice(body, "prompt_cache_retention", CACHE_RETENTIONS)
    metadata = _optional(body, "metadata", dict, "an object of up to 16 string values", None)
    if metadata is not None:
        if len(metadata) > 16:
            raise invalid("metadata", "an object of up to 16 string values")
        for key, value in metadata.items():
            if len(key) > 64 or not isinstance(value, str) or len(value) > 512:
                raise invalid(f"metadata.{key}", "a string of up to 512 characters, under a key of up to 64")
    bias = _optional(body, "logit_bias", dict, "an object mapping token ids to numbers from -100 to 100", None)
    for token, value in (bias or {}).items():
        if not token.isdigit() or not token.isascii():
            raise invalid(f"logit_bias.{token}", "a token id (a string of digits) as the key")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not -100 <= value <= 100:
            raise invalid(f"logit_bias.{token}", "a number from -100 to 100")
    modalities = _optional(body, "modalities", list, "an array of 'text' and 'audio'", None)
    if modalities is not None and not all(isinstance(m, str) and m in MODALITIES for m in modalities):
        raise invalid("modalities", "an array of 'text' and 'audio'")
    audio = _optional(body, "audio", dict, "an object with 'voice' and 'format'", None)
    if audio is not None:
        if not isinstance(audio.get("voice"), (str, dict)):
            raise invalid("audio.voice", "a voice name or {\"id\": ...}")
        if _choice(audio, "format", AUDIO_FORMATS, "audio.") is None:
            raise ApiError("invalid_request", "Missing required field 'audio.format'.")
    elif modalities and "audio" in modalities:
        raise ApiError("invalid_request", "Missing required field 'audio': it is required when 'modalities' includes 'audio'.")
    prediction = _optional(body, "prediction", dict, "an object {\"type\": \"content\", \"content\": ...}", None)
    if prediction is not None:
        if prediction.get("type") != "content":
            raise invalid("prediction.type", "'content'")
        if not isinstance(prediction.get("content"), (str, list)):
            raise invalid("prediction.content", "a string or an array of text parts")
    search = _optional(body, "web_search_options", dict, "an object", None)
    if search is not None:
        _choice(search, "search_context_size", SEARCH_CONTEXT_SIZES, "web_search_options.")
        _optional(search, "user_location", dict, "an object", None, "web_search_options.")
    functions = _optional(body, "functions", list, "an array of functions", None)
    for i, function in enumerate(functions or ()):
        if not isinstance(function, dict) or not isinstance(function.get("name"), str) or not function["name"]:
            raise invalid(f"functions[{i}].name", "a non-empty string")
    call = body.get("function_call")
    if call is not None and call not in ("none", "auto") and not (isinstance(call, dict) and isinstance(call.get("name"), str)):
        raise invalid("function_call", "'none', 'auto' or {\"name\": ...}")


def _number(body: dict, field: str, low: float, high: float) -> None:
    value = body.get(field)
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise invalid(field, f"a number from {low} to {high}")


def _messages(raw: list) -> tuple[dict, ...]:
    if not raw:
        raise invalid("messages", "a non-empty array of messages")
    for i, message in enumerate(raw):
        where = f"messages[{i}]"
        if not isinstance(message, dict):
            raise invalid(where, "an object with 'role' and 'content'")
        role = message.get("role")
        if role not in ROLES:
            raise invalid(f"{where}.role", "one of " + ", ".join(ROLES))
        content = message.get("content")
        if content is None:
            if role != "assistant" or not message.get("tool_calls"):
                raise ApiError("invalid_request", f"Missing required field '{where}.content'.")
        elif isinstance(content, list):
            for j, part in enumerate(content):
                if not isinstance(part, dict) or not isinstance(part.get("type"), str):
                    raise invalid(f"{where}.content[{j}]", "an object with a 'type'")
                if part["type"] == "text" and not isinstance(part.get("text"), str):
                    raise invalid(f"{where}.content[{j}].text", "a string")
        elif not isinstance(content, str):
            raise invalid(f"{where}.content", "a string or an array of content parts")
        calls = message.get("tool_calls")
        if calls is not None and (not isinstance(calls, list) or not all(isinstance(c, dict) for c in calls)):
            raise invalid(f"{where}.tool_calls", "an array of tool calls")
        if role == "tool" and not isinstance(message.get("tool_call_id"), str):
            raise ApiError("invalid_request", f"Missing required field '{where}.tool_call_id'.")
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
