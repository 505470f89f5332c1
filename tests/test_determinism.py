"""Same seed, same frozen clock, same requests: byte-identical answers, ready to snapshot."""

from __future__ import annotations

import os
import re
import selectors
import subprocess
import sysconfig
import time
from contextlib import contextmanager
from pathlib import Path

import httpx

from mockpoeti import MockServer

CLOCK = "2026-04-09T14:23:18Z"
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]},
    },
}

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


@contextmanager
def serve(*args: str):
    """`mockpoeti serve --port 0 ARGS` in its own process; yields (url, key) once it prints them."""
    command = [str(Path(sysconfig.get_path("scripts")) / "mockpoeti"), "serve", "--port", "0", *args]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}  # the ready line must be flushed by itself
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0, env=env)
    try:
        match, deadline = None, time.monotonic() + 10
        with selectors.DefaultSelector() as selector:
            selector.register(proc.stdout, selectors.EVENT_READ)
            while match is None and selector.select(max(0.0, deadline - time.monotonic())):
                line = proc.stdout.readline().decode()  # unbuffered: select sees every line
                if not line:
                    break  # exited before it was ready
                match = re.search(r"(http://127\.0\.0\.1:\d+) \(API key: (\S+)\)", line)
        assert match, "mockpoeti serve never printed its URL"
        yield match.groups()
    finally:
        proc.terminate()
        proc.communicate(timeout=10)


def test_another_process_with_the_same_seed_answers_the_same_bytes():
    """Nothing may depend on per-process randomness such as Python's salted hash()."""
    in_process = replay_on(seed=7, clock=CLOCK)
    with serve("--seed", "7", "--clock", CLOCK) as (url, key):
        other_process = replay(url, key)

    for step, (a, b) in enumerate(zip(in_process, other_process, strict=False)):
        assert a == b, f"step {step} {SEQUENCE[step][:2]} differs"
