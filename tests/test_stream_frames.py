"""Text chunks are spliced into a serialised template: the bytes must be exactly those
of the chunk serialised whole, whatever the text (quotes, escapes, CJK, emoji); a run of
them, spliced at once, the very bytes of the chunks one by one; and what the journal shows of
a stream, the bytes the client read."""

from __future__ import annotations

import dataclasses
import math
import re
import socket
import time
from array import array
from dataclasses import replace

import httpx
import orjson
import pytest

from mockpoeti.answers.chat_request import parse_chat_request
from mockpoeti.answers.completion import DONE, StreamedAnswer, build_completion, finish_text, stream_chunks
from mockpoeti.answers.faults import Step, _stream_steps, plan_stream
from mockpoeti.answers.script import Pacing, Timing
from mockpoeti.books.journal import JOURNAL_ANSWER_BYTES
from mockpoeti.books.timeline import MAX_MARKS, Timeline
from mockpoeti.http.app import make_state
from mockpoeti.http.routes.ui import streamed_text
from mockpoeti.http.sse import _deadlines, offsets


@pytest.mark.parametrize("include_usage", [False, True])
@pytest.mark.parametrize("n", [1, 3])
def test_a_spliced_text_chunk_is_the_chunk_serialised_whole(include_usage, n):
    state = make_state()
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], "n": n, "stream": True}
    completion = build_completion(parse_chat_request(body, state.catalog.models), state.text, 7, "chatcmpl-x", 1)
    text = 'a "quoted" \\ back\tslash\n 中文 😀 \u2028 end'
    completion = dataclasses.replace(completion, choices=tuple(finish_text(i, text) for i in range(n)))
    kinds, chunks = stream_chunks(completion, include_usage)
    spliced = [(kind, chunk) for kind, chunk in zip(kinds, chunks, strict=True) if kind == "content"]
    assert spliced and all(isinstance(chunk, bytes) for _, chunk in spliced)
    pieces = []
    for _, chunk in spliced:
        parsed = orjson.loads(chunk)
        assert orjson.dumps(parsed) == chunk  # the same bytes as serialising the chunk whole
        assert list(parsed) == ["id", "object", "created", "model", "system_fingerprint", "choices"] + (
            ["usage"] if include_usage else [])
        [choice] = parsed["choices"]
        assert choice == {"index": choice["index"], "delta": {"content": choice["delta"]["content"]},
                          "logprobs": None, "finish_reason": None}
        pieces.append((choice["index"], choice["delta"]["content"]))
    for i in range(n):
        assert "".join(p for index, p in pieces if index == i) == text


def _completion(n: int = 1, text: str | None = "Hello there, a \"quoted\" \\ text 中文 😀", logprobs: bool = False,
                tools: bool = False, refusal: bool = False):
    state = make_state()
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "What is the weather in Paris?"}], "n": n,
            "stream": True}
    if logprobs:
        body |= {"logprobs": True, "top_logprobs": 2}
    if tools:
        body |= {"tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {
            "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}], "tool_choice": "required"}
    completion = build_completion(parse_chat_request(body, state.catalog.models), state.text, 7, "chatcmpl-x", 1)
    if refusal:
        choices = tuple(replace(c, content=None, refusal="I can't help with that.") for c in completion.choices)
    elif tools:
        return completion
    else:
        choices = tuple(finish_text(i, text or "") for i in range(n))
    return replace(completion, choices=choices)


@pytest.mark.parametrize("completion", [
    pytest.param(_completion(), id="text"),
    pytest.param(_completion(text=("one two three " * 500)), id="long text"),
    pytest.param(_completion(text="a joint \uffff inside"), id="text with the joint"),
    pytest.param(_completion(text=""), id="empty"),
    pytest.param(_completion(n=3), id="three choices"),
    pytest.param(_completion(logprobs=True), id="logprobs"),
    pytest.param(_completion(tools=True), id="tool call"),
    pytest.param(_completion(refusal=True), id="refusal"),
])
@pytest.mark.parametrize("include_usage", [False, True])
@pytest.mark.parametrize("run_bytes", [1, 2_000, 256 * 1024])
def test_blocks_are_the_frames_run_together(completion, include_usage, run_bytes):
    answer = StreamedAnswer(completion, include_usage, "token")
    frames = list(answer.frames())
    blocks = list(answer.blocks(run_bytes))

    assert len(frames) == len(answer.kinds)
    assert all(frame.startswith(b"data: {") and frame.endswith(b"}\n\n") and frame.count(b"\n\n") == 1 for frame in frames)
    assert b"".join(data for data, _, _ in blocks) == b"".join(frames)
    assert sum(events for _, events, _ in blocks) == len(frames)
    assert sum(content for _, _, content in blocks) == answer.kinds.count("content")
    assert all(data.count(b"\n\n") == events for data, events, _ in blocks)
    assert all(len(data) < max(run_bytes, 1_000) * 2 for data, _, _ in blocks)  # a run stays about its size


# What the journal shows of a streamed answer is what the client read, byte for byte: kept as
# the bytes written (a long answer) or made again from the answer when read (a short one).
FAULTED = {
    "plain": {},
    "paced": {"stream": {"chunk": "word", "interval_ms": 1}},
    "long": {"content": "word " * 5_000},
    "long, paced": {"content": "word " * 1_000, "stream": {"chunk": "word", "interval_ms": 0}},
    "many, paced": {"content": "ab" * 600, "stream": {"chunk": "char", "interval_ms": 0}},  # more writes than MAX_MARKS
    "drip": {"fault": {"kind": "drip", "bytes": 97, "interval_ms": 0}},
    "drip by the byte": {"fault": {"kind": "drip", "bytes": 1, "interval_ms": 0}},  # every blank line split in two writes
    "malformed_chunk": {"fault": "malformed_chunk"},
    "split_utf8": {"content": "春天来了，花开了。", "stream": {"chunk": "char"}, "fault": "split_utf8"},
    "duplicate_chunk": {"fault": "duplicate_chunk"},
    "error_event": {"fault": "error_event"},
    "no_done": {"fault": "no_done"},
    "no_finish": {"fault": "no_finish"},
    "disconnect": {"fault": {"kind": "disconnect", "after_chunks": 3}},
}


@pytest.mark.parametrize("include_usage", [False, True])
@pytest.mark.parametrize("name", list(FAULTED))
def test_the_journal_shows_the_stream_the_client_read(poeti, http, name, include_usage):
    poeti.stub({"content": "Spring comes: \"quoted\", 中文, 😀.", **FAULTED[name]})
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    if include_usage:
        body["stream_options"] = {"include_usage": True}
    read = []
    with http.stream("POST", "/v1/chat/completions", json=body) as response:
        try:
            read.extend(response.iter_raw())
        except httpx.HTTPError:
            assert name == "disconnect"
    raw = b"".join(read)
    entry = http.get("/__admin/requests/1").json()

    assert entry["delivery"]["bytes_sent"] == entry["answer_bytes"] == len(raw)
    assert entry["delivery"]["events_sent"] == raw.count(b"\n\n")
    kept = raw[:JOURNAL_ANSWER_BYTES].decode("utf-8", "replace")
    assert entry["response_body"] == kept
    assert entry.get("response_body_truncated", False) == (len(raw) > JOURNAL_ANSWER_BYTES)
    assert entry["response_text"] == streamed_text(kept)


@pytest.mark.parametrize("name", [*FAULTED, "jittered"])
def test_a_streams_timeline_made_again_is_the_one_the_writer_marked(poeti, http, monkeypatch, name):
    """A short answer's writes are marked with the time each went out alone, the rest made again
    from its plan when the journal is read: the same marks as the writer's, whole, at the time."""
    marked: list[list] = []
    mark = Timeline.mark

    def marking(timeline, sent_ms, planned_ms, events, content):
        as_kept = array("f", [sent_ms, math.nan if planned_ms is None else planned_ms])  # as the journal's array keeps them
        marked.append([round(as_kept[0], 3), None if planned_ms is None else round(as_kept[1], 3), events, content])
        mark(timeline, sent_ms, planned_ms, events, content)

    monkeypatch.setattr(Timeline, "mark", marking)
    respond = FAULTED.get(name) or {"stream": {"chunk": "word", "interval_ms": 2, "jitter_ms": 2}}
    poeti.stub({"content": "Spring comes: \"quoted\", 中文, 😀.", **respond})
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    with http.stream("POST", "/v1/chat/completions", json=body) as response:
        try:
            for _ in response.iter_raw():
                pass
        except httpx.HTTPError:
            assert name == "disconnect"
    assert http.get("/__admin/requests/1").status_code == 200  # the call is over and logged
    [entry] = poeti.state.journal
    timeline = entry.timeline.to_json()

    assert (entry.timeline.plan is None) == name.startswith("long")  # kept whole, or made again
    assert len(marked) > 1
    assert timeline["marks"] == marked[:MAX_MARKS]
    assert timeline["marks_dropped"] == max(0, len(marked) - MAX_MARKS)


@pytest.mark.parametrize("pacing", [
    Pacing(interval=Timing(fixed_ms=40)),
    Pacing(first_chunk=Timing(fixed_ms=250), interval=Timing(fixed_ms=10)),
    Pacing(first_chunk=Timing(fixed_ms=0.1), interval=Timing(fixed_ms=0.3)),
    Pacing(first_chunk=Timing(fixed_ms=7.3)),
])
@pytest.mark.parametrize("completion", [_completion(), _completion(n=3), _completion(tools=True)], ids=["text", "n=3", "tool"])
def test_a_paced_plan_made_by_iterators_is_the_one_drawn_frame_by_frame(pacing, completion):
    """Fixed pacing: the deadlines are sums made in C, and a plan without a fault is a map over the
    frames; the same steps, to the bit, as drawing each deadline and planning each frame in Python."""
    def unjoined(steps):  # the last write and the end, sent in one call, as two steps
        for step in steps:
            yield from (step._replace(op="write"), Step("eof")) if step.op == "eof" and step.data else (step,)

    answer = StreamedAnswer(completion, True, "token")
    planned = list(plan_stream(answer.kinds, answer.frames(), offsets(answer.kinds, pacing, None), DONE, None))
    fast = list(unjoined(planned))
    drawn = list(_stream_steps(answer.kinds, StreamedAnswer(completion, True, "token").frames(),
                               _deadlines(answer.kinds, pacing, None), DONE, None, b""))

    assert planned[-1] == Step("eof", DONE, None, 0, 1)
    assert fast == drawn
    assert [type(step.at) for step in fast] == [type(step.at) for step in drawn]
    assert sum(step.content for step in fast) == answer.kinds.count("content")


def _raw_answer(url: str, key: str, body: dict, version: bytes = b"1.1", pause_s: float = 0.0) -> bytes:
    """The answer's bytes off the socket, HTTP framing included (read `pause_s` apart: a slow reader)."""
    host, port = url.removeprefix("http://").split(":")
    sent = orjson.dumps(body)
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(b"POST /v1/chat/completions HTTP/%b\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\n"
                     b"Authorization: Bearer %b\r\nContent-Length: %d\r\n\r\n%b" % (version, key.encode(), len(sent), sent))
        pieces = []
        while piece := sock.recv(65536):
            pieces.append(piece)
            time.sleep(pause_s)
        return b"".join(pieces)


def _unchunked(chunked: bytes) -> bytes:
    """A chunked body's bytes, its framing undone (and checked)."""
    out = b""
    while True:
        size, _, rest = chunked.partition(b"\r\n")
        if int(size, 16) == 0:
            assert rest == b"\r\n"
            return out
        assert rest[int(size, 16) : int(size, 16) + 2] == b"\r\n"
        out, chunked = out + rest[: int(size, 16)], rest[int(size, 16) + 2 :]


def _contents(events: bytes) -> list[str]:
    """The content pieces of a stream's events, in order."""
    chunks = [orjson.loads(event.removeprefix(b"data: ")) for event in events.split(b"\n\n")[:-1] if event != DONE.strip()]
    return [choice["delta"]["content"] for chunk in chunks for choice in chunk["choices"] if choice["delta"].get("content")]


# --- paced writes, made from their timers (sse.Pacer) ---------------------------------------

def test_a_paced_stream_over_http_1_0_is_the_same_events_unframed(poeti):
    """HTTP/1.0 has no chunked framing: the paced writes go out as they are, and the
    connection's end is the body's."""
    poeti.stub({"content": "one two three four five", "stream": {"chunk": "word", "interval_ms": 2}})
    body = {"model": "gpt-4o", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    old = _raw_answer(poeti.url, poeti.api_key, body, version=b"1.0")
    new = _raw_answer(poeti.url, poeti.api_key, body)

    old_head, _, old_events = old.partition(b"\r\n\r\n")
    new_head, _, new_chunked = new.partition(b"\r\n\r\n")
    assert old_head.startswith(b"HTTP/1.0 200") and b"Transfer-Encoding" not in old_head
    assert b"Transfer-Encoding: chunked" in new_head
    assert b"Connection: keep-alive" not in old_head  # neither asked for it: each connection ends with its stream
    assert b"Connection: close" in new_head and b"Connection: keep-alive" not in new_head
    strip = lambda events: re.sub(rb'"(id|created)":[^,]*', b"", events)  # noqa: E731
    assert strip(old_events) == strip(_unchunked(new_chunked))
    assert _contents(old_events) == ["one ", "two ", "three ", "four ", "five"]


def test_a_paced_stream_waits_for_a_slow_reader_and_loses_nothing(poeti):
    """Paced chunks of 30 kB to a reader that takes its time: aiohttp's writes drain past
    64 KiB written, and the timers' writes do too, so every chunk arrives, in order, and the
    journal counts them all."""
    words = [f"{i:02d}" + "x" * 30_000 for i in range(12)]
    poeti.stub({"content": " ".join(words), "stream": {"chunk": "word", "first_chunk_ms": 5, "interval_ms": 5}})
    body = {"model": "gpt-4o", "stream": True, "messages": [{"role": "user", "content": "hi"}]}

    raw = _raw_answer(poeti.url, poeti.api_key, body, pause_s=0.002)

    assert "".join(_contents(_unchunked(raw.partition(b"\r\n\r\n")[2]))) == " ".join(words)
    [entry] = [e for e in httpx.get(poeti.url + "/__admin/requests").json()["requests"] if e["endpoint"] == "chat"]
    assert entry["delivery"]["chunks_sent"] == 12 and entry["delivery"]["completed"] is True
    sent = [mark[0] for mark in entry["delivery"]["timeline"]["marks"] if mark[3]]
    planned = [mark[1] for mark in entry["delivery"]["timeline"]["marks"] if mark[3]]
    assert len(sent) == 12 and all(s >= p - 1 for s, p in zip(sent, planned, strict=True))  # none before its time


def test_a_stream_sent_whole_is_framed_on_the_wire_as_a_paced_one(poeti):
    """A stream nothing paces goes out in one send, its headers with its events: the same
    headers in the same order, the same chunked framing, as a paced stream's."""
    poeti.stub({"content": "one two three", "stream": {"chunk": "word"}}, message="whole")
    poeti.stub({"content": "one two three", "stream": {"chunk": "word", "interval_ms": 1}}, message="paced")
    answers = {}
    for message in ("whole", "paced"):
        raw = _raw_answer(poeti.url, poeti.api_key, {"model": "gpt-4o", "stream": True,
                                                     "messages": [{"role": "user", "content": message}]})
        head, _, chunked = raw.partition(b"\r\n\r\n")
        events = _unchunked(chunked)
        names = [line.split(b":")[0] for line in head.split(b"\r\n")[1:]]
        answers[message] = names, re.sub(rb'"(id|created)":[^,]*', b"", events)

    assert answers["whole"] == answers["paced"]
    assert b"Transfer-Encoding" in answers["whole"][0]
    assert answers["whole"][1].endswith(DONE) and answers["whole"][1].count(b"\n\n") == 6
