"""`mockpoeti record`: a proxy that turns real traffic into a scenario file.

The "real gateway" is a second mockpoeti (seeded, with rules for errors, tool
calls and paced streams), the recorder runs as a process in front of it, the
traffic goes through the official openai SDK (and httpx for the management
API), and a third server with another seed replays the file: the SDK must see
the same answers, paced the same.
"""

from __future__ import annotations

import http.server
import itertools
import json
import random
import re
import signal
import socket
import statistics
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import openai
import pytest
import yaml
from serving import DEFAULT_KEY, Served, console_script, serve

from mockpoeti.answers.script import Pacing, Timing
from mockpoeti.base.secrets import redact
from mockpoeti.http.sse import offsets
from mockpoeti.recorder.to_scenario import Exchange, chunking, exact_regex, pacing_of, scenario_document
from mockpoeti.scripting.loader import build_match
from mockpoeti.scripting.matching import differences
from mockpoeti.scripting.view import view_of

UPSTREAM_KEY = "sk-poeti-upstream-7Hq2xV9mLp4RtZ0cWd"
STORY = "Once upon a time a small server streamed its answer one word at a time to a patient client far away."
LONG_STORY = " ".join(f"word{i}" for i in range(60))
UPSTREAM_SCENARIO = f"""
name: the-real-gateway
rules:
  - match: {{endpoint: chat, message: "Tell me a paced story"}}
    respond:
      content: "{STORY}"
      stream: {{chunk: word, first_chunk_ms: 150, interval_ms: 40}}
  - match: {{endpoint: chat, message: "Tell me a long story"}}
    respond:
      content: "{LONG_STORY}"
      stream: {{chunk: word, interval_ms: 50}}
  - match: {{endpoint: chat, message: "Count to three"}}
    respond: [{{content: "One."}}, {{content: "One, two."}}, {{content: "One, two, three."}}]
  - match: {{endpoint: chat, message: "Overloaded?"}}
    respond: {{error: service_unavailable, message: "Busy, try again in a moment.", headers: {{Retry-After: "7"}}}}
  - match: {{endpoint: chat, message: "Teapot?"}}
    respond: {{status: 418, body: {{error: {{code: teapot, message: "I am a teapot."}}}}}}
  - match: {{endpoint: chat, message: "Break midway", stream: true}}
    respond:
      content: "alpha beta gamma delta epsilon zeta"
      stream: {{chunk: word}}
      fault: {{kind: error_event, after_chunks: 3, error: upstream_error}}
  - match: {{endpoint: chat, message: "Drop midway", stream: true}}
    respond:
      content: "one two three four five six"
      stream: {{chunk: word}}
      fault: {{kind: disconnect, after_chunks: 2}}
  - match: {{endpoint: chat, message: "Stall midway", stream: true}}
    respond:
      content: "one two three four five six"
      stream: {{chunk: word}}
      fault: {{kind: stall, after_chunks: 2, duration_ms: 3000}}
  - match: {{endpoint: chat, message: "Dawdle"}}
    respond: {{latency_ms: 3000}}
  - match: {{endpoint: chat, last_role: tool}}
    respond: {{content: "Sunny, 21 degrees in Paris."}}
  - match: {{endpoint: chat, message: "weather"}}
    respond: {{tool_calls: [{{name: get_weather, arguments: {{city: Paris, unit: celsius}}}}]}}
"""
TOOLS = [{
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}, "unit": {"type": "string"}}},
    },
}]
MODEL = "gpt-4o-mini"
KEY_SHAPED = re.compile(r"sk-[A-Za-z0-9_-]{16,}")


def sdk(url: str, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=url + "/v1", api_key=key, max_retries=0)


def ask(client: openai.OpenAI, text: str, **extra) -> dict:
    """A plain chat call, as what the SDK saw."""
    try:
        r = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": text}], **extra)
    except openai.APIStatusError as e:
        return {"status": e.status_code, "error": e.body, "retry_after": e.response.headers.get("retry-after")}
    choice = r.choices[0]
    calls = [(c.id, c.function.name, c.function.arguments) for c in choice.message.tool_calls or ()]
    return {"content": choice.message.content, "tool_calls": calls, "finish_reason": choice.finish_reason,
            "usage": (r.usage.prompt_tokens, r.usage.completion_tokens)}


def ask_streamed(client: openai.OpenAI, text: str, **extra) -> tuple[dict, list[float]]:
    """A streamed chat call: what the SDK assembled, and when each content chunk arrived (s after the call)."""
    started = time.monotonic()
    pieces, times, calls, finish, usage, error = [], [], {}, None, None, None
    try:
        stream = client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": text}], stream=True, **extra
        )
        for chunk in stream:
            if chunk.usage:
                usage = (chunk.usage.prompt_tokens, chunk.usage.completion_tokens)
            for choice in chunk.choices:
                if choice.delta.content:
                    pieces.append(choice.delta.content)
                    times.append(time.monotonic() - started)
                for call in choice.delta.tool_calls or ():
                    slot = calls.setdefault(call.index, ["", "", ""])
                    slot[0] += call.id or ""
                    slot[1] += call.function.name or ""
                    slot[2] += call.function.arguments or ""
                finish = choice.finish_reason or finish
    except openai.APIError as e:
        error = e.message
    except httpx.HTTPError as e:  # the connection broke: the SDK lets httpx's error through
        error = type(e).__name__
    seen = {"pieces": pieces, "tool_calls": [tuple(c) for _, c in sorted(calls.items())], "finish_reason": finish,
            "usage": usage, "error": error}
    return seen, times


def converse(url: str, key: str) -> tuple[list, list[float]]:
    """The traffic both the recorder and the replaying server get; what the clients saw,
    and the content chunk times of the paced stream."""
    client = sdk(url, key)
    seen: list = [
        ask(client, "Hello there,\nhow are you?"),
        ask_streamed(client, "Say something, streamed", stream_options={"include_usage": True})[0],
        *(ask(client, "Count to three") for _ in range(4)),
        ask(client, "Overloaded?"),
        ask(client, "Teapot?"),
        ask_streamed(client, "Break midway")[0],
        ask_streamed(client, "What's the weather, streamed?", tools=TOOLS)[0],
        ask_streamed(client, "Drop midway")[0],
    ]
    paced, times = ask_streamed(client, "Tell me a paced story")
    seen.append(paced)
    messages = [{"role": "user", "content": "What's the weather in Paris?"}]
    first = client.chat.completions.create(model=MODEL, messages=messages, tools=TOOLS)
    call = first.choices[0].message.tool_calls[0]
    seen.append((call.id, call.function.name, call.function.arguments, first.choices[0].finish_reason))
    messages += [first.choices[0].message.model_dump(exclude_none=True),
                 {"role": "tool", "tool_call_id": call.id, "content": "21 C, sunny"}]
    second = client.chat.completions.create(model=MODEL, messages=messages, tools=TOOLS)
    seen.append((second.choices[0].message.content, second.choices[0].finish_reason, second.usage.completion_tokens))
    seen.append([m.id for m in client.models.list()])
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}) as http:
        created = http.post("/api/v1/api-keys", json={"name": "ci", "rate_limit": 60})
        seen.append((created.status_code, created.json()))
        seen.append(http.get("/api/v1/api-keys").json())
        seen.append(http.get("/api/v1/api-keys/999999").json())
    return seen, times


@dataclass
class Recorded:
    file: Path
    text: str
    seen: list
    times: list[float]
    created_key: str
    exit_code: int


@pytest.fixture(scope="module")
def upstream(tmp_path_factory) -> Served:
    scenario = tmp_path_factory.mktemp("upstream") / "gateway.yaml"
    scenario.write_text(UPSTREAM_SCENARIO, encoding="utf-8")
    with serve("--seed", "11", "--scenario", str(scenario), "--api-key", UPSTREAM_KEY) as process:
        yield process


@pytest.fixture(scope="module")
def recorded(upstream, tmp_path_factory) -> Recorded:
    out = tmp_path_factory.mktemp("recorded") / "gateway.yaml"
    with serve("--upstream", upstream.url, "--out", str(out), command="record") as recorder:
        assert "recording on http://127.0.0.1:" in recorder.ready_line and upstream.url in recorder.ready_line
        seen, times = converse(recorder.url, UPSTREAM_KEY)
        created_key = seen[-3][1]["data"]["key"]
        assert created_key.startswith("sk-poeti-") and not created_key.endswith("...")
        # the new key works through the recorder at once (the upstream knows it), and stays out of the file
        assert ask(sdk(recorder.url, created_key), "Who am I?")["finish_reason"] == "stop"
        code, _ = recorder.stop(signal.SIGTERM)
    return Recorded(out, out.read_text(encoding="utf-8"), seen, times, created_key, code)


@pytest.fixture(scope="module")
def replayed(recorded) -> tuple[list, list[float]]:
    with serve("--seed", "12345", "--scenario", str(recorded.file)) as replay:
        return converse(replay.url, DEFAULT_KEY)


def test_sigterm_writes_a_scenario_file_that_validates(recorded):
    assert recorded.exit_code == 0
    result = subprocess.run([console_script(), "validate", str(recorded.file)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stdout
    data = yaml.safe_load(recorded.text)
    assert data["version"] == 1 and data["name"] == "gateway"
    assert "Recorded from http://127.0.0.1:" in data["description"]


def test_no_full_key_lands_in_the_file(recorded):
    assert UPSTREAM_KEY not in recorded.text
    assert recorded.created_key not in recorded.text
    assert not KEY_SHAPED.findall(recorded.text)
    assert recorded.created_key[:13] + "..." in recorded.text  # the created key, cut to its prefix


def test_one_rule_per_distinct_request_and_a_sequence_for_different_answers(recorded):
    rules = yaml.safe_load(recorded.text)["rules"]
    counting = [r for r in rules if r["match"].get("message") == "/^Count to three$/"]
    assert len(counting) == 1  # four calls, one rule
    assert [r["content"] for r in counting[0]["respond"]] == ["One.", "One, two.", "One, two, three."]  # the last repeats
    weather = [r for r in rules if r["match"].get("message") == r"/^What's the weather in Paris\?$/"]
    assert [r["match"]["last_role"] for r in weather] == ["user", "tool"]
    assert weather[0]["match"]["tools"] == ["get_weather"] and weather[0]["match"]["stream"] is False
    assert weather[0]["respond"]["tool_calls"][0]["arguments"] == {"city": "Paris", "unit": "celsius"}
    hello = next(r for r in rules if r["match"].get("message") == "/^Hello there,\nhow are you\\?$/")
    assert hello["match"]["tools"] is False and hello["match"]["model"] == MODEL


def test_another_seed_replays_the_same_answers(recorded, replayed):
    seen, _ = replayed
    expected = list(recorded.seen)
    created_status, created = expected[-3]
    data = dict(created["data"])
    data["key"] = data["key_prefix"]  # replayed redacted: the prefix, never the key
    expected[-3] = (created_status, {**created, "data": data})
    assert seen == expected
    # the checks above are not vacuous: generated text differs by seed, and errors came back
    assert recorded.seen[0]["content"] and recorded.seen[6]["status"] == 503 and recorded.seen[7]["status"] == 418
    assert recorded.seen[6]["error"]["message"] == "Busy, try again in a moment." and recorded.seen[6]["retry_after"] == "7"
    assert recorded.seen[8]["pieces"] == ["alpha ", "beta ", "gamma "] and recorded.seen[8]["error"]
    assert recorded.seen[9]["tool_calls"][0][1:] == ("get_weather", '{"city": "Paris", "unit": "celsius"}')
    assert recorded.seen[10]["pieces"] == ["one ", "two "] and recorded.seen[10]["error"]
    assert recorded.seen[1]["usage"] and recorded.seen[11]["pieces"][0] == "Once "


def test_without_the_file_that_seed_answers_differently(recorded):
    """So the replay's matching answers come from the file, not from the seed."""
    with serve("--seed", "12345") as plain:
        client = sdk(plain.url, DEFAULT_KEY)
        assert ask(client, "Hello there,\nhow are you?")["content"] != recorded.seen[0]["content"]
        assert ask(client, "Count to three")["content"] != "One."


def test_replayed_pacing_is_the_recorded(recorded, replayed):
    """The upstream paces its 20 words at 150 ms, then 40 ms apart, to deadlines. What a loaded
    machine adds is always lateness, never earliness: so every lower bound is tight (5% for
    timers), and the upper bounds leave room for the machine."""
    _, replay_times = replayed
    rule = next(r for r in yaml.safe_load(recorded.text)["rules"] if r["match"].get("message") == "/^Tell me a paced story$/")
    stream = rule["respond"]["stream"]
    first_ms, gap_ms, words = stream["first_chunk_ms"], stream["interval_ms"], len(STORY.split())
    assert stream["chunk"] == "word"
    assert 150 * 0.95 <= first_ms < 150 + 500
    assert gap_ms == pytest.approx(40, rel=0.2)  # the median gap, or the mean when chunks came in bursts: both hold up

    def pacing(times: list[float]) -> tuple[float, float]:
        return times[0], statistics.median(b - a for a, b in itertools.pairwise(times))

    recorded_first, recorded_gap = pacing(recorded.times)
    replay_first, replay_gap = pacing(replay_times)
    assert len(replay_times) == len(recorded.times) == words
    assert first_ms / 1000 * 0.95 <= replay_first < recorded_first + 0.5  # the replay waits what the file says
    assert (first_ms + (words - 1) * gap_ms) / 1000 * 0.95 <= replay_times[-1] < recorded.times[-1] + 1.0
    assert replay_gap == pytest.approx(recorded_gap, rel=0.5)


def test_an_upstream_that_is_down_answers_502_and_is_not_recorded(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]  # closed again at once: nothing listens there
    out = tmp_path / "down.yaml"
    with serve("--upstream", f"http://127.0.0.1:{dead}", "--out", str(out), command="record") as recorder:
        with pytest.raises(openai.APIStatusError) as caught:
            sdk(recorder.url, UPSTREAM_KEY).chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}])
        assert caught.value.status_code == 502
        assert caught.value.body["code"] == "upstream_error" and caught.value.body["status"] == 502
        assert caught.value.response.headers["X-Trace-ID"]
        assert recorder.stop()[0] == 0
    assert not out.exists()
    assert "nothing recorded" in recorder.stderr


def test_an_upstream_slower_than_the_timeout_answers_504_and_is_not_recorded(upstream, tmp_path):
    out = tmp_path / "slow.yaml"
    with serve("--upstream", upstream.url, "--out", str(out), "--timeout", "0.5", command="record") as recorder:
        started = time.monotonic()
        with httpx.Client(base_url=recorder.url, headers={"Authorization": f"Bearer {UPSTREAM_KEY}"}, timeout=10) as http:
            slow = http.post("/v1/chat/completions", json={"model": MODEL, "messages": [{"role": "user", "content": "Dawdle"}]})
            took = time.monotonic() - started
            assert slow.status_code == 504 and slow.json()["error"]["code"] == "upstream_timeout"
            assert slow.headers["X-Trace-ID"]
            assert 0.4 < took < 2.5
            stalled = http.post("/v1/chat/completions", json={
                "model": MODEL, "stream": True, "messages": [{"role": "user", "content": "Stall midway"}]})
            assert stalled.status_code == 200  # the headers had gone out: the timeout comes as the stream's last event
            assert stalled.text.count('"content":') == 3 and '"code":"upstream_timeout"' in stalled.text  # role + 2 words
            quick = http.post("/v1/chat/completions", json={"model": MODEL, "messages": [{"role": "user", "content": "Hi"}]})
            assert quick.status_code == 200
        assert recorder.stop(signal.SIGINT)[0] == 0
    rules = yaml.safe_load(out.read_text(encoding="utf-8"))["rules"]
    assert [r["match"]["message"] for r in rules] == ["/^Hi$/"]


def test_a_client_that_hangs_up_mid_stream_stops_the_upstream_call(upstream, tmp_path):
    out = tmp_path / "hangup.yaml"
    body = {"model": MODEL, "stream": True, "messages": [{"role": "user", "content": "Tell me a long story"}]}
    with serve("--upstream", upstream.url, "--out", str(out), command="record") as recorder:
        with httpx.Client(base_url=recorder.url, headers={"Authorization": f"Bearer {UPSTREAM_KEY}"}, timeout=10) as http:
            with http.stream("POST", "/v1/chat/completions", json=body) as response:
                assert response.headers["content-type"].startswith("text/event-stream")
                trace_id = response.headers["X-Trace-ID"]
                events = 0
                for line in response.iter_lines():
                    events += line.startswith("data: ")
                    if events == 4:
                        break  # hang up: role chunk + 3 words of 60
        entry = _journal_entry(upstream, "Tell me a long story")
        assert entry["trace_id"] == trace_id  # the upstream's X-Trace-ID, passed through
        assert entry["delivery"]["interrupted"] is True
        assert entry["delivery"]["chunks_sent"] < 30  # 60 words at 50 ms: stopped well before the end
        assert recorder.stop()[0] == 0
    assert not out.exists()  # a stream cut short by its client is not what the upstream answers


class _SlowToCloseGateway(http.server.BaseHTTPRequestHandler):
    """A stream that ends with [DONE] but whose connection stays open a while after it."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Connection", "close")
        self.end_headers()
        chunk = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": MODEL,
                 "choices": [{"index": 0, "delta": {"content": "Done soon."}, "finish_reason": "stop"}]}
        self.wfile.write(b"data: " + json.dumps(chunk).encode() + b"\n\ndata: [DONE]\n\n")
        self.wfile.flush()
        time.sleep(1.5)

    def log_message(self, *args) -> None:
        pass


def test_a_stream_is_recorded_when_the_client_hangs_up_right_after_done(tmp_path):
    gateway = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _SlowToCloseGateway)
    threading.Thread(target=gateway.serve_forever, daemon=True).start()
    out = tmp_path / "done.yaml"
    try:
        with serve("--upstream", f"http://127.0.0.1:{gateway.server_port}", "--out", str(out), command="record") as recorder:
            seen, _ = ask_streamed(sdk(recorder.url, UPSTREAM_KEY), "Finish quickly")  # the SDK hangs up at [DONE]
            assert seen["pieces"] == ["Done soon."]
            assert recorder.stop()[0] == 0
    finally:
        gateway.shutdown()
        gateway.server_close()
    rule = yaml.safe_load(out.read_text(encoding="utf-8"))["rules"][0]
    assert rule["respond"]["content"] == "Done soon." and "fault" not in rule["respond"]


def _journal_entry(upstream: Served, message: str, wait_s: float = 5.0) -> dict:
    deadline = time.monotonic() + wait_s
    while True:
        entries = httpx.get(upstream.url + "/__admin/requests").json()
        entries = entries.get("requests", entries) if isinstance(entries, dict) else entries
        found = [e for e in entries if isinstance(e.get("body"), dict) and json.dumps(e["body"]).find(message) >= 0]
        if found and "delivery" in found[-1]:
            return found[-1]
        assert time.monotonic() < deadline, f"no finished journal entry for {message!r}"
        time.sleep(0.1)


def test_the_file_is_flushed_while_recording(upstream, tmp_path):
    out = tmp_path / "flushed.yaml"
    with serve("--upstream", upstream.url, "--out", str(out), "--flush-seconds", "0.3", command="record") as recorder:
        assert ask(sdk(recorder.url, UPSTREAM_KEY), "Hello before the crash")["finish_reason"] == "stop"
        deadline = time.monotonic() + 5
        while not out.exists():
            assert time.monotonic() < deadline, "not flushed within 5 s"
            time.sleep(0.05)
        recorder.stop(signal.SIGKILL)
    assert [r["match"]["message"] for r in yaml.safe_load(out.read_text(encoding="utf-8"))["rules"]] == [
        "/^Hello before the crash$/"
    ]
    assert not list(tmp_path.glob(".*.tmp"))


# --- the pure part: exchanges -> rules -------------------------------------------------


@pytest.mark.parametrize(
    ("text", "pieces", "expected"),
    [
        ("Hello, world!", ["Hell", "o", ",", " worl", "d", "!"], "token"),
        ("one two three", ["one ", "two ", "three"], "word"),
        ("abc", ["a", "b", "c"], "char"),
        ("abcdefgh", ["abc", "def", "gh"], 3),
        ("abcdefghij", ["ab", "cdefgh", "ij"], 4),  # no setting splits it so: 3 chunks of 4
    ],
)
def test_the_chunking_reproduces_the_recorded_pieces_or_their_count(text, pieces, expected):
    assert "".join(pieces) == text
    assert chunking([(text, pieces)]) == expected


def test_the_measured_pacing_is_what_a_replay_draws_again():
    kinds = ["role"] + ["content"] * 400 + ["finish"]
    deadlines = [d for d in offsets(kinds, Pacing(interval=Timing(fixed_ms=40), jitter_ms=8), random.Random(3)) if d is not None]
    interval, jitter = pacing_of((b - a) * 1000 for a, b in itertools.pairwise(deadlines[1:]))  # the first is clamped at 0
    assert interval == pytest.approx(40, rel=0.05)
    assert jitter == pytest.approx(8, rel=0.2)
    assert pacing_of([40.0] * 10) == (40.0, 0.0)
    bursts = [0.0, 0.0, 90.0] * 10  # three chunks per read, a read every 90 ms
    assert pacing_of(bursts)[0] == pytest.approx(30)  # the replay lasts as long


def test_keys_are_cut_to_their_prefix_wherever_they_are():
    secret = "sk-poeti-abcdefghijklmnopqrstuvwxyz012345"
    other = "not-shaped-like-a-key-but-seen-in-authorization-0123"
    body = {
        "data": {"key": secret, "key_prefix": "sk-poeti-abcd..."},
        "note": f"call with Bearer {other} or {secret}",
        "nested": [{"api_key": "ZXhhbXBsZS1zZWNyZXQtdmFsdWU"}],
        "shown": "sk-poeti-abcd...",
    }
    out = json.dumps(redact(body, [other]))
    for full in (secret, other, "ZXhhbXBsZS1zZWNyZXQtdmFsdWU"):
        assert full not in out
    assert redact(body, [other])["data"]["key"] == "sk-poeti-abcd..."
    assert redact(body, [other])["shown"] == "sk-poeti-abcd..."  # a prefix stays as it is


@pytest.mark.parametrize("message", ["What's 2+2? (quick)", "a.b*c [x] {y} ^$ | \\ /", "line one\nline two\ttab", ""])
def test_the_message_match_holds_for_exactly_the_recorded_message(message):
    match = build_match({"message": exact_regex(message)})

    def holds(text: str) -> bool:
        body = {"model": MODEL, "messages": [{"role": "user", "content": text}]}
        return not differences(match, view_of("chat", "POST", "/v1/chat/completions", {}, body))

    assert holds(message)
    assert not holds(message + "!") and not holds("!" + message)


def test_content_that_would_be_read_as_a_template_replays_as_the_raw_answer():
    body = {"choices": [{"index": 0, "message": {"role": "assistant", "content": "Use {{ name }} here"},
                         "finish_reason": "stop"}], "usage": {"prompt_tokens": 3, "completion_tokens": 4}}
    request = {"model": MODEL, "messages": [{"role": "user", "content": "template?"}]}
    exchange = Exchange("POST", "/v1/chat/completions", "", request, 200, {}, body=body)
    document = scenario_document([exchange], [], "https://api.example", "2025-01-01T00:00:00Z", "t", {})
    assert document["rules"][0]["respond"] == {"body": body}


def test_a_larger_body_match_goes_before_a_smaller_one_it_contains():
    def created(body: dict, key_id: int) -> Exchange:
        return Exchange("POST", "/api/v1/api-keys", "", body, 200, {}, body={"code": 200, "data": {"id": key_id}})

    between = Exchange("GET", "/v1/models", "", None, 200, {}, body={"object": "list", "data": []})
    exchanges = [created({"name": "ci"}, 1), between, created({"name": "ci", "rate_limit": 5}, 2)]
    rules = scenario_document(exchanges, [], "https://api.example", "2025-01-01T00:00:00Z", "t", {})["rules"]
    assert [r["match"].get("body") for r in rules] == [{"name": "ci", "rate_limit": 5}, {"name": "ci"}, None]
    assert [r["respond"]["body"]["data"]["id"] for r in rules[:2]] == [2, 1]


def test_a_refusal_is_recorded_as_the_refusal_fault_and_replays_plain_and_streamed():
    from mockpoeti import MockServer

    words = "I won't write that, sorry."
    request = {"model": MODEL, "messages": [{"role": "user", "content": "Write something nasty"}]}
    with MockServer() as gateway, httpx.Client(base_url=gateway.url, headers={"Authorization": f"Bearer {gateway.api_key}"}) as h:
        gateway.stub({"fault": {"kind": "refusal", "message": words}, "stream": {"chunk": "word"}})
        plain = h.post("/v1/chat/completions", json=request).json()
        streamed = h.post("/v1/chat/completions", json={**request, "stream": True}).text
    events = tuple((0.01 * i, e.removeprefix("data: ")) for i, e in enumerate(streamed.split("\n\n")) if e)
    exchanges = [
        Exchange("POST", "/v1/chat/completions", "", request, 200, {}, body=plain),
        Exchange("POST", "/v1/chat/completions", "", {**request, "stream": True}, 200, {}, events=events),
    ]
    document = scenario_document(exchanges, [], "https://api.example", "2025-01-01T00:00:00Z", "t", {})

    assert [r["respond"]["fault"] for r in document["rules"]] == [{"kind": "refusal", "message": words}] * 2
    assert document["rules"][1]["respond"]["stream"]["chunk"] == "word"
    with MockServer() as replay:
        replay.use(document)
        client = sdk(replay.url, replay.api_key)
        again = client.chat.completions.create(**request).choices[0].message
        pieces = [c.choices[0].delta.refusal for c in client.chat.completions.create(**request, stream=True)
                  if c.choices and c.choices[0].delta.refusal]
    assert (again.content, again.refusal) == (None, words)
    assert "".join(pieces) == words and len(pieces) == len(words.split())
