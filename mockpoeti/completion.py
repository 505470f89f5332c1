"""What a chat completion answers: choices built from a request, rendered as
one `chat.completion` body or as the `chat.completion.chunk` sequence.

Pure: the SSE writer only frames and paces what `stream_chunks` returns.
"""

from __future__ import annotations

import functools
import random
import re
from collections.abc import Iterator
from dataclasses import dataclass, field, replace

from .chat import ChatRequest
from .generate import TextGenerator, canonical_json, count_tokens, derive_seed, json_text, language_of, tokenize
from .scenario import Respond

_ALNUM = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
_WORD = re.compile(r"\s*\S+\s*")


@dataclass(frozen=True, slots=True)
class ToolCall:
    id: str
    name: str
    arguments: str  # JSON text, as OpenAI sends it

    def to_json(self) -> dict:
        return {"id": self.id, "type": "function", "function": {"name": self.name, "arguments": self.arguments}}


@dataclass(frozen=True, slots=True)
class Choice:
    index: int
    content: str | None
    finish_reason: str
    completion_tokens: int
    tool_calls: tuple[ToolCall, ...] = ()

    def message(self) -> dict:
        message = {"role": "assistant", "content": self.content, "refusal": None}
        if self.tool_calls:
            message["tool_calls"] = [call.to_json() for call in self.tool_calls]
        return message


@dataclass(frozen=True, slots=True)
class Completion:
    id: str
    created: int
    model: str
    choices: tuple[Choice, ...]
    prompt_tokens: int
    fingerprint: str = field(default="")
    scripted_completion_tokens: int | None = None  # a scenario's `usage` wins over the count

    @property
    def completion_tokens(self) -> int:
        if self.scripted_completion_tokens is not None:
            return self.scripted_completion_tokens
        return sum(c.completion_tokens for c in self.choices)

    def usage(self) -> dict:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
        }

    def body(self) -> dict:
        return {
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "choices": [
                {"index": c.index, "message": c.message(), "logprobs": None, "finish_reason": c.finish_reason}
                for c in self.choices
            ],
            "usage": self.usage(),
            "system_fingerprint": self.fingerprint,
        }


@functools.lru_cache(maxsize=256)
def fingerprint(model_id: str) -> str:
    return "fp_" + format(derive_seed("fingerprint", model_id), "016x")[:10]


def build_completion(request: ChatRequest, generator: TextGenerator, seed: int, completion_id: str, created: int) -> Completion:
    """The default answer: generated text, a tool call, or JSON, seeded by the request."""
    base = derive_seed(
        seed,
        request.model.id,
        canonical_json([request.messages, request.tools, request.json_schema]),
        request.tool_choice,
        request.response_format,
    )
    # A choice is a pure function of these: the same request is answered from memory.
    choices = tuple(
        generator.remember(
            (base, i, request.stop, request.max_tokens), lambda i=i: _build_choice(request, generator, derive_seed(base, i), i)
        )
        for i in range(request.n)
    )
    return Completion(
        id=completion_id,
        created=created,
        model=request.model.id,
        choices=choices,
        prompt_tokens=request.prompt_tokens,
        fingerprint=fingerprint(request.model.id),
    )


def _build_choice(request: ChatRequest, generator: TextGenerator, seed: int, index: int) -> Choice:
    tool = _chosen_tool(request)
    if tool is not None:
        function = tool["function"]
        arguments = json_text(generator.value(function.get("parameters") or {}, seed))
        call = ToolCall(id="call_" + _random_id(seed, 24), name=function["name"], arguments=arguments)
        tokens = count_tokens(call.name) + count_tokens(arguments)
        return Choice(index, None, "tool_calls", tokens, (call,))
    if request.response_format == "json_object":
        content = json_text(generator.value({"type": "object", "properties": {
            "answer": {"type": "string", "description": "text"}, "confidence": {"type": "number", "maximum": 1},
            "keywords": {"type": "array", "items": {"type": "string"}},
        }}, seed))
    elif request.response_format == "json_schema":
        content = json_text(generator.value(request.json_schema or {}, seed))
    else:
        content = generator.answer(language_of(request.last_user_text), seed)
    return finish_text(index, content, request.stop, request.max_tokens)


def finish_text(
    index: int, content: str, stop: tuple[str, ...] = (), max_tokens: int | None = None, finish_reason: str = "stop"
) -> Choice:
    """Apply `stop` and `max_tokens` the way the model would: cut, and say why."""
    cuts = [content.find(s) for s in stop if s in content]
    if cuts:
        content, finish_reason = content[: min(cuts)], "stop"
    pieces = tokenize(content)
    if max_tokens is not None and len(pieces) > max_tokens:
        content, pieces, finish_reason = "".join(pieces[:max_tokens]), pieces[:max_tokens], "length"
    return Choice(index, content, finish_reason, len(pieces))


def apply_script(completion: Completion, request: ChatRequest, respond: Respond, content: str | None) -> Completion:
    """A scenario's answer over the default one: its content (already rendered),
    tool calls, finish_reason and usage; what it leaves out stays as generated."""
    choices = completion.choices
    if respond.tool_calls:
        calls = tuple(
            ToolCall(id=c.id or "call_" + _random_id(derive_seed(completion.id, k), 24), name=c.name, arguments=c.arguments)
            for k, c in enumerate(respond.tool_calls)
        )
        tokens = sum(count_tokens(c.name) + count_tokens(c.arguments) for c in calls)
        choices = tuple(Choice(i, content, respond.finish_reason or "tool_calls", tokens, calls) for i in range(request.n))
    elif content is not None:
        choices = tuple(
            finish_text(i, content, request.stop, request.max_tokens, respond.finish_reason or "stop") for i in range(request.n)
        )
    elif respond.finish_reason is not None:
        choices = tuple(replace(c, finish_reason=respond.finish_reason) for c in choices)
    prompt_tokens, completion_tokens = respond.usage or (None, None)
    return replace(
        completion,
        choices=choices,
        prompt_tokens=completion.prompt_tokens if prompt_tokens is None else prompt_tokens,
        scripted_completion_tokens=completion_tokens,
    )


def _chosen_tool(request: ChatRequest) -> dict | None:
    choice = request.tool_choice
    if not request.tools or choice in (None, "none"):
        return None
    if choice == "auto" and request.answering_tool_result:
        return None  # the tool has answered: now the model talks
    by_name = {t["function"]["name"]: t for t in request.tools}
    if choice in by_name:
        return by_name[choice]
    text = request.last_user_text.lower()
    for name, tool in by_name.items():
        if any(part and part in text for part in name.lower().split("_")):
            return tool
    return request.tools[0]


def _random_id(seed: int, length: int) -> str:
    rnd = random.Random(seed)
    return "".join(rnd.choice(_ALNUM) for _ in range(length))


# --- streaming ---------------------------------------------------------------

def split_text(text: str, chunk: str | int = "token") -> list[str]:
    """Pieces for streaming: by token (default), word, character, or N characters."""
    if not text:
        return []
    if chunk == "token":
        return tokenize(text)
    if chunk == "word":
        return _WORD.findall(text) or [text]
    size = 1 if chunk == "char" else int(chunk)
    return [text[i : i + size] for i in range(0, len(text), size)]


def stream_chunks(
    completion: Completion, include_usage: bool = False, chunk: str | int = "token"
) -> tuple[list[str], Iterator[dict]]:
    """The chunk sequence: each chunk's kind, known at once so the writer can
    plan its pacing, and the chunks themselves, made one at a time as they are
    taken (a paced stream holds one chunk, not all of them, while it lasts).

    Kinds: `role` (first delta), `content` (text or tool-argument pieces, paced),
    `finish` (finish_reason), `usage` (only with include_usage).
    """
    pieces_by_choice = [_pieces(c, chunk) for c in completion.choices]
    rounds = max((len(p) for p in pieces_by_choice), default=0)
    kinds = ["role"] * len(completion.choices) + ["content"] * sum(len(p) for p in pieces_by_choice)
    kinds += ["finish"] * len(completion.choices) + (["usage"] if include_usage else [])
    return kinds, _chunks(completion, include_usage, pieces_by_choice, rounds)


def _pieces(choice: Choice, chunk: str | int) -> list[str] | list[tuple[int, str]]:
    """The text of each content chunk, or (tool call index, arguments piece)."""
    if choice.tool_calls:
        return [(k, p) for k, t in enumerate(choice.tool_calls) for p in split_text(t.arguments, chunk)]
    return split_text(choice.content or "", chunk)


def _chunks(completion: Completion, include_usage: bool, pieces_by_choice: list, rounds: int) -> Iterator[dict]:
    def chunk_of(choices: list[dict]) -> dict:
        out = {
            "id": completion.id,
            "object": "chat.completion.chunk",
            "created": completion.created,
            "model": completion.model,
            "system_fingerprint": completion.fingerprint,
            "choices": choices,
        }
        if include_usage:
            out["usage"] = None
        return out

    def delta(index: int, d: dict, finish: str | None = None) -> dict:
        return {"index": index, "delta": d, "logprobs": None, "finish_reason": finish}

    for c in completion.choices:
        if c.tool_calls:
            head = {"role": "assistant", "content": None, "tool_calls": [
                {"index": k, "id": t.id, "type": "function", "function": {"name": t.name, "arguments": ""}}
                for k, t in enumerate(c.tool_calls)
            ], "refusal": None}
        else:
            head = {"role": "assistant", "content": "", "refusal": None}
        yield chunk_of([delta(c.index, head)])
    for step in range(rounds):
        for c, pieces in zip(completion.choices, pieces_by_choice, strict=False):
            if step < len(pieces):
                piece = pieces[step]
                if isinstance(piece, tuple):
                    call, text = piece
                    piece = {"tool_calls": [{"index": call, "function": {"arguments": text}}]}
                else:
                    piece = {"content": piece}
                yield chunk_of([delta(c.index, piece)])
    for c in completion.choices:
        yield chunk_of([delta(c.index, {}, c.finish_reason)])
    if include_usage:
        final = chunk_of([])
        final["usage"] = completion.usage()
        yield final
