"""Recorded traffic -> a scenario file that replays it (`mockpoeti record`).

Pure: the proxy (`record.py`) hands over each exchange as plain data, and this
module turns the lot into an ordinary scenario document: one rule per distinct
chat request (model, stream, tools, last role, exact last user message), one
per management call (method, path, JSON body), answers of the same request in
the order they came (a `respond` list, the last repeats), streams with the
pacing measured on the wire, and no full API key anywhere.
"""

from __future__ import annotations

import itertools
import json
import math
import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import yaml

from mockpoeti.answers.chat_request import ROLES, message_text
from mockpoeti.answers.completion import split_text
from mockpoeti.answers.script import CHUNKINGS, FINISH_REASONS
from mockpoeti.base.endpoints import CHAT
from mockpoeti.base.secrets import redact
from mockpoeti.scripting.loader import MAX_NAME_CHARS

CHAT_PATH = "/v1/chat/completions"
REPLAYED_HEADERS = ("retry-after",)  # response headers a replay repeats; the rest is the replaying server's own
_REGEX_SPECIAL = set("\\.^$*+?{}[]|()")
_GLOB_SPECIAL = {"*": "[*]", "?": "[?]", "[": "[[]"}


@dataclass(frozen=True, slots=True)
class Exchange:
    """One request and what the upstream answered, as seen by the proxy."""

    method: str
    path: str
    query: str
    request: Any  # the request body: parsed JSON, text, or None
    status: int
    headers: Mapping[str, str]  # the answer's headers worth replaying, lower-case names
    body: Any = None  # a whole answer: parsed JSON or text
    events: tuple[tuple[float, str], ...] | None = None  # a stream: (seconds after the request, each event's data)
    broken: bool = False  # the upstream dropped the stream before its end
    elapsed: float = 0.0  # seconds from the request to the whole answer
    cut: bool = False  # the answer was longer than the recorder keeps: `body` or `events` are its head


MAX_RECORDING_BYTES = 16 * 1024 * 1024  # of requests and answers kept in all: the file is written in ~2 s at most
PLAIN_YAML_BYTES = 128 * 1024  # a recording up to this is written by PyYAML (lists indented; ~0.5 MB/s); past it, by libyaml


@dataclass(slots=True)
class Recording:
    """What the proxy saw so far, at most MAX_RECORDING_BYTES of it. The credentials it saw
    are kept in memory only, to be redacted: none of them is ever written. Each exchange is
    redacted and read once (`prepared`), not again at every write."""

    upstream: str
    started: str  # ISO 8601, for the description
    name: str = "recorded"
    exchanges: list[Exchange] = field(default_factory=list)
    secrets: set[str] = field(default_factory=set)
    changes: int = 0
    size: int = 0  # bytes of the requests and answers kept
    left_out: int = 0  # exchanges not kept: the recording was full, or a request too large to replay
    prepared: dict[int, tuple] = field(default_factory=dict)  # exchange index -> what `scenario_document` made of it

    def add(self, exchange: Exchange, size: int, secrets: Iterable[str] = ()) -> bool:
        """Keep an exchange of `size` bytes, with the credentials its request carried; False
        when the recording is full."""
        if self.size + size > MAX_RECORDING_BYTES:
            self.left_out += 1
            return False
        self.secrets.update(secrets)
        self.exchanges.append(exchange)
        self.size += size
        self.changes += 1
        return True

    def snapshot(self) -> Recording:
        """A copy to write from while recording goes on (sharing what was prepared)."""
        return replace(self, exchanges=list(self.exchanges), secrets=set(self.secrets))

    def document(self, errors: Mapping[str, Any]) -> dict:
        document = scenario_document(
            self.exchanges, self.secrets, self.upstream, self.started, self.name, errors, self.prepared
        )
        if self.left_out:
            document["description"] += (
                f" {self.left_out} more request{'s were' if self.left_out != 1 else ' was'} not recorded: "
                f"a request too large to replay, or past the {MAX_RECORDING_BYTES // 2**20} MiB the recorder keeps in all."
            )
        return document

    def text(self, errors: Mapping[str, Any]) -> str:
        return scenario_yaml(self.document(errors), fast=self.size > PLAIN_YAML_BYTES)


class EventSplitter:
    """Server-Sent Events from bytes as they arrive: the data of each complete
    event (multi-line data joined, comments and other fields ignored). Each byte
    is looked at once, however the events are cut into pieces."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._searched = 0  # where the next search for an event's end starts

    def feed(self, data: bytes) -> list[str]:
        self._buffer += data
        out, start = [], 0
        while True:
            end, after = self._end_of_event(max(start, self._searched))
            if end < 0:
                break
            lines = bytes(self._buffer[start:end]).replace(b"\r\n", b"\n").split(b"\n")
            data_lines = [line[5:].removeprefix(b" ") for line in lines if line.startswith(b"data:")]
            if data_lines:
                out.append(b"\n".join(data_lines).decode("utf-8", "replace"))
            start = after
        del self._buffer[:start]
        self._searched = max(0, len(self._buffer) - 3)  # a separator may straddle two pieces
        return out

    def _end_of_event(self, offset: int) -> tuple[int, int]:
        """Where the first event ending after `offset` ends, and where the next begins; (-1, -1) for none."""
        found = [(i, i + len(sep)) for sep in (b"\n\n", b"\r\n\r\n") if (i := self._buffer.find(sep, offset)) >= 0]
        return min(found) if found else (-1, -1)


# --- the document --------------------------------------------------------------

def scenario_document(
    exchanges: Iterable[Exchange], secrets: Iterable[str], upstream: str, started: str, name: str, errors: Mapping[str, Any],
    prepared: dict[int, tuple] | None = None,
) -> dict:
    """The scenario replaying `exchanges`. `errors` is the error catalog (code ->
    an object with `status` and `message`): codes it knows replay as `error`,
    any other error answer as its raw status and body. `prepared` keeps what was
    made of each exchange (by position) for the next call, until new secrets are seen."""
    known = sorted(set(secrets), key=len, reverse=True)
    seen = prepared if prepared is not None else {}
    groups: dict[tuple, list[tuple[Exchange, Answer]]] = {}
    cut = 0
    for i, exchange in enumerate(exchanges):
        made = seen.get(i)
        if made is None or made[0] != len(known):
            redacted = redact_exchange(exchange, known)
            key = identity(redacted)
            answer = _chat_answer_or_raw(redacted, errors) if key[0] == CHAT else whole_answer(redacted, errors)
            made = seen[i] = (len(known), key, redacted, answer)
        _, key, redacted, answer = made
        groups.setdefault(key, []).append((redacted, answer))
        cut += exchange.cut
    rules = [_rule(key, group) for key, group in groups.items()]
    rules = _most_specific_first(rules)
    count = sum(len(g) for g in groups.values())
    cut_note = (
        f" {cut} answer{'s were' if cut != 1 else ' was'} longer than the recorder keeps: only the head is recorded "
        "(the rule's name says so)."
        if cut else ""
    )
    return {
        "version": 1,
        "name": name,
        "description": (
            f"Recorded from {_public_url(upstream)} by `mockpoeti record`, starting {started}: "
            f"{count} request{'s' if count != 1 else ''}, {len(rules)} rule{'s' if len(rules) != 1 else ''}. "
            "Answers of the same request replay in the order they came (the last repeats). "
            "API keys are shortened to their prefix." + cut_note
        ),
        "rules": rules,
    }


def identity(exchange: Exchange) -> tuple:
    """What tells requests apart; the same identity answered twice is one rule with a sequence."""
    chat = _chat_identity(exchange)
    if chat is not None:
        return (CHAT, *chat)
    body = exchange.request if isinstance(exchange.request, dict) else None
    return ("http", exchange.method, exchange.path, json.dumps(body, sort_keys=True, ensure_ascii=False))


def _chat_identity(exchange: Exchange) -> tuple | None:
    """(model, stream, tool names or None, last role, last user message) of a
    well-formed chat request; None for anything else (matched by method, path and body)."""
    body = exchange.request
    if exchange.method != "POST" or exchange.path != CHAT_PATH or not isinstance(body, dict):
        return None
    model, messages, tools = body.get("model"), body.get("messages"), body.get("tools")
    if not isinstance(model, str) or not isinstance(messages, list) or not messages:
        return None
    if not all(isinstance(m, dict) for m in messages) or messages[-1].get("role") not in ROLES:
        return None
    names: tuple[str, ...] | None = None
    if tools:
        if not isinstance(tools, list):
            return None
        found = [(t.get("function") or {}).get("name") if isinstance(t, dict) else None for t in tools]
        if not all(isinstance(n, str) for n in found):
            return None
        names = tuple(n for n in found if isinstance(n, str))
    message = next((message_text(m) for m in reversed(messages) if m.get("role") == "user"), "")
    return model, body.get("stream") is True, names, messages[-1]["role"], message


def _rule(key: tuple, group: list[tuple[Exchange, Answer]]) -> dict:
    first = group[0][0]
    answers = [answer for _, answer in group]
    if key[0] == CHAT:
        _, model, stream, tools, last_role, message = key
        name = f"chat{' stream' if stream else ''}: {_snippet(message)}"
        match: dict[str, Any] = {
            "endpoint": CHAT,
            "model": glob_escape(model),
            "stream": stream,
            "tools": list(tools) if tools else False,
            "last_role": last_role,
            "message": exact_regex(message),
        }
    else:
        name = f"{first.method} {first.path}" + (f"?{first.query}" if first.query else "")
        match = {"method": first.method, "path": glob_escape(first.path)}
        if isinstance(first.request, dict):
            match["body"] = first.request
    if any(exchange.cut for exchange, _ in group):
        name = _snippet(name, MAX_NAME_CHARS - 6) + " (cut)"
    rule: dict[str, Any] = {"name": _snippet(name, MAX_NAME_CHARS), "match": match}
    responds = _sequence(answers)
    rule["respond"] = responds[0] if len(responds) == 1 else responds
    return rule


def _most_specific_first(rules: list[dict]) -> list[dict]:
    """A body match is a subset match: for one method and path, the rule naming
    more of the body goes first, so a smaller body cannot answer for a larger one."""
    def size(value: Any) -> int:
        if isinstance(value, dict):
            return sum(size(v) for v in value.values()) or 1
        return 1

    def group(i: int, rule: dict) -> tuple:
        m = rule["match"]
        return (m["method"], m["path"]) if "method" in m else ("rule", i)

    first: dict[tuple, int] = {}
    for i, rule in enumerate(rules):
        first.setdefault(group(i, rule), i)

    def specificity(rule: dict) -> int:
        return -size(rule["match"]["body"]) if "body" in rule["match"] else 0

    order = sorted(range(len(rules)), key=lambda i: (first[group(i, rules[i])], specificity(rules[i]), i))
    return [rules[i] for i in order]


def _snippet(text: str, limit: int = 60) -> str:
    one_line = " ".join(text.split())
    return one_line if len(one_line) <= limit else one_line[: limit - 3] + "..."


# --- answers -------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Timing:
    """What was measured of one answer, in milliseconds."""

    first_ms: float | None = None  # request -> first content chunk (streams)
    gaps_ms: tuple[float, ...] = ()  # between content chunks (streams)
    latency_ms: float | None = None  # request -> whole answer (plain chat answers)


@dataclass(frozen=True, slots=True)
class Answer:
    respond: dict  # without timing
    timing: Timing = Timing()
    chunk: str | int | None = None  # the chunking of a stream


def _sequence(answers: list[Answer]) -> list[dict]:
    """One response per answer, in order; since the last one repeats, the run
    of identical answers at the end is one response (their timings pooled)."""
    last = len(answers) - 1
    while last > 0 and _same_answer(answers[last - 1], answers[-1]):
        last -= 1
    tail = answers[last:]
    pooled = Timing(
        first_ms=_median([a.timing.first_ms for a in tail]),
        gaps_ms=tuple(g for a in tail for g in a.timing.gaps_ms),
        latency_ms=_median([a.timing.latency_ms for a in tail]),
    )
    return [*(_with_timing(a, a.timing) for a in answers[:last]), _with_timing(tail[0], pooled)]


def _same_answer(a: Answer, b: Answer) -> bool:
    return a.chunk == b.chunk and _same(a.respond, b.respond)


def _same(a: dict, b: dict) -> bool:
    """Equal but for tool-call ids, which a real model makes anew for every answer."""
    def strip(r: dict) -> dict:
        calls = r.get("tool_calls")
        return {**r, "tool_calls": [{k: v for k, v in c.items() if k != "id"} for c in calls]} if calls else r

    return strip(a) == strip(b)


def _median(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def _with_timing(answer: Answer, timing: Timing) -> dict:
    out = dict(answer.respond)
    fault = out.pop("fault", None)
    if timing.latency_ms is not None:
        out["latency_ms"] = _ms(timing.latency_ms)
    if answer.chunk is not None:
        stream: dict[str, Any] = {"chunk": answer.chunk}
        if timing.first_ms is not None:
            stream["first_chunk_ms"] = _ms(timing.first_ms)
        interval, jitter = pacing_of(timing.gaps_ms)
        if interval:
            stream["interval_ms"] = _ms(interval)
        if jitter:
            stream["jitter_ms"] = _ms(jitter)
        out["stream"] = stream
    if fault is not None:
        out["fault"] = fault
    return out


def pacing_of(gaps_ms: Iterable[float]) -> tuple[float, float]:
    """(interval, jitter) in ms from the gaps between chunks.

    The interval is the median gap, unless chunks came in bursts (several in
    one read, so most gaps are near 0 and the median under half the mean): then
    the mean, so the replay lasts as long as the recording. A replay draws each
    chunk's deadline uniformly within +-jitter, so its gaps spread with a standard
    deviation of jitter x sqrt(2/3): the jitter is the gaps' spread (robust: 1.4826 x
    their median absolute deviation) x sqrt(3/2), at most the interval."""
    gaps = sorted(gaps_ms)
    if not gaps:
        return 0.0, 0.0
    median, mean = statistics.median(gaps), statistics.fmean(gaps)
    interval = mean if median < mean / 2 else median
    if len(gaps) < 3:
        return interval, 0.0
    spread = 1.4826 * statistics.median(abs(g - median) for g in gaps)
    return interval, min(interval, spread * math.sqrt(1.5))


def _ms(value: float) -> int | float:
    value = min(max(value, 0.0), 3_600_000.0)  # what a scenario's timings may say
    rounded = round(value, 1) if value < 10 else round(value)
    return int(rounded) if float(rounded).is_integer() else rounded


def whole_answer(exchange: Exchange, errors: Mapping[str, Any]) -> Answer:
    """Any answer replayed as it was: an error by its code, anything else by status and body."""
    if exchange.events is not None:
        return Answer(_raw(exchange))
    if exchange.status >= 400:
        return Answer(error_answer(exchange, errors))
    return Answer(_raw(exchange))


def _raw(exchange: Exchange) -> dict:
    out: dict[str, Any] = {}
    if exchange.status != 200:
        out["status"] = exchange.status
    headers = _replayed_headers(exchange)
    if headers:
        out["headers"] = headers
    if exchange.events is not None:
        out["body"] = "".join(f"data: {data}\n\n" for _, data in exchange.events)
    else:
        out["body"] = "" if exchange.body is None else exchange.body
    return out


def _replayed_headers(exchange: Exchange) -> dict[str, str]:
    return {name.title(): exchange.headers[name] for name in REPLAYED_HEADERS if name in exchange.headers}


def error_answer(exchange: Exchange, errors: Mapping[str, Any]) -> dict:
    """An error in the unified format with a code the catalog knows: `error`
    (with `message` and `status` where they differ from the catalog's)."""
    body = exchange.body
    error = body.get("error") if isinstance(body, dict) and set(body) == {"error"} else None
    code = error.get("code") if isinstance(error, dict) else None
    if not isinstance(error, dict) or not isinstance(code, str) or code not in errors:
        return _raw(exchange)
    if not set(error) <= {"code", "message", "status"} or error.get("status", exchange.status) != exchange.status:
        return _raw(exchange)
    known = errors[code]
    out: dict[str, Any] = {"error": code}
    message = error.get("message")
    if isinstance(message, str) and message != known.message:
        out["message"] = message
    if exchange.status != known.status:
        out["status"] = exchange.status
    headers = _replayed_headers(exchange)
    if headers:
        out["headers"] = headers
    return out


def _chat_answer_or_raw(exchange: Exchange, errors: Mapping[str, Any]) -> Answer:
    """Whatever a gateway sends, the file gets written: an answer of a shape
    nobody foresaw is kept raw rather than lose the recording."""
    try:
        return chat_answer(exchange, errors)
    except (AttributeError, KeyError, TypeError, ValueError, RecursionError):
        return whole_answer(exchange, errors)


def chat_answer(exchange: Exchange, errors: Mapping[str, Any]) -> Answer:
    """A chat answer as `content`/`tool_calls`/`finish_reason`/`usage` (and its
    pacing), or, when the format cannot say it exactly, as the raw answer."""
    if exchange.status >= 400 and exchange.events is None:
        return Answer(error_answer(exchange, errors))
    if exchange.status != 200:
        return Answer(_raw(exchange))
    answer = _stream_answer(exchange, errors) if exchange.events is not None else _plain_answer(exchange)
    return answer if answer is not None else whole_answer(exchange, errors)


def _plain_answer(exchange: Exchange) -> Answer | None:
    body = exchange.body
    choices = body.get("choices") if isinstance(body, dict) else None
    if not isinstance(choices, list) or not choices or not all(isinstance(c, dict) for c in choices):
        return None

    def unindexed(choice: dict) -> dict:
        return {k: v for k, v in choice.items() if k != "index"}

    if any(unindexed(c) != unindexed(choices[0]) for c in choices):
        return None  # n > 1 with different answers: a rule has one
    message = choices[0].get("message")
    if not isinstance(message, dict):
        return None
    calls = []
    for call in message.get("tool_calls") or ():
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict) or not all(isinstance(function.get(k), str) for k in ("name", "arguments")):
            return None
        calls.append((call.get("id"), function["name"], function["arguments"]))
    finish, usage = choices[0].get("finish_reason"), body.get("usage")
    respond = _respond(message.get("content"), calls, finish, usage, message.get("refusal"))
    if respond is None:
        return None
    return Answer(respond, Timing(latency_ms=exchange.elapsed * 1000))


def _respond(content: Any, calls: list[tuple[Any, str, str]], finish: Any, usage: Any, refusal: Any = None) -> dict | None:
    """The fields in reading order; None when something cannot be said exactly.
    A refusal (`message.refusal`) replays as the `refusal` fault with its words."""
    out: dict[str, Any] = {}
    if refusal is not None and (not isinstance(refusal, str) or content or calls):
        return None
    if content is not None and refusal is None:
        if not isinstance(content, str) or "{{" in content or "}}" in content:  # a template would be filled in
            return None
        out["content"] = content
    if calls:
        out["tool_calls"] = [
            {"name": name, "arguments": _arguments(arguments), **({"id": cid} if isinstance(cid, str) else {})}
            for cid, name, arguments in calls
        ]
    if finish is not None:
        if finish not in FINISH_REASONS:
            return None
        out["finish_reason"] = finish
    if isinstance(usage, dict):
        tokens = {k: usage[k] for k in ("prompt_tokens", "completion_tokens") if isinstance(usage.get(k), int)}
        if tokens:
            out["usage"] = tokens
    if refusal is not None:
        out["fault"] = {"kind": "refusal", "message": refusal}
    return out


def _arguments(text: str) -> Any:
    """A mapping when it writes back to exactly the same JSON text (easier to read and edit), else the text."""
    try:
        value = json.loads(text)
    except ValueError:
        return text
    return value if isinstance(value, dict) and json.dumps(value, ensure_ascii=False) == text else text


def _stream_answer(exchange: Exchange, errors: Mapping[str, Any]) -> Answer | None:
    content_pieces: list[str] = []
    refusal_pieces: list[str] = []
    call_pieces: dict[int, list[str]] = {}
    calls: dict[int, dict] = {}
    content_times: list[float] = []
    call_times: list[float] = []
    finish = usage = error = None
    done = False
    for at, data in exchange.events or ():
        if data.strip() == "[DONE]":
            done = True
            continue
        try:
            chunk = json.loads(data)
        except ValueError:
            return None
        if not isinstance(chunk, dict):
            return None
        if "error" in chunk:
            error = chunk["error"]
            break
        if isinstance(chunk.get("usage"), dict):
            usage = chunk["usage"]
        for choice in chunk.get("choices") or ():
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                return None  # n > 1: a rule streams one answer
            delta = choice.get("delta")
            if not isinstance(delta, dict):
                continue
            if isinstance(delta.get("content"), str) and delta["content"]:
                content_pieces.append(delta["content"])
                content_times.append(at)
            if isinstance(delta.get("refusal"), str) and delta["refusal"]:
                refusal_pieces.append(delta["refusal"])
                content_times.append(at)
            for call in delta.get("tool_calls") or ():
                function = call.get("function") if isinstance(call, dict) else None
                if not isinstance(function, dict) or not isinstance(call.get("index", 0), int):
                    return None
                k = call.get("index", 0)
                slot = calls.setdefault(k, {"id": None, "name": "", "arguments": ""})
                slot["id"] = call.get("id") if isinstance(call.get("id"), str) else slot["id"]
                slot["name"] += function.get("name") if isinstance(function.get("name"), str) else ""
                piece = function.get("arguments") if isinstance(function.get("arguments"), str) else ""
                if piece:
                    slot["arguments"] += piece
                    call_pieces.setdefault(k, []).append(piece)
                    call_times.append(at)
            if choice.get("finish_reason") is not None:
                finish = choice["finish_reason"]
    ordered = [calls[k] for k in sorted(calls)]
    respond = _respond(
        "".join(content_pieces) if content_pieces or not (ordered or refusal_pieces) else None,
        [(c["id"], c["name"], c["arguments"]) for c in ordered],
        finish,
        usage,
        "".join(refusal_pieces) if refusal_pieces else None,
    )
    if respond is None:
        return None
    # a replay streams the tool calls' arguments when there are calls, else the content (or the refusal)
    spoken = refusal_pieces or content_pieces
    texts = [(c["arguments"], call_pieces.get(k, [])) for k, c in sorted(calls.items())] if calls else [
        ("".join(spoken), spoken)
    ]
    fault = _stream_fault(error, exchange.broken, done, finish, sum(len(p) for _, p in texts), errors)
    if fault is False or (fault is not None and refusal_pieces):  # a rule carries one fault
        return None
    if fault is not None:
        respond["fault"] = fault
    times = call_times if calls else content_times
    gaps = tuple((b - a) * 1000 for a, b in itertools.pairwise(times))
    return Answer(respond, Timing(first_ms=times[0] * 1000 if times else None, gaps_ms=gaps), chunking(texts))


def _stream_fault(error: Any, broken: bool, done: bool, finish: Any, pieces: int, errors: Mapping[str, Any]) -> Any:
    """How the stream ended, as a fault (None: as it should; False: not expressible)."""
    if error is not None:
        code = error.get("code") if isinstance(error, dict) else None
        if not isinstance(code, str) or code not in errors:
            return False
        fault: dict[str, Any] = {"kind": "error_event", "after_chunks": pieces, "error": code}
        if isinstance(error.get("message"), str) and error["message"] != errors[code].message:
            fault["message"] = error["message"]
        return fault
    if broken:
        return {"kind": "disconnect", "after_chunks": pieces}
    if not done:
        return "no_done"
    if finish is None:
        return "no_finish"
    return None


def chunking(texts: list[tuple[str, list[str]]]) -> str | int:
    """The `chunk` setting whose split of each text gives back the recorded
    pieces (token, word, char, or N characters); when none does, the N that
    gives the same number of chunks (so the pacing lasts as long), or near it
    (the smallest such N). Found in time linear in the texts: a 4 MiB stream
    tried every N from 1 to 4 million."""

    def fits(chunk: str | int) -> bool:
        for text, pieces in texts:
            size = 1 if chunk == "char" else chunk
            if isinstance(size, int) and math.ceil(len(text) / size) != len(pieces):
                return False  # the count tells, before millions of pieces are cut
            if split_text(text, chunk) != pieces:
                return False
        return True

    tried: list[str | int] = [*CHUNKINGS, _first_size(texts)]
    for chunk in tried:
        if chunk and fits(chunk):
            return chunk
    wanted = sum(len(p) for _, p in texts)

    def count(n: int) -> int:  # chunks of N characters: fewer (or as many) as N grows
        return sum(math.ceil(len(t) / n) for t, _ in texts)

    def first_at_most(target: int) -> int:
        low, high = 1, max((len(t) for t, _ in texts), default=1) or 1
        while low < high:
            middle = (low + high) // 2
            low, high = (low, middle) if count(middle) <= target else (middle + 1, high)
        return low

    above = first_at_most(wanted)  # the first N with at most `wanted` chunks; the N before it has more
    below = first_at_most(count(above - 1)) if above > 1 else above  # the first N with that many
    return min((below, above), key=lambda n: (abs(count(n) - wanted), n))


def _first_size(texts: list[tuple[str, list[str]]]) -> int:
    return next((len(p[0]) for _, p in texts if p), 0)


def redact_exchange(exchange: Exchange, secrets: Iterable[str]) -> Exchange:
    known = tuple(secrets)
    return replace(
        exchange,
        path=redact(exchange.path, known),
        query=redact(exchange.query, known),
        request=redact(exchange.request, known),
        headers={k: redact(v, known) for k, v in exchange.headers.items()},
        body=redact(exchange.body, known),
        events=None if exchange.events is None else tuple((t, redact(d, known)) for t, d in exchange.events),
    )


def _public_url(url: str) -> str:
    """The upstream without user:password@ or a query (either may hold a secret)."""
    scheme, sep, rest = url.partition("://")
    host, slash, path = rest.partition("/")
    host = host.rpartition("@")[2]
    return f"{scheme}{sep}{host}{slash}{path.split('?')[0]}"


# --- writing ---------------------------------------------------------------------

def exact_regex(text: str) -> str:
    """`/^...$/` holding for exactly `text` (a plain `message` would be a substring match).
    Only regex syntax is escaped, and lines stay lines, so the message stays readable."""
    out = []
    for ch in text:
        if ch in _REGEX_SPECIAL:
            out.append("\\" + ch)
        elif (ord(ch) < 0x20 and ch not in "\n\t") or ch == "\x7f":
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    return "/^" + "".join(out) + "$/"


def glob_escape(text: str) -> str:
    """A glob (`model`, `path`) that holds for exactly `text`."""
    return "".join(_GLOB_SPECIAL.get(ch, ch) for ch in text)


class _Dumper(yaml.SafeDumper):
    """Block style, lists indented under their key, multi-line text as `|` blocks."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        return super().increase_indent(flow, False)


def _represent_str(dumper: yaml.SafeDumper, text: str) -> yaml.ScalarNode:
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style="|" if "\n" in text else None)


_Dumper.add_representer(str, _represent_str)


_FAST_BASE: type[yaml.SafeDumper] = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


class _FastDumper(_FAST_BASE):  # type: ignore[misc,valid-type]  # libyaml's emitter, where PyYAML has it
    """The same over libyaml's emitter: a 4 MiB answer is written in 0.1 s, not 8 s (lists
    then sit at their key's indentation)."""


_FastDumper.add_representer(str, _represent_str)


def scenario_yaml(document: dict, fast: bool = False) -> str:
    return yaml.dump(
        document, Dumper=_FastDumper if fast else _Dumper, sort_keys=False, allow_unicode=True, default_flow_style=False,
        width=100,
    )

