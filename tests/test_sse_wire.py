"""Chat streams at the byte level: what any SSE client, in any language, receives."""

from __future__ import annotations

import json
import re

import pytest

CJK = re.compile(r"[\u4e00-\u9fff]")
DONE = b"data: [DONE]"


def stream_bytes(http, include_usage: bool = True, prompt: str = "写一首关于春天的诗"):
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": prompt}], "stream": True}
    if include_usage:
        body["stream_options"] = {"include_usage": True}
    with http.stream("POST", "/v1/chat/completions", json=body) as response:
        raw = b"".join(response.iter_raw())
    return response, raw


def events_of(raw: bytes) -> list[bytes]:
    """Each event without its blank-line terminator; the stream must end with one."""
    assert raw.endswith(b"\n\n"), raw[-80:]
    return raw[:-2].split(b"\n\n")


def kind_of(event: bytes) -> str:
    if event == DONE:
        return "done"
    chunk = json.loads(event.removeprefix(b"data: "))
    if not chunk["choices"]:
        return "usage" if chunk.get("usage") else "empty"
    choice = chunk["choices"][0]
    if choice["delta"].get("role") == "assistant":
        return "role"
    if choice.get("finish_reason"):
        return "finish"
    return "content" if choice["delta"].get("content") else "other"


def test_stream_response_is_an_event_stream_with_a_trace_id(http):
    response, _ = stream_bytes(http)

    assert response.status_code == 200
    assert response.headers["content-type"].split(";")[0] == "text/event-stream"
    assert re.fullmatch(r"trace-poeti-\w+", response.headers["X-Trace-ID"])


@pytest.mark.parametrize("include_usage", [True, False])
def test_every_event_is_one_data_line_and_the_last_is_done(http, include_usage):
    _, raw = stream_bytes(http, include_usage)

    events = events_of(raw)
    assert raw.endswith(b"\n\ndata: [DONE]\n\n")
    assert events[-1] == DONE
    assert events.count(DONE) == 1
    for event in events[:-1]:
        assert event.startswith(b"data: {"), event
        assert b"\n" not in event and b"\r" not in event, event
        assert isinstance(json.loads(event.removeprefix(b"data: ")), dict)


@pytest.mark.parametrize(
    ("include_usage", "tail"),
    [(True, ["finish", "usage", "done"]), (False, ["finish", "done"])],
)
def test_events_come_in_order_role_content_finish_usage_done(http, include_usage, tail):
    _, raw = stream_bytes(http, include_usage)

    kinds = [kind_of(e) for e in events_of(raw)]
    content = len(kinds) - 1 - len(tail)
    assert content >= 1
    assert kinds == ["role"] + ["content"] * content + tail


def test_every_chunk_is_a_chat_completion_chunk_of_one_id(http):
    _, raw = stream_bytes(http)

    chunks = [json.loads(e.removeprefix(b"data: ")) for e in events_of(raw)[:-1]]
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"}
    assert len({c["id"] for c in chunks}) == 1
    assert len({c["created"] for c in chunks}) == 1
    assert {c["model"] for c in chunks} == {"gpt-4o"}


def test_chinese_text_travels_as_plain_utf8(http):
    _, raw = stream_bytes(http, prompt="解释量子纠缠")

    raw.decode("utf-8")  # strict: no split or mangled sequences anywhere
    pieces = []
    for event in events_of(raw):
        if kind_of(event) == "content":
            piece = json.loads(event.removeprefix(b"data: "))["choices"][0]["delta"]["content"]
            assert piece.encode("utf-8") in event  # raw UTF-8 on the wire, not \\u escapes
            pieces.append(piece)
    assert CJK.search("".join(pieces))
    assert b"\\u" not in raw


def test_stream_is_traced_under_its_header_trace_id(http):
    response, raw = stream_bytes(http)
    usage = json.loads(events_of(raw)[-2].removeprefix(b"data: "))["usage"]

    trace = http.get(f"/api/v1/request-traces/{response.headers['X-Trace-ID']}").json()["data"]

    assert trace["status"] == "success"
    assert trace["stream"] is True
    assert (trace["prompt_tokens"], trace["completion_tokens"]) == (usage["prompt_tokens"], usage["completion_tokens"])
