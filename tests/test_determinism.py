"""Same seed, same frozen clock, same requests: byte-identical answers, ready to snapshot."""

from __future__ import annotations

import httpx
from payloads import WEATHER
from serving import serve

from mockpoeti import MockServer

CLOCK = "2026-04-09T14:23:18Z"

# What a test suite might send, in order. Each step: (method, path, JSON body).
SEQUENCE = [
    ("POST", "/v1/chat/completions", {"model": "gpt-4o", "messages": [{"role": "user", "content": "Say hello"}]}),
    ("POST", "/v1/chat/completions", {
        "model": "gpt-4o", "messages": [{"role": "user", "content": "解释量子纠缠"}],
        "stream": True, "stream_options": {"include_usage": True},
    }),
    ("POST", "/v1/chat/completions", {
        "model": "claude-3-5-sonnet-20241022", "messages": [{"role": "user", "content": "Weather in Oslo?"}],
        "tools": [WEATHER], "tool_choice": "required", "n": 2,
    }),
    ("POST", "/v1/chat/completions", {
        "model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Give me JSON"}],
        "response_format": {"type": "json_object"},
    }),
    ("POST", "/v1/chat/completions", {"model": "gpt-9-imaginary", "messages": [{"role": "user", "content": "hi"}]}),
    ("GET", "/v1/models", None),
    ("POST", "/api/v1/api-keys", {"name": "ci", "monthly_budget": 5, "rate_limit": 10}),
    ("GET", "/api/v1/api-keys", None),
    ("GET", "/api/v1/usage", None),
]
ANSWERED_CHATS = [0, 1, 2, 3]  # the steps whose bodies hold ids and generated text


def replay(url: str, key: str) -> list[tuple[int, str, bytes]]:
    """(status, X-Trace-ID, body bytes) for every step of SEQUENCE."""
    answers = []
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}) as http:
        for method, path, body in SEQUENCE:
            response = http.request(method, path, json=body)
            answers.append((response.status_code, response.headers["X-Trace-ID"], response.content))
    return answers


def replay_on(**settings) -> list[tuple[int, str, bytes]]:
    with MockServer(**settings) as server:
        return replay(server.url, server.api_key)


def test_same_seed_and_clock_give_byte_identical_answers():
    first = replay_on(seed=7, clock=CLOCK)
    second = replay_on(seed=7, clock=CLOCK)

    assert [status for status, _, _ in first] == [200, 200, 200, 200, 404, 200, 200, 200, 200]
    for step, (a, b) in enumerate(zip(first, second, strict=False)):
        assert a == b, f"step {step} {SEQUENCE[step][:2]} differs"


def test_different_seeds_give_different_ids_and_text():
    seven = replay_on(seed=7, clock=CLOCK)
    eight = replay_on(seed=8, clock=CLOCK)

    for step in ANSWERED_CHATS:
        assert seven[step][1] != eight[step][1], f"step {step}: same X-Trace-ID"
        assert seven[step][2] != eight[step][2], f"step {step}: same body"


def test_reset_replays_the_same_answers():
    with MockServer(seed=7, clock=CLOCK) as server:
        first = replay(server.url, server.api_key)
        httpx.post(f"{server.url}/__admin/reset").raise_for_status()
        again = replay(server.url, server.api_key)

    assert again == first


def test_another_process_with_the_same_seed_answers_the_same_bytes():
    """Nothing may depend on per-process randomness such as Python's salted hash()."""
    in_process = replay_on(seed=7, clock=CLOCK)
    with serve("--seed", "7", "--clock", CLOCK) as process:
        other_process = replay(process.url, process.api_key)

    for step, (a, b) in enumerate(zip(in_process, other_process, strict=False)):
        assert a == b, f"step {step} {SEQUENCE[step][:2]} differs"
