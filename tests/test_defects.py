"""Small defects found by using mockpoeti as a new user would: the malformed_chunk
fault loses its chunk, and the average cost per request is rounded, not floored."""

from __future__ import annotations

import json

import httpx
import pytest

from mockpoeti import MockServer

QUESTION = [{"role": "user", "content": "Tell me about the sea."}]


def content_events(raw: bytes) -> tuple[list[str], list[bytes]]:
    """The content pieces of the frames that parse, and the frames that do not."""
    pieces, broken = [], []
    for event in (e.removeprefix(b"data: ") for e in raw.split(b"\n\n") if e):
        if event == b"[DONE]":
            continue
        try:
            chunk = json.loads(event)
        except json.JSONDecodeError:
            broken.append(event)
            continue
        pieces += [c["delta"]["content"] for c in chunk["choices"] if c["delta"].get("content")]
    return pieces, broken


def stream_raw(server: MockServer) -> bytes:
    body = {"model": "gpt-4o", "messages": QUESTION, "stream": True}
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {server.api_key}"}) as http:
        return http.post("/v1/chat/completions", json=body).content


def test_malformed_chunk_sends_the_broken_half_instead_of_the_chunk():
    with MockServer(seed=5) as honest:
        expected, _ = content_events(stream_raw(honest))
    with MockServer(seed=5, scenarios=["stream-malformed-chunk"]) as server:
        pieces, broken = content_events(stream_raw(server))
        entry = server.requests[-1]

    assert len(broken) == 1
    assert pieces == expected[:2] + expected[3:]  # the third chunk is lost, as the README says
    assert entry["delivery"]["chunks_sent"] == len(expected) - 1


def test_average_cost_per_request_is_rounded_to_the_nearest_nano_dollar(poeti):
    # claude-3-5-haiku: $0.80 per 1M prompt tokens, 800 nano-dollars a token; 800 / 3 = 266.67
    poeti.stub([
        {"content": "one", "usage": {"prompt_tokens": 1, "completion_tokens": 0}},
        {"content": "none", "usage": {"prompt_tokens": 0, "completion_tokens": 0}},
    ])
    with httpx.Client(base_url=poeti.url, headers={"Authorization": f"Bearer {poeti.api_key}"}) as http:
        for _ in range(3):
            http.post("/v1/chat/completions", json={"model": "claude-3-5-haiku-20241022", "messages": QUESTION})
        stats = http.get("/api/v1/request-traces/stats").json()

    assert stats["total_requests"] == 3
    assert stats["total_cost_usd"] == pytest.approx(800e-9, abs=1e-15)
    assert stats["avg_cost_per_request"] == pytest.approx(267e-9, abs=1e-15)
