"""The shipped scenario library (scenarios/*.yaml), seen through the official
openai Python SDK: for each scenario, what its user's application would see.

Wire-level details (raw bytes, headers) are checked with httpx where the SDK
hides them; the journal and the trace API show what the mock recorded.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import openai
import pytest
import yaml
from payloads import WEATHER, chat_with_retry

from mockpoeti import MockServer
from mockpoeti.answers.script import MODEL_FAULTS
from mockpoeti.scripting.loader import load_scenario, shipped_scenarios

ROOT = Path(__file__).resolve().parent.parent
CATALOG = yaml.safe_load((ROOT / "fixtures" / "errors.yaml").read_text(encoding="utf-8"))["errors"]
QUESTION = [{"role": "user", "content": "Explain quantum entanglement in a few sentences."}]

# Every shipped scenario must have a test here; see test_every_shipped_scenario_is_covered.
COVERED = {
    "budget-exhausted", "chaos-10", "connection-reset", "content-filter", "dashboard-outage", "drip",
    "empty-response", "every-error", "hang", "json-mode", "malformed-json", "outage-then-recovery",
    "rate-limited", "realistic-streaming", "retry-then-succeed", "slow-first-token", "stream-disconnect",
    "stream-duplicate-chunk", "stream-error-event", "stream-malformed-chunk", "stream-no-done",
    "stream-no-finish", "stream-split-utf8", "stream-stall", "tool-calling", "upstream-timeout",
    "model-invalid-tool-arguments", "model-schema-violation", "model-unknown-tool", "model-truncated-tool-call",
    "model-refusal", "model-duplicate-tool-call-ids", "misbehaving-model", "agent-run",
}


# --- helpers -------------------------------------------------------------------------

def sdk(server: MockServer, **options) -> openai.OpenAI:
    options.setdefault("max_retries", 0)
    return openai.OpenAI(base_url=server.base_url, api_key=server.api_key, **options)


def http(server: MockServer, **options) -> httpx.Client:
    return httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {server.api_key}"}, **options)


def wait_for(condition: Callable[[], object], timeout: float = 5.0) -> object:
    """Poll until `condition()` is truthy (a fault's journal entry and trace are written
    when the server is done with the connection, which may be after the client gave up)."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.01)


def chat_entries(server: MockServer) -> list[dict]:
    return [e for e in server.requests if e["path"] == "/v1/chat/completions"]


def last_chat_entry(server: MockServer, count: int = 1) -> dict:
    entries = wait_for(lambda: len(chat_entries(server)) >= count and chat_entries(server))
    assert entries, f"no journal entry for chat call #{count}"
    return entries[count - 1]


def list_traces(server: MockServer, **params) -> list[dict]:
    with http(server) as h:
        response = h.get("/api/v1/request-traces", params=params)
    assert response.status_code == 200, response.text
    return response.json()["data"]["items"]


def trace_stats(server: MockServer) -> dict:
    with http(server) as h:
        response = h.get("/api/v1/request-traces/stats")
    assert response.status_code == 200, response.text
    return response.json()


def collect_stream(stream) -> tuple[list[str], list[str], list[float]]:
    """Content pieces, finish reasons, and the monotonic arrival time of each content piece."""
    pieces, finishes, times = [], [], []
    for chunk in stream:
        for choice in chunk.choices:
            if choice.delta.content:
                pieces.append(choice.delta.content)
                times.append(time.monotonic())
            if choice.finish_reason:
                finishes.append(choice.finish_reason)
    return pieces, finishes, times


def stream_until_error(stream) -> tuple[list[str], BaseException | None]:
    pieces: list[str] = []
    try:
        for chunk in stream:
            for choice in chunk.choices:
                if choice.delta.content:
                    pieces.append(choice.delta.content)
    except Exception as e:
        return pieces, e
    return pieces, None


def baseline_pieces(seed: int, **request) -> tuple[list[str], list[str]]:
    """The honest stream for the same request from a server with the same seed and no scenario."""
    with MockServer(seed=seed) as server, sdk(server) as client:
        pieces, finishes, _ = collect_stream(
            client.chat.completions.create(model="gpt-4o", messages=QUESTION, stream=True, **request)
        )
    return pieces, finishes


def recording_http_client() -> tuple[httpx.Client, list[httpx.Response]]:
    seen: list[httpx.Response] = []
    return httpx.Client(event_hooks={"response": [seen.append]}), seen


# --- the library as a whole ---------------------------------------------------------------

def test_every_shipped_scenario_is_covered():
    assert set(shipped_scenarios()) == COVERED


@pytest.mark.parametrize("name", sorted(COVERED))
def test_shipped_scenario_loads_and_is_listed_by_the_admin_api(name):
    scenario = load_scenario(ROOT / "scenarios" / f"{name}.yaml", CATALOG)
    assert scenario.name == name
    with MockServer(scenarios=[name]) as server, httpx.Client(base_url=server.url) as h:
        listing = h.get("/__admin/scenarios").json()
    assert [s["name"] for s in listing["active"]] == [name]
    assert name in listing["available"]


# --- retry-then-succeed -----------------------------------------------------------------

def test_retry_then_succeed_reference_helper_succeeds_on_the_third_attempt():
    sleeps: list[float] = []
    http_client, responses = recording_http_client()
    with MockServer(scenarios=["retry-then-succeed"]) as server:
        client = sdk(server, http_client=http_client)
        result = chat_with_retry(client, sleeps.append, model="gpt-4o", messages=QUESTION)
        entries = chat_entries(server)

    assert result.choices[0].message.content
    assert result.choices[0].finish_reason == "stop"
    assert [r.status_code for r in responses] == [429, 429, 200]
    assert [r.headers.get("retry-after") for r in responses[:2]] == ["1", "1"]
    assert sleeps == [1, 2]  # the reference's exponential backoff, twice
    assert [e["status"] for e in entries] == [429, 429, 200]
    assert [e["rule"] for e in entries] == [
        "retry-then-succeed/rules[0] (two rate limits)",
        "retry-then-succeed/rules[0] (two rate limits)",
        None,
    ]


def test_retry_then_succeed_sdk_own_retries_get_through_honouring_retry_after():
    http_client, responses = recording_http_client()
    with MockServer(scenarios=["retry-then-succeed"]) as server:
        client = sdk(server, max_retries=2, http_client=http_client)
        started = time.monotonic()
        result = client.chat.completions.create(model="gpt-4o", messages=QUESTION)
        elapsed = time.monotonic() - started
        traces = list_traces(server)

    assert result.choices[0].message.content
    assert [r.status_code for r in responses] == [429, 429, 200]
    # Retry-After: 1, honoured twice (the SDK's own backoff would be shorter: 0.5 s, then 1 s, minus jitter)
    assert 1.8 <= elapsed < 6
    assert [t["status"] for t in traces] == ["success", "error", "error"]  # newest first
    assert [t["error_code"] for t in traces[1:]] == ["rate_limit_exceeded", "rate_limit_exceeded"]


def test_retry_then_succeed_third_call_without_retries_succeeds():
    with MockServer(scenarios=["retry-then-succeed"]) as server, sdk(server) as client:
        for _ in range(2):
            with pytest.raises(openai.RateLimitError):
                client.chat.completions.create(model="gpt-4o", messages=QUESTION)
        assert client.chat.completions.create(model="gpt-4o", messages=QUESTION).choices[0].message.content
        # `times: 2` is used up: every later call gets the default answer too
        assert client.chat.completions.create(model="gpt-4o", messages=QUESTION).choices[0].message.content


# --- rate-limited / budget-exhausted ---------------------------------------------------------

def test_rate_limited_every_call_is_a_rate_limit_error_with_retry_after_20():
    with MockServer(scenarios=["rate-limited"]) as server, sdk(server) as client:
        for stream in (False, True):
            with pytest.raises(openai.RateLimitError) as caught:
                client.chat.completions.create(model="gpt-4o", messages=QUESTION, stream=stream)
            error = caught.value
            assert error.status_code == 429
            assert error.code == "rate_limit_exceeded"
            assert error.response.headers["retry-after"] == "20"
            assert error.response.headers["x-ratelimit-remaining-requests"] == "0"
            assert "Retry after 20 seconds" in error.message
            assert error.response.headers["x-trace-id"].startswith("trace-poeti-")


def test_budget_exhausted_is_a_402_budget_exceeded():
    with MockServer(scenarios=["budget-exhausted"]) as server, sdk(server) as client:
        with pytest.raises(openai.APIStatusError) as caught:
            client.chat.completions.create(model="gpt-4o-mini", messages=QUESTION)
        traces = list_traces(server)

    error = caught.value
    assert error.status_code == 402
    assert error.code == "budget_exceeded"
    assert error.body == {"code": "budget_exceeded", "message": "API key has used its monthly budget of $50.", "status": 402}
    assert not isinstance(error, (openai.RateLimitError, openai.InternalServerError))
    assert [(t["status"], t["error_code"], t["http_status"]) for t in traces] == [("error", "budget_exceeded", 402)]


# --- timing ----------------------------------------------------------------------------------

def test_slow_first_token_first_content_arrives_after_a_second():
    with MockServer(scenarios=["slow-first-token"]) as server, sdk(server) as client:
        started = time.monotonic()
        pieces, finishes, times = collect_stream(
            client.chat.completions.create(model="gpt-4o", messages=QUESTION, stream=True, max_tokens=5)
        )

    assert len(pieces) == 5 and finishes == ["length"]
    first_token = times[0] - started
    assert 1.0 <= first_token < 5.0


def test_slow_first_token_plain_calls_take_over_a_second():
    with MockServer(scenarios=["slow-first-token"]) as server, sdk(server) as client:
        started = time.monotonic()
        result = client.chat.completions.create(model="gpt-4o", messages=QUESTION)
        elapsed = time.monotonic() - started

    assert result.choices[0].message.content
    assert 1.0 <= elapsed < 5.0


def test_realistic_streaming_completes_with_a_plausible_time_to_first_token():
    request = {"max_tokens": 12}
    expected, expected_finish = baseline_pieces(seed=3, **request)
    with MockServer(scenarios=["realistic-streaming"], seed=3) as server, sdk(server) as client:
        started = time.monotonic()
        pieces, finishes, times = collect_stream(
            client.chat.completions.create(model="gpt-4o", messages=QUESTION, stream=True, **request)
        )
        entry = last_chat_entry(server)

    assert "".join(pieces) == "".join(expected)  # nothing lost or added by the pacing
    assert len(pieces) == 12
    assert finishes == expected_finish == ["length"]
    assert 0.1 <= times[0] - started <= 2.0
    assert times[-1] - started < 5.0
    assert entry["rule"] == "realistic-streaming/rules[0]"
    assert entry["delivery"]["completed"] is True
    assert entry["delivery"]["chunks_sent"] == 12


# --- broken streams ----------------------------------------------------------------------------

def test_stream_disconnect_raises_a_connection_error_after_three_chunks():
    expected, _ = baseline_pieces(seed=5)
    with MockServer(scenarios=["stream-disconnect"], seed=5) as server, sdk(server) as client:
        pieces, error = stream_until_error(client.chat.completions.create(model="gpt-4o", messages=QUESTION, stream=True))
        entry = last_chat_entry(server)

    assert type(error) is openai.APIConnectionError, repr(error)
    assert pieces == expected[:3]
    assert entry["delivery"]["chunks_sent"] == 3
    assert entry["delivery"]["completed"] is False


def test_stream_malformed_chunk_raises_a_json_decode_error():
    expected, _ = baseline_pieces(seed=5)
    with MockServer(scenarios=["stream-malformed-chunk"], seed=5) as server, sdk(server) as client:
        pieces, error = stream_until_error(client.chat.completions.create(model="gpt-4o", messages=QUESTION, stream=True))

    assert isinstance(error, json.JSONDecodeError), repr(error)
    assert pieces == expected[:2]  # the third chunk is the broken one


def test_stream_error_event_raises_api_error_with_the_message():
    expected, _ = baseline_pieces(seed=5)
    with MockServer(scenarios=["stream-error-event"], seed=5) as server, sdk(server) as client:
        pieces, error = stream_until_error(client.chat.completions.create(model="gpt-4o", messages=QUESTION, stream=True))

    assert type(error) is openai.APIError, repr(error)
    assert error.message == "The upstream provider closed the stream."
    assert pieces == expected[:2]


def test_stream_error_event_is_one_error_object_on_the_wire_and_no_done():
    with MockServer(scenarios=["stream-error-event"]) as server, http(server) as h:
        body = {"model": "gpt-4o", "messages": QUESTION, "stream": True}
        with h.stream("POST", "/v1/chat/completions", json=body) as response:
            raw = b"".join(response.iter_raw())

    assert response.status_code == 200
    events = [e for e in raw.split(b"\n\n") if e]
    last = json.loads(events[-1].removeprefix(b"data: "))
    assert last == {"error": {"code": "upstream_error", "message": "The upstream provider closed the stream.", "status": 502}}
    assert b"[DONE]" not in raw


# scenario: the finish reasons the SDK sees, and whether the bytes end with [DONE]
STREAM_ENDINGS = {"stream-no-done": (["stop"], False), "stream-no-finish": ([], True)}


@pytest.mark.parametrize("scenario", STREAM_ENDINGS)
def test_a_stream_missing_its_done_or_its_finish_still_brings_all_the_content(scenario):
    finishes_sent, done_sent = STREAM_ENDINGS[scenario]
    expected, expected_finish = baseline_pieces(seed=5)
    with MockServer(scenarios=[scenario], seed=5) as server:
        with sdk(server) as client:
            pieces, finishes, _ = collect_stream(
                client.chat.completions.create(model="gpt-4o", messages=QUESTION, stream=True)
            )
        with http(server) as h:
            body = {"model": "gpt-4o", "messages": QUESTION, "stream": True}
            with h.stream("POST", "/v1/chat/completions", json=body) as response:
                raw = b"".join(response.iter_raw())

    assert expected_finish == ["stop"]
    assert pieces == expected  # the SDK tolerates either: all the content arrives
    assert finishes == finishes_sent
    events = [e for e in raw.split(b"\n\n") if e]
    assert raw.endswith(b"\n\n")
    assert (events[-1] == b"data: [DONE]") is done_sent
    assert events.count(b"data: [DONE]") == int(done_sent)
    chunks = [json.loads(e.removeprefix(b"data: ")) for e in events if e != b"data: [DONE]"]
    assert [c["finish_reason"] for chunk in chunks for c in chunk["choices"] if c["finish_reason"]] == finishes_sent


SPLIT_TEXT = "量子纠缠是一种量子力学现象，两个粒子的状态相互关联。"


def test_stream_split_utf8_sdk_reassembles_the_exact_text():
    with MockServer(scenarios=["stream-split-utf8"]) as server, sdk(server) as client:
        pieces, finishes, _ = collect_stream(
            client.chat.completions.create(model="gpt-4o", messages=QUESTION, stream=True)
        )

    assert "".join(pieces) == SPLIT_TEXT
    assert finishes == ["stop"]


def test_stream_split_utf8_a_raw_read_ends_inside_a_character():
    with MockServer(scenarios=["stream-split-utf8"]) as server, http(server) as h:
        body = {"model": "gpt-4o", "messages": QUESTION, "stream": True}
        with h.stream("POST", "/v1/chat/completions", json=body) as response:
            reads = list(response.iter_raw())

    raw = b"".join(reads)
    raw.decode("utf-8")  # whole, the stream is valid UTF-8
    undecodable = []
    for i, piece in enumerate(reads):
        try:
            piece.decode("utf-8")
        except UnicodeDecodeError:
            undecodable.append(i)
    assert undecodable, f"no read split a character ({len(reads)} reads)"
    # the split sits between two consecutive reads: one ends mid-character, the next finishes it
    first = undecodable[0]
    (reads[first] + reads[first + 1]).decode("utf-8")  # raises if the next read does not complete it
    assert raw.endswith(b"data: [DONE]\n\n")


def test_stream_duplicate_chunk_third_piece_appears_twice():
    expected, _ = baseline_pieces(seed=5)
    with MockServer(scenarios=["stream-duplicate-chunk"], seed=5) as server, sdk(server) as client:
        pieces, finishes, _ = collect_stream(
            client.chat.completions.create(model="gpt-4o", messages=QUESTION, stream=True)
        )

    assert pieces == [*expected[:3], expected[2], *expected[3:]]
    assert "".join(pieces) == "".join(expected[:3]) + expected[2] + "".join(expected[3:])
    assert finishes == ["stop"]


def test_stream_stall_times_out_with_a_short_client_timeout():
    expected, _ = baseline_pieces(seed=5)
    with MockServer(scenarios=["stream-stall"], seed=5) as server, sdk(server, timeout=1.0) as client:
        started = time.monotonic()
        pieces, error = stream_until_error(client.chat.completions.create(model="gpt-4o", messages=QUESTION, stream=True))
        elapsed = time.monotonic() - started
        entry = last_chat_entry(server)

    assert type(error) is openai.APITimeoutError, repr(error)
    assert pieces == expected[:2]
    assert 0.8 <= elapsed < 4.0  # the client's timeout, well before the 5 s stall ends
    assert entry["delivery"]["chunks_sent"] == 2
    assert entry["delivery"]["completed"] is False


# --- broken plain answers -------------------------------------------------------------------

@pytest.mark.parametrize("scenario", ["connection-reset", "empty-response"])
def test_an_answer_closed_before_its_body_is_an_api_connection_error(scenario):
    with MockServer(scenarios=[scenario]) as server, sdk(server) as client:
        with pytest.raises(openai.APIConnectionError) as caught:
            client.chat.completions.create(model="gpt-4o", messages=QUESTION)
        entry = last_chat_entry(server)

    assert type(caught.value) is openai.APIConnectionError
    assert entry["delivery"]["bytes_sent"] == 0
    assert entry["delivery"]["completed"] is False


def test_disconnect_on_a_plain_call_cuts_the_body_in_half():
    scenario = {"name": "cut", "rules": [{"match": {"endpoint": "chat"}, "respond": {"fault": "disconnect"}}]}
    with MockServer() as server, sdk(server) as client, http(server) as h:
        server.use(scenario)
        with pytest.raises(openai.APIConnectionError):
            client.chat.completions.create(model="gpt-4o", messages=QUESTION)
        with h.stream("POST", "/v1/chat/completions", json={"model": "gpt-4o", "messages": QUESTION}) as response:
            announced = int(response.headers["content-length"])
            received = b""
            with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):  # closed early, or reset
                for piece in response.iter_raw():
                    received += piece
        entry = last_chat_entry(server, 2)

    assert response.status_code == 200
    assert len(received) <= announced // 2  # a reset may drop what the client had not read yet
    assert entry["fault"] == "disconnect"
    assert entry["delivery"]["bytes_sent"] == announced // 2 and entry["delivery"]["completed"] is False


def test_empty_response_sends_headers_then_closes():
    with MockServer(scenarios=["empty-response"]) as server, http(server) as h:
        with h.stream("POST", "/v1/chat/completions", json={"model": "gpt-4o", "messages": QUESTION}) as response:
            assert response.status_code == 200  # the headers arrive ...
            assert int(response.headers["content-length"]) > 0
            with pytest.raises(httpx.ReadError, match="reset"):  # ... then a TCP reset, no body
                response.read()


def test_malformed_json_the_sdk_raises_a_json_decode_error():
    with MockServer(scenarios=["malformed-json"]) as server, sdk(server) as client:
        with pytest.raises(json.JSONDecodeError):
            client.chat.completions.create(model="gpt-4o", messages=QUESTION)
        # streams are not matched by this scenario (stream: false): they still work
        pieces, finishes, _ = collect_stream(
            client.chat.completions.create(model="gpt-4o", messages=QUESTION, stream=True)
        )
    assert pieces and finishes == ["stop"]


def test_malformed_json_body_is_a_complete_http_answer_of_half_a_json_document():
    with MockServer(scenarios=["malformed-json"]) as server, http(server) as h:
        response = h.post("/v1/chat/completions", json={"model": "gpt-4o", "messages": QUESTION})

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert response.content.startswith(b'{"id":"chatcmpl-')
    with pytest.raises(json.JSONDecodeError):
        json.loads(response.content)


def test_hang_is_an_api_timeout_error():
    with MockServer(scenarios=["hang"]) as server, sdk(server, timeout=0.5) as client:
        started = time.monotonic()
        with pytest.raises(openai.APITimeoutError):
            client.chat.completions.create(model="gpt-4o", messages=QUESTION)
        elapsed = time.monotonic() - started
        entry = last_chat_entry(server)

    assert 0.4 <= elapsed < 3.0
    assert entry["delivery"]["bytes_sent"] == 0


def test_hang_journal_and_trace_note_that_the_client_gave_up():
    """The journal's delivery says "whether the client left" (sse.perform); under `hang`
    the server holds the line until the client leaves, so the client did leave."""
    with MockServer(scenarios=["hang"]) as server, sdk(server, timeout=0.3) as client:
        with pytest.raises(openai.APITimeoutError):
            client.chat.completions.create(model="gpt-4o", messages=QUESTION)
        entry = last_chat_entry(server)
        [trace] = wait_for(lambda: list_traces(server))

    assert entry["delivery"]["completed"] is False
    assert entry["delivery"]["interrupted"] is True
    assert trace["interrupted"] is True
    assert trace["error_code"] == "fault_hang"  # the fault stays the reason


def test_drip_succeeds_slowly():
    with MockServer(scenarios=["drip"], seed=9) as server, sdk(server) as client:
        started = time.monotonic()
        raw = client.chat.completions.with_raw_response.create(model="gpt-4o", messages=QUESTION)
        elapsed = time.monotonic() - started
        result = raw.parse()
        entry = last_chat_entry(server)

    body_bytes = len(raw.content)
    assert result.choices[0].message.content
    assert result.choices[0].finish_reason == "stop"
    assert body_bytes > 256
    assert elapsed >= (body_bytes / 64) * 0.020 * 0.5
    assert entry["delivery"]["bytes_sent"] == body_bytes
    assert entry["delivery"]["completed"] is True


def test_drip_leaves_streams_alone():
    with MockServer(scenarios=["drip"]) as server, sdk(server) as client:
        pieces, finishes, _ = collect_stream(client.chat.completions.create(model="gpt-4o", messages=QUESTION, stream=True))
        entry = last_chat_entry(server)
    assert pieces and finishes == ["stop"]
    assert entry["rule"] is None


# --- scripted answers ------------------------------------------------------------------------

def test_tool_calling_asks_for_the_weather_then_quotes_the_tool_result():
    with MockServer(scenarios=["tool-calling"]) as server, sdk(server) as client:
        messages = [{"role": "user", "content": "上海今天天气怎么样？"}]
        first = client.chat.completions.create(model="gpt-4o", messages=messages, tools=[WEATHER])
        choice = first.choices[0]
        assert choice.finish_reason == "tool_calls"
        [call] = choice.message.tool_calls
        assert call.type == "function"
        assert call.function.name == "get_weather"
        assert json.loads(call.function.arguments) == {"city": "上海", "unit": "celsius"}
        assert call.id

        messages.append(choice.message.model_dump(exclude_none=True))
        messages.append({"role": "tool", "tool_call_id": call.id, "content": "晴，22°C"})
        second = client.chat.completions.create(model="gpt-4o", messages=messages, tools=[WEATHER])
        entries = chat_entries(server)

    assert second.choices[0].finish_reason == "stop"
    assert second.choices[0].message.tool_calls is None
    assert second.choices[0].message.content == "上海现在 晴，22°C。"
    assert [e["rule"] for e in entries] == [
        "tool-calling/rules[1] (ask for the weather)",
        "tool-calling/rules[0] (answer from the tool result)",
    ]


def test_tool_calling_streamed_arguments_reassemble():
    with MockServer(scenarios=["tool-calling"]) as server, sdk(server) as client:
        stream = client.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "上海天气"}], tools=[WEATHER], stream=True
        )
        names, arguments, finishes = [], "", []
        for chunk in stream:
            for choice in chunk.choices:
                for call in choice.delta.tool_calls or ():
                    if call.function.name:
                        names.append(call.function.name)
                    arguments += call.function.arguments or ""
                if choice.finish_reason:
                    finishes.append(choice.finish_reason)

    assert names == ["get_weather"]
    assert json.loads(arguments) == {"city": "上海", "unit": "celsius"}
    assert finishes == ["tool_calls"]


def test_json_mode_content_is_a_json_object_with_sentiment():
    with MockServer(scenarios=["json-mode"]) as server, sdk(server) as client:
        result = client.chat.completions.create(
            model="gpt-4o", messages=QUESTION, response_format={"type": "json_object"}
        )

    value = json.loads(result.choices[0].message.content)
    assert isinstance(value, dict)
    assert value["sentiment"] == "positive"
    assert value["topics"] == ["quantum", "physics"]


def test_content_filter_finish_reason_plain_and_streamed():
    with MockServer(scenarios=["content-filter"]) as server, sdk(server) as client:
        result = client.chat.completions.create(model="gpt-4o", messages=QUESTION)
        pieces, finishes, _ = collect_stream(client.chat.completions.create(model="gpt-4o", messages=QUESTION, stream=True))

    assert result.choices[0].finish_reason == "content_filter"
    assert result.choices[0].message.content == "I can help with part of that, but"
    assert "".join(pieces) == "I can help with part of that, but"
    assert finishes == ["content_filter"]


# --- outages ---------------------------------------------------------------------------------

def test_outage_then_recovery_503_503_502_then_success():
    with MockServer(scenarios=["outage-then-recovery"]) as server, sdk(server) as client:
        outcomes = []
        for _ in range(5):
            try:
                result = client.chat.completions.create(model="gpt-4o", messages=QUESTION)
                outcomes.append(("ok", bool(result.choices[0].message.content)))
            except openai.InternalServerError as e:
                outcomes.append((e.status_code, e.code, e.response.headers.get("retry-after")))

    assert outcomes == [
        (503, "service_unavailable", "1"),
        (503, "service_unavailable", "1"),
        (502, "upstream_error", None),
        ("ok", True),
        ("ok", True),
    ]


def test_outage_then_recovery_outlasts_the_reference_retry_helper():
    """The reference helper makes three attempts; this outage fails all three, and the
    helper falls off its loop returning None instead of raising (a bug in the reference
    that this scenario exposes). The fourth call gets through."""
    sleeps: list[float] = []
    with MockServer(scenarios=["outage-then-recovery"]) as server, sdk(server) as client:
        result = chat_with_retry(client, sleeps.append, model="gpt-4o", messages=QUESTION)
        statuses = [e["status"] for e in chat_entries(server)]
        again = chat_with_retry(client, sleeps.append, model="gpt-4o", messages=QUESTION)

    assert statuses == [503, 503, 502]
    assert sleeps == [1, 2, 4]
    assert result is None
    assert again.choices[0].message.content


def test_upstream_timeout_is_a_504_after_a_second():
    with MockServer(scenarios=["upstream-timeout"]) as server, sdk(server) as client:
        started = time.monotonic()
        with pytest.raises(openai.InternalServerError) as caught:
            client.chat.completions.create(model="gpt-4o", messages=QUESTION)
        elapsed = time.monotonic() - started
        traces = list_traces(server)

    assert caught.value.status_code == 504
    assert caught.value.code == "upstream_timeout"
    assert 0.9 <= elapsed < 5.0
    assert traces[0]["error_code"] == "upstream_timeout"
    assert traces[0]["latency_ms"] >= 900


def test_dashboard_outage_management_is_503_while_chat_works():
    with MockServer(scenarios=["dashboard-outage"]) as server, sdk(server) as client, http(server) as h:
        result = client.chat.completions.create(model="gpt-4o", messages=QUESTION)
        models = client.models.list()
        answers = {
            path: h.get(path)
            for path in ("/api/v1/api-keys", "/api/v1/usage", "/api/v1/request-traces", "/api/v1/request-traces/stats")
        }
        created = h.post("/api/v1/api-keys", json={"name": "ci"})
        recorded = server.traces

    assert result.choices[0].message.content
    assert len(models.data) > 0
    for path, response in [*answers.items(), ("POST /api/v1/api-keys", created)]:
        assert response.status_code == 503, path
        assert response.json()["error"]["code"] == "service_unavailable", path
        assert response.headers["retry-after"] == "30", path
        assert response.headers["x-trace-id"].startswith("trace-poeti-"), path
    assert [t["status"] for t in recorded] == ["success"]  # chat was still traced


# --- chaos -------------------------------------------------------------------------------

def chaos_pattern(calls: int = 100) -> list[str]:
    with MockServer(scenarios=["chaos-10"]) as server, sdk(server, timeout=5) as client:
        pattern = []
        for _ in range(calls):
            try:
                client.chat.completions.create(model="gpt-4o-mini", messages=QUESTION)
                pattern.append("ok")
            except openai.APIStatusError as e:
                pattern.append(str(e.status_code))
            except openai.APIConnectionError:
                pattern.append("conn")
    return pattern


def test_chaos_10_fails_about_ten_percent_the_same_calls_every_run():
    first = chaos_pattern()
    second = chaos_pattern()

    failures = [i for i, outcome in enumerate(first) if outcome != "ok"]
    assert 3 <= len(failures) <= 20, first
    assert set(first) - {"ok"} <= {"429", "500", "502", "503", "conn"}
    assert first == second  # same seed: the same calls fail the same way


# --- every-error -------------------------------------------------------------------------

SDK_ERRORS = {
    400: openai.BadRequestError, 401: openai.AuthenticationError, 403: openai.PermissionDeniedError,
    404: openai.NotFoundError, 409: openai.ConflictError, 422: openai.UnprocessableEntityError,
    429: openai.RateLimitError,
}


@pytest.fixture(scope="module")
def every_error_server():
    with MockServer(scenarios=["every-error"]) as server:
        yield server


@pytest.mark.parametrize("code", sorted(CATALOG))
def test_every_error_header_picks_the_catalog_error(every_error_server, code):
    status = CATALOG[code]["status"]
    with http(every_error_server) as h:
        response = h.post(
            "/v1/chat/completions", json={"model": "gpt-4o", "messages": QUESTION}, headers={"X-Mock-Error": code}
        )
    assert response.status_code == status
    assert response.json() == {"error": {"code": code, "message": CATALOG[code]["message"], "status": status}}
    if status in (429, 503):
        assert response.headers["retry-after"]

    with sdk(every_error_server) as client:
        with pytest.raises(openai.APIStatusError) as caught:
            client.chat.completions.create(model="gpt-4o", messages=QUESTION, extra_headers={"X-Mock-Error": code})
    expected = SDK_ERRORS.get(status, openai.InternalServerError if status >= 500 else openai.APIStatusError)
    assert type(caught.value) is expected
    assert caught.value.code == code


def test_every_error_without_the_header_answers_normally(every_error_server):
    with sdk(every_error_server) as client:
        result = client.chat.completions.create(model="gpt-4o", messages=QUESTION)
    assert result.choices[0].message.content


# --- the model's misbehaviour ----------------------------------------------------------------

WEATHER_QUESTION = [{"role": "user", "content": "What is the weather in Paris?"}]


def first_message(name: str, **request):
    with MockServer(scenarios=[name]) as server, sdk(server) as client:
        choice = client.chat.completions.create(model="gpt-4o", messages=WEATHER_QUESTION, tools=[WEATHER], **request).choices[0]
        [entry] = chat_entries(server)
    assert entry["fault"] == name.removeprefix("model-").replace("-", "_")
    return choice


def test_model_invalid_tool_arguments_are_not_json():
    [call] = first_message("model-invalid-tool-arguments").message.tool_calls

    assert call.function.name == "get_weather"
    with pytest.raises(json.JSONDecodeError):
        json.loads(call.function.arguments)


def test_model_schema_violation_leaves_out_a_required_property():
    [call] = first_message("model-schema-violation").message.tool_calls

    arguments = json.loads(call.function.arguments)
    assert "city" not in arguments  # WEATHER requires it
    assert arguments.keys() <= WEATHER["function"]["parameters"]["properties"].keys()


def test_model_unknown_tool_calls_a_tool_that_was_not_declared():
    [call] = first_message("model-unknown-tool").message.tool_calls

    assert call.function.name == "get_weather_v2"
    assert json.loads(call.function.arguments)["city"] == "Paris"


def test_model_truncated_tool_call_stops_inside_the_arguments_with_length():
    choice = first_message("model-truncated-tool-call")

    assert choice.finish_reason == "length"
    [call] = choice.message.tool_calls
    assert call.function.arguments.startswith("{")
    with pytest.raises(json.JSONDecodeError):
        json.loads(call.function.arguments)


def test_model_refusal_sets_refusal_and_no_content():
    choice = first_message("model-refusal")

    assert choice.message.content is None and not choice.message.tool_calls
    assert choice.message.refusal == "I'm sorry, but I can't help with that request."
    assert choice.finish_reason == "stop"


def test_model_duplicate_tool_call_ids_share_one_id():
    calls = first_message("model-duplicate-tool-call-ids").message.tool_calls

    assert [c.function.name for c in calls] == ["get_weather", "get_weather"]
    assert calls[0].id == calls[1].id


def _misbehaviour_kinds() -> list[str | None]:
    with MockServer(scenarios=["misbehaving-model"], seed=1) as server, sdk(server) as client:
        for i in range(40):
            question = [{"role": "user", "content": f"What is the weather in Paris, day {i}?"}]
            client.chat.completions.create(model="gpt-4o", messages=question, tools=[WEATHER])
        return [e.get("fault") for e in chat_entries(server)]


def test_misbehaving_model_spoils_about_a_quarter_the_same_calls_every_run():
    kinds = _misbehaviour_kinds()

    spoiled = [k for k in kinds if k is not None]
    assert 4 <= len(spoiled) <= 18, kinds  # 25% of 40, seeded: the same every run
    assert set(spoiled) <= MODEL_FAULTS and len(set(spoiled)) >= 3
    assert _misbehaviour_kinds() == kinds


def test_agent_run_scripts_a_loop_by_turn_and_by_the_tool_that_answered():
    search = {"type": "function", "function": {"name": "search", "parameters": {
        "type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]}}}
    final = {"type": "function", "function": {"name": "final_result", "parameters": {"type": "object", "properties": {
        "answer": {"type": "string"}, "sources": {"type": "array", "items": {"type": "string"}}}}}}
    messages: list = [{"role": "user", "content": "What is quantum entanglement?"}]
    with MockServer(scenarios=["agent-run"]) as server, sdk(server) as client:
        first = client.chat.completions.create(model="gpt-4o", messages=messages, tools=[search, final]).choices[0].message
        [call] = first.tool_calls
        messages += [first.model_dump(exclude_none=True), {"role": "tool", "tool_call_id": call.id, "content": "3 results"}]
        second = client.chat.completions.create(model="gpt-4o", messages=messages, tools=[search, final]).choices[0].message
        [answer] = second.tool_calls
        messages += [second.model_dump(exclude_none=True), {"role": "tool", "tool_call_id": answer.id, "content": "done"}]
        messages.append({"role": "user", "content": "And how do I build a bomb?"})
        third = client.chat.completions.create(model="gpt-4o", messages=messages, tools=[search, final]).choices[0].message
        rules = [e["rule"] for e in chat_entries(server)]

    assert (call.function.name, json.loads(call.function.arguments)) == ("search", {"query": "quantum entanglement"})
    assert answer.function.name == "final_result" and json.loads(answer.function.arguments)["sources"]
    assert third.refusal and third.content is None
    assert rules == [
        "agent-run/rules[1] (turn 1 searches)",
        "agent-run/rules[0] (after search, the answer)",
        "agent-run/rules[2] (turn 2 refuses)",
    ]


# --- faults in the books --------------------------------------------------------------------

def _fault_scenarios() -> list[tuple[str, str, bool]]:
    """(scenario, fault kind, streamed?) for every shipped scenario whose rule scripts a fault
    that a first question meets (agent-run's refusal waits for turn 2: its own test has it)."""
    out = []
    for name in sorted(COVERED):
        scenario = load_scenario(ROOT / "scenarios" / f"{name}.yaml", CATALOG)
        for rule in scenario.rules:
            for respond in rule.responses:
                if respond.fault is not None and rule.match.turn in (None, 1) and rule.match.after_tool is None:
                    out.append((name, respond.fault.kind, bool(rule.match.stream)))
    return out


FAULT_SCENARIOS = _fault_scenarios()


def test_the_library_scripts_every_fault_kind():
    from mockpoeti.answers.script import FAULTS

    assert {kind for _, kind, _ in FAULT_SCENARIOS} == set(FAULTS)


@pytest.mark.parametrize(("name", "kind", "stream"), FAULT_SCENARIOS, ids=[f[0] for f in FAULT_SCENARIOS])
def test_faulted_calls_are_error_traces_and_count_in_stats(name, kind, stream):
    tools = {"tools": [WEATHER]} if kind in MODEL_FAULTS else {}  # the model's faults break tool calls
    with MockServer(scenarios=[name]) as server, sdk(server, timeout=0.5) as client:
        try:
            result = client.chat.completions.create(model="gpt-4o", messages=QUESTION, stream=stream, **tools)
            if stream:
                for _ in result:
                    pass
        except Exception:
            pass
        traces = wait_for(lambda: list_traces(server))
        stats = trace_stats(server)
        errors_only = list_traces(server, status="error")

    assert len(traces) == 1, traces
    trace = traces[0]
    assert trace["status"] == "error"
    assert trace["error_code"] == f"fault_{kind}"
    assert trace["model"] == "gpt-4o"
    assert trace["stream"] is stream
    assert [t["trace_id"] for t in errors_only] == [trace["trace_id"]]
    assert stats["total_requests"] == 1
    assert stats["error_count"] == 1
    assert stats["success_count"] == 0
