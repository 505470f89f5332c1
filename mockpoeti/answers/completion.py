"""What a chat completion answers: choices built from a request, rendered as
one `chat.completion` body or as the `chat.completion.chunk` sequence.

Pure: the SSE writer only frames and paces what `stream_chunks` returns.
"""

from __future__ import annotations

import functools
import math
import random
import re
from collections.abc import Iterator
from dataclasses import dataclass, replace
from itertools import chain
from typing import TYPE_CHECKING, Final

from orjson import dumps

from mockpoeti.answers.arguments import follow_prompt
from mockpoeti.answers.chat_request import ChatRequest
from mockpoeti.answers.generate import TextGenerator, canonical_json, count_tokens, derive_seed, json_text, language_of, tokenize
from mockpoeti.answers.script import Respond
from mockpoeti.answers.tool_choice import chosen_tools
from mockpoeti.base.errors import ApiError
from mockpoeti.base.jsonio import encode

if TYPE_CHECKING:
    from mockpoeti.answers.structured import Budget

_ALNUM: Final = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
_WORD: Final = re.compile(r"\s*\S+\s*")


@dataclass(frozen=True, slots=True)
class ToolCall:
    id: str
    name: str
    arguments: str  # JSON text, as OpenAI sends it

    def to_json(self) -> dict:
        return {"id": self.id, "type": "function", "function": {"name": self.name, "arguments": self.arguments}}


@dataclass(slots=True, init=False)
class Choice:
    """Made on every call, so neither frozen nor given the `__init__` that `dataclass` writes:
    mypyc compiles this one, and runs that one interpreted, ~8x slower (frozen, ~20x).
    tests/test_records.py keeps its parameters and the fields the same."""

    index: int
    content: str | None
    finish_reason: str
    completion_tokens: int
    tool_calls: tuple[ToolCall, ...] = ()
    refusal: str | None = None  # the model declined: `content` is None and this says why

    def __init__(
        self, index: int, content: str | None, finish_reason: str, completion_tokens: int,
        tool_calls: tuple[ToolCall, ...] = (), refusal: str | None = None,
    ) -> None:
        self.index, self.content, self.finish_reason, self.completion_tokens = index, content, finish_reason, completion_tokens
        self.tool_calls, self.refusal = tool_calls, refusal

    def message(self) -> dict:
        message: dict = {"role": "assistant", "content": self.content, "refusal": self.refusal}
        if self.tool_calls:
            message["tool_calls"] = [call.to_json() for call in self.tool_calls]
        return message


@dataclass(slots=True, init=False)
class Completion:
    """Made on every call, so not frozen, and its `__init__` written out as `Choice`'s is; nothing
    changes one once made: `apply_script` makes another with `replace`."""

    id: str
    created: int
    model: str
    choices: tuple[Choice, ...]
    prompt_tokens: int
    fingerprint: str = ""
    scripted_completion_tokens: int | None = None  # a scenario's `usage` wins over the count
    top_logprobs: int | None = None  # None: no logprobs asked for; else how many alternatives per token
    seed: int = 0  # what the logprobs are drawn from: the same request gets the same ones
    service_tier: str | None = None  # echoed when the request set one, as OpenAI does

    def __init__(
        self, id: str, created: int, model: str, choices: tuple[Choice, ...], prompt_tokens: int, fingerprint: str = "",
        scripted_completion_tokens: int | None = None, top_logprobs: int | None = None, seed: int = 0,
        service_tier: str | None = None,
    ) -> None:
        self.id, self.created, self.model, self.choices, self.prompt_tokens = id, created, model, choices, prompt_tokens
        self.fingerprint, self.scripted_completion_tokens = fingerprint, scripted_completion_tokens
        self.top_logprobs, self.seed, self.service_tier = top_logprobs, seed, service_tier

    @property
    def completion_tokens(self) -> int:
        if self.scripted_completion_tokens is not None:
            return self.scripted_completion_tokens
        choices = self.choices
        return choices[0].completion_tokens if len(choices) == 1 else sum([c.completion_tokens for c in choices])

    def usage(self) -> dict:
        completion_tokens = self.completion_tokens
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": self.prompt_tokens + completion_tokens,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
        }

    def body(self) -> dict:
        asked = self.top_logprobs is not None
        body = {
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "choices": [
                {"index": c.index, "message": c.message(), "logprobs": self.logprobs(c) if asked else None,
                 "finish_reason": c.finish_reason}
                for c in self.choices
            ],
            "usage": self.usage(),
            "system_fingerprint": self.fingerprint,
        }
        if self.service_tier:
            body["service_tier"] = self.service_tier
        return body

    def json(self) -> bytes:
        """`body()` as JSON. The usual answer (one choice of text, no logprobs) is spliced into a
        fixed frame: building the dict to serialise it cost three times the splice."""
        choice = self.text_alone()
        if choice is None or self.service_tier:
            return dumps(self.body())
        prompt, completion = self.prompt_tokens, self.completion_tokens
        return _PLAIN_ANSWER % (
            dumps(self.id), self.created, dumps(self.model), dumps(choice.content), dumps(choice.finish_reason), prompt,
            completion, prompt + completion, dumps(self.fingerprint),
        )

    def text_alone(self) -> Choice | None:
        """The one choice of an answer that is text alone (no tools, no refusal, no logprobs):
        the usual answer, which is made by splicing its text into a fixed frame; else None."""
        if len(self.choices) != 1 or self.top_logprobs is not None:
            return None
        choice = self.choices[0]
        return None if choice.tool_calls or choice.refusal is not None else choice

    def logprobs(self, choice: Choice) -> dict | None:
        """A choice's `logprobs`: one entry per token of its content (None unless asked for)."""
        if self.top_logprobs is None:
            return None
        drawer = Logprobs(derive_seed(self.seed, "logprobs", choice.index), self.top_logprobs)
        if choice.refusal is not None:
            return {"content": None, "refusal": drawer.entries(tokenize(choice.refusal))}
        if choice.content is None:
            return {"content": None, "refusal": None}
        return {"content": drawer.entries(tokenize(choice.content)), "refusal": None}


# `Completion.body()` of one choice of text, serialised, with holes (tests/test_answer_bytes.py).
_PLAIN_ANSWER: Final = (
    b'{"id":%b,"object":"chat.completion","created":%d,"model":%b,"choices":[{"index":0,"message":{"role":"assistant",'
    b'"content":%b,"refusal":null},"logprobs":null,"finish_reason":%b}],"usage":{"prompt_tokens":%d,"completion_tokens":'
    b'%d,"total_tokens":%d,"prompt_tokens_details":{"cached_tokens":0,"audio_tokens":0},"completion_tokens_details":'
    b'{"reasoning_tokens":0,"audio_tokens":0}},"system_fingerprint":%b}'
)


# Other likely tokens, for top_logprobs: common pieces of English and Chinese text.
_ALTERNATIVES: Final[tuple[str, ...]] = (
    " the", " a", ",", ".", " and", " to", " of", " is", " in", " that", " it", " for", " on", " with",
    " this", " you", " we", "\n", " I", " be", "的", "是", "了", "，", "。", "在",
)


class Logprobs:
    """Seeded log probabilities for a choice's tokens, drawn in order (a stream
    draws them chunk by chunk and gets the same ones as the whole body).

    The chosen token is the likeliest: it opens `top_logprobs`, the other
    entries follow in descending order, and their probabilities sum below 1.
    """

    def __init__(self, seed: int, top: int) -> None:
        self.rnd = random.Random(seed)
        self.top = top

    def entries(self, tokens: list[str]) -> list[dict]:
        return [self.entry(token) for token in tokens]

    def entry(self, token: str) -> dict:
        rnd = self.rnd
        chosen = -round(rnd.random() ** 4 * 3 + 1e-5, 6)
        entry = {"token": token, "logprob": chosen, "bytes": list(token.encode()), "top_logprobs": []}
        if self.top:
            others = rnd.sample([t for t in _ALTERNATIVES if t != token], self.top - 1)
            # the alternatives share what the chosen token leaves, each at most 0.6 of the one before
            logprob = min(chosen - rnd.uniform(0.5, 4), math.log((1 - math.exp(chosen)) / 3))
            top = [{"token": token, "logprob": chosen, "bytes": entry["bytes"]}]
            for other in others:
                top.append({"token": other, "logprob": round(logprob, 6), "bytes": list(other.encode())})
                logprob -= rnd.uniform(0.5, 2)
            entry["top_logprobs"] = top
        return entry


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
    if request.n == 1:
        choices: tuple[Choice, ...] = (_choice(request, generator, base, 0),)
    else:
        choices = tuple(_choice(request, generator, derive_seed(base, i) if i else base, i) for i in range(request.n))
    model = request.model.id
    return Completion(  # positionally, in the fields' order: one per call
        completion_id, created, model, choices, request.prompt_tokens, fingerprint(model), None,
        (request.top_logprobs or 0) if request.logprobs else None, base,
        _SERVED_TIERS.get(request.service_tier, request.service_tier) if request.service_tier else None,
    )


# The tier OpenAI reports having served a request with: `auto` is answered as the tier used.
_SERVED_TIERS: Final = {"auto": "default"}


def generated_calls(
    request: ChatRequest, generator: TextGenerator, seed: int, tools: list[tuple[int, dict]], budget: Budget | None = None
) -> tuple[ToolCall, ...]:
    """Calls to `tools` (with their positions in `tools`, as `chosen_tools` gives them): arguments
    generated from each one's `parameters` and filled from the prompt where they fit, ids seeded."""
    budget = budget or _budget(request)
    calls = []
    for k, (position, tool) in enumerate(tools):
        function = tool["function"]
        call_seed = seed if k == 0 else derive_seed(seed, "call", k)
        arguments = "{}"
        if function.get("parameters"):
            value = generator.value(function["parameters"], call_seed, f"tools[{position}].function.parameters", budget)
            arguments = json_text(follow_prompt(value, function["parameters"], request.last_user_text))
        calls.append(ToolCall(id="call_" + _random_id(call_seed, 24), name=function["name"], arguments=arguments))
    return tuple(calls)


def call_tokens(calls: tuple[ToolCall, ...]) -> int:
    return sum(count_tokens(c.name) + count_tokens(c.arguments) for c in calls)


def _budget(request: ChatRequest) -> Budget:
    """The generation bounds of one answer, shared by its choices (n x 2000 nodes would not be bounded)."""
    from mockpoeti.answers.structured import Budget  # loaded with the first structured answer: a twentieth of the import time

    return Budget(share=request.n)


MEMO_CHOICE_CHARS: Final = 4096  # a larger answer (structured outputs go up to 64 KiB) is made again, not held in memory


def _choice(request: ChatRequest, generator: TextGenerator, seed: int, index: int) -> Choice:
    """A choice is a pure function of the request and its seed. Words are cheaper to make than
    to look up (a hash and a join); tool calls and structured answers, made from schemas, are
    answered from memory when the same request comes again."""
    if not request.tools and request.response_format == "text":
        return _build_choice(request, generator, seed, index)
    key = (seed, request.stop, request.max_tokens, request.n, request.parallel_tool_calls, index)
    return generator.remember(key, lambda: _build_choice(request, generator, seed, index), _small)


def _small(choice: Choice) -> bool:
    return len(choice.content or "") + sum(len(c.arguments) for c in choice.tool_calls) <= MEMO_CHOICE_CHARS


def _build_choice(request: ChatRequest, generator: TextGenerator, seed: int, index: int) -> Choice:
    tools = chosen_tools(request)
    if tools:
        calls = generated_calls(request, generator, seed, tools)
        return Choice(index, None, "tool_calls", call_tokens(calls), calls)
    if request.response_format != "text":
        budget = _budget(request)
    if request.response_format == "json_object":
        content = json_text(generator.value(_JSON_MODE, seed, "response_format", budget))
    elif request.response_format == "json_schema":
        value = generator.value(request.json_schema or {}, seed, "response_format.json_schema.schema", budget)
        content = json_text(follow_prompt(value, request.json_schema, request.last_user_text))
    else:
        content, tokens = generator.counted_answer(language_of(request.last_user_text), seed)
        if not request.stop and request.max_tokens is None:
            return Choice(index, content, "stop", tokens)  # nothing to cut: the count is known
    return finish_text(index, content, request.stop, request.max_tokens)


# What `json_object` mode answers: the request gives no schema, so a plausible object.
_JSON_MODE: Final = {
    "type": "object",
    "properties": {
        "answer": {"type": "string", "description": "text"},
        "confidence": {"type": "number", "minimum": 0, "maximum": 1},
        "keywords": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["answer", "confidence", "keywords"],
}


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


MAX_ANSWER_CHARS: Final = 4 * 1024 * 1024  # of scripted content and tool-call arguments in one response, its `n` choices together
MAX_LOGPROB_ENTRIES: Final = 65_536  # logprobs entries of one response: tokens x (1 + top_logprobs), choices together


def apply_script(completion: Completion, request: ChatRequest, respond: Respond, content: str | None) -> Completion:
    """A scenario's answer over the default one: its content (already rendered),
    tool calls, finish_reason and usage; what it leaves out stays as generated.

    Raises `invalid_request` for an answer past MAX_ANSWER_CHARS (`n` copies of a long
    content) or whose logprobs pass MAX_LOGPROB_ENTRIES: made on the event loop, they are
    bounded, and refused rather than served slowly (a 100k-token content with 20
    top_logprobs was a 126 MB body, 8 s of the loop)."""
    scripted = len(content or "") + sum(len(c.arguments) for c in respond.tool_calls)
    if scripted * request.n > MAX_ANSWER_CHARS:
        raise ApiError("invalid_request", f"The scripted answer is {scripted} characters; {request.n} choices of it (n) are "
                                          f"more than the {MAX_ANSWER_CHARS} (MAX_ANSWER_CHARS) mockpoeti answers at once.")
    choices = completion.choices
    if respond.tool_calls:
        calls = tuple(
            ToolCall(id=c.id or "call_" + _random_id(derive_seed(completion.id, k), 24), name=c.name, arguments=c.arguments)
            for k, c in enumerate(respond.tool_calls)
        )
        choices = tuple(
            Choice(i, content, respond.finish_reason or "tool_calls", call_tokens(calls), calls) for i in range(request.n)
        )
    elif content is not None:
        first = finish_text(0, content, request.stop, request.max_tokens, respond.finish_reason or "stop")
        choices = (first, *(replace(first, index=i) for i in range(1, request.n)))  # the same text: cut once
    elif respond.finish_reason is not None:
        choices = tuple(replace(c, finish_reason=respond.finish_reason) for c in choices)
    if completion.top_logprobs is not None:
        entries = sum(c.completion_tokens for c in choices if c.content is not None) * (1 + completion.top_logprobs)
        if entries > MAX_LOGPROB_ENTRIES:
            raise ApiError("invalid_request", f"Invalid value for 'logprobs': the scripted answer needs {entries} logprobs "
                                              f"entries, more than the {MAX_LOGPROB_ENTRIES} (MAX_LOGPROB_ENTRIES) mockpoeti "
                                              "makes for one response; ask for fewer top_logprobs or choices.")
    prompt_tokens, completion_tokens = respond.usage or (None, None)
    return replace(
        completion,
        choices=choices,
        prompt_tokens=completion.prompt_tokens if prompt_tokens is None else prompt_tokens,
        scripted_completion_tokens=completion_tokens,
    )


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
    return list(text) if size == 1 else [text[i : i + size] for i in range(0, len(text), size)]


DONE: Final = b"data: [DONE]\n\n"  # the event that closes a stream
# Joins the texts of a run of chunks serialised as one string: a noncharacter, written by orjson as
# its own three UTF-8 bytes, which no escape and no other character contains.
_JOINT: Final = "\uffff"
_JOINT_BYTES: Final = _JOINT.encode()


def frame(data: dict | bytes) -> bytes:
    """One SSE event: a chunk, or a chunk already serialised."""
    return b"".join((b"data: ", data if isinstance(data, bytes) else encode(data), b"\n\n"))


REPLAY_CHARS: Final = 4096  # of text in an answer the journal keeps as the answer, made into its bytes when read


def replayable(completion: Completion) -> bool:
    """Is the answer small enough for the journal to keep it, rather than the first
    bytes of its stream? (A 100-token stream writes ~20 KB of frames; its text is ~400
    characters, and the frames are made again from it, the same, when someone reads them.)"""
    return sum(len(c.content or "") + len(c.refusal or "") + sum(len(t.arguments) for t in c.tool_calls)
               for c in completion.choices) <= REPLAY_CHARS


def stream_chunks(
    completion: Completion, include_usage: bool = False, chunk: str | int = "token"
) -> tuple[list[str], Iterator[dict | bytes]]:
    """The chunk sequence (`StreamedAnswer`): each chunk's kind, and the chunks as dicts,
    or as JSON bytes for plain text chunks."""
    stream = StreamedAnswer(completion, include_usage, chunk)
    return stream.kinds, stream.chunks(framed=False)


class StreamedAnswer:
    """A completion as the `chat.completion.chunk` sequence.

    `kinds` says what each chunk is, known at once so the writer can plan its pacing:
    `role` (first delta), `content` (text, a tool call's header or a piece of its
    arguments; paced), `finish` (finish_reason), `usage` (only with include_usage).
    The chunks are made as they are taken: one SSE event at a time (`frames`: a paced
    stream holds one chunk, not all of them, while it lasts), or run together (`blocks`:
    an unpaced stream).

    A plain text chunk is never a dict: it is the chunk serialised once as a template
    with only its text spliced in (most of a stream is such chunks, and making and
    serialising a dict for each was most of its cost); a run of them is one
    serialisation of all their texts, spliced in one `replace`.
    """

    __slots__ = ("completion", "include_usage", "kinds", "pieces_by_choice")

    def __init__(self, completion: Completion, include_usage: bool = False, chunk: str | int = "token") -> None:
        self.completion = completion
        self.include_usage = include_usage
        self.pieces_by_choice = pieces_by_choice = [_pieces(c, chunk) for c in completion.choices]
        n = len(completion.choices)
        self.kinds = ["role"] * n + ["content"] * sum(len(p) for p in pieces_by_choice) + ["finish"] * n
        if include_usage:
            self.kinds.append("usage")

    def frames(self) -> Iterator[bytes]:
        """Each chunk as one SSE event, in the order of `kinds`. (Text alone is made by C
        iterators end to end: a paced stream pays no Python frame a chunk.)"""
        pieces = self._text_alone()
        if pieces is None:
            return self.chunks(framed=True)  # type: ignore[return-value]
        before, after = (part.replace(b"%", b"%%") for part in self.template(0, framed=True))
        # (%-formatted, not zipped and joined: zip would hold its last tuple, and in it orjson's
        # output, which keeps a 4 KiB buffer whatever its length, as long as the stream lasts)
        texts = map((before + b'"content":%b' + after).__mod__, map(dumps, pieces))
        return chain(self._heads(framed=True), texts, self._tails(framed=True))  # type: ignore[arg-type]

    def chunks(self, framed: bool) -> Iterator[dict | bytes]:
        """Dicts, and text chunks as JSON bytes; or, `framed`, every chunk as an SSE event."""
        yield from self._heads(framed)
        yield from self._contents(framed)
        yield from self._tails(framed)

    def blocks(self, run_bytes: int) -> Iterator[tuple[bytes, int, int]]:
        """The SSE events as parts to run together: (bytes, events and content chunks that end
        in them). A part is one event, or a piece of a run of text chunks of about `run_bytes`
        (made in three parts: its first chunk's head, the rest, its last chunk's tail).
        Joined, the very bytes of `frames`."""
        pieces = self._text_alone() or []
        texts = _JOINT.join(pieces)
        if not pieces or texts.count(_JOINT) != len(pieces) - 1:  # not text alone, or text with the joint in it
            yield from ((data, 1, kind == "content") for kind, data in zip(self.kinds, self.frames(), strict=True))
            return
        yield from ((data, 1, 0) for data in self._heads(framed=True))  # type: ignore[misc]
        before, after = self.template(0, framed=True)
        joint = b"".join((b'"', after, before, b'"content":"'))
        step = max(1, run_bytes // len(joint))
        before += b'"content":'
        for i in range(0, len(pieces), step):
            run = texts if step >= len(pieces) else _JOINT.join(pieces[i : i + step])
            count = min(step, len(pieces) - i)
            yield before, 0, 0  # the run in three parts, not copied into one: the writer joins them with the rest
            yield dumps(run).replace(_JOINT_BYTES, joint), count - 1, count - 1
            yield after, 1, 1
        yield from ((data, 1, 0) for data in self._tails(framed=True))  # type: ignore[misc]

    def _text_alone(self) -> list[str] | None:
        """The pieces of an answer that is one choice of text, without logprobs; else None."""
        return None if self.completion.text_alone() is None else self.pieces_by_choice[0]  # type: ignore[return-value]

    def template(self, index: int, framed: bool) -> tuple[bytes, bytes]:
        """A text chunk of choice `index` serialised: what comes before its `"content":"..."` and after."""
        before, after = dumps(self._chunk(_delta(index, {"content": ""}))).split(b'"content":""', 1)
        return (b"data: " + before, after + b"\n\n") if framed else (before, after)

    def _chunk(self, *choices: dict) -> dict:
        completion = self.completion
        out = {
            "id": completion.id,
            "object": "chat.completion.chunk",
            "created": completion.created,
            "model": completion.model,
            "system_fingerprint": completion.fingerprint,
            "choices": list(choices),
        }
        if completion.service_tier:
            out["service_tier"] = completion.service_tier
        if self.include_usage:
            out["usage"] = None
        return out

    def _heads(self, framed: bool) -> Iterator[dict | bytes]:
        emit = frame if framed else _as_is
        for c in self.completion.choices:
            head: dict
            if c.refusal is not None:
                head = {"role": "assistant", "content": None, "refusal": ""}
            elif c.tool_calls and not c.content:
                head = {"role": "assistant", "content": None, "tool_calls": [_header(0, c.tool_calls[0])], "refusal": None}
            else:
                head = {"role": "assistant", "content": "", "refusal": None}
            yield emit(self._chunk(_delta(c.index, head)))

    def _contents(self, framed: bool) -> Iterator[dict | bytes]:
        completion, chunk_of = self.completion, self._chunk
        emit = frame if framed else _as_is
        drawers = [
            Logprobs(derive_seed(completion.seed, "logprobs", c.index), completion.top_logprobs)
            if completion.top_logprobs is not None else None
            for c in completion.choices
        ]
        templates = [self.template(c.index, framed) for c in completion.choices]
        for step in range(max((len(p) for p in self.pieces_by_choice), default=0)):
            for c, pieces, drawer in zip(completion.choices, self.pieces_by_choice, drawers, strict=True):
                if step >= len(pieces):
                    continue
                piece = pieces[step]
                if isinstance(piece, tuple):
                    what, k, text = piece
                    if what == "refusal":
                        logprobs = {"content": None, "refusal": drawer.entries(tokenize(text))} if drawer else None
                        yield emit(chunk_of(_delta(c.index, {"refusal": text}, logprobs=logprobs)))
                        continue
                    call = _header(k, c.tool_calls[k]) if what == "head" else {"index": k, "function": {"arguments": text}}
                    yield emit(chunk_of(_delta(c.index, {"tool_calls": [call]})))
                elif drawer is None:
                    before, after = templates[c.index]
                    yield b"".join((before, b'"content":', dumps(piece), after))
                else:
                    logprobs = {"content": drawer.entries(tokenize(piece)), "refusal": None}
                    yield emit(chunk_of(_delta(c.index, {"content": piece}, logprobs=logprobs)))

    def _tails(self, framed: bool) -> Iterator[dict | bytes]:
        emit = frame if framed else _as_is
        for c in self.completion.choices:
            yield emit(self._chunk(_delta(c.index, {}, c.finish_reason)))
        if self.include_usage:
            final = self._chunk()
            final["usage"] = self.completion.usage()
            yield emit(final)


def _delta(index: int, d: dict, finish: str | None = None, logprobs: dict | None = None) -> dict:
    return {"index": index, "delta": d, "logprobs": logprobs, "finish_reason": finish}


def _header(k: int, call: ToolCall) -> dict:
    return {"index": k, "id": call.id, "type": "function", "function": {"name": call.name, "arguments": ""}}


def _as_is(chunk: dict) -> dict:
    return chunk


def _pieces(choice: Choice, chunk: str | int) -> list[str | tuple[str, int, str]]:
    """What each content chunk carries: text, or ("head", call, "") for a tool
    call's first delta, or ("args", call, piece) for a piece of its arguments,
    or ("refusal", 0, piece) for a piece of a refusal.

    OpenAI's order: each call's header right before its own arguments, call
    after call (the first header rides in the role chunk when there is no text).
    """
    if choice.refusal is not None:
        return [("refusal", 0, p) for p in split_text(choice.refusal, chunk)]
    pieces: list[str | tuple[str, int, str]] = list(split_text(choice.content or "", chunk))
    for k, call in enumerate(choice.tool_calls):
        if k > 0 or choice.content:
            pieces.append(("head", k, ""))
        pieces += [("args", k, p) for p in split_text(call.arguments, chunk)]
    return pieces
