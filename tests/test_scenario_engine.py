"""The scenario engine: matching, responding, sequences, `times`, stacking,
templating, pacing, near misses, the admin switch and reset.

Each test writes its own scenario YAML into tmp_path and drives a MockServer
with the official openai SDK (or httpx for wire-level and non-chat checks).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import openai
import pytest
import yaml

from mockpoeti import MockServer

ROOT = Path(__file__).resolve().parent.parent
PRICES = {m["id"]: m for m in yaml.safe_load((ROOT / "fixtures" / "models.yaml").read_text(encoding="utf-8"))["models"]}
ACME_KEY = "sk-poeti-acme-production-0001"  # fixtures/accounts.yaml
SEED = 7  # the seed of every server whose unanswered requests a test compares with `default_answer`


def hello(text: str = "Hello there") -> list[dict]:
    return [{"role": "user", "content": text}]


def write_scenario(tmp_path: Path, name: str, rules: list | None = None, **extra) -> str:
    data = {"name": name, **extra}
    if rules is not None:
        data["rules"] = rules
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return str(path)


def sdk(server: MockServer, api_key: str | None = None, **options) -> openai.OpenAI:
    options.setdefault("max_retries", 0)
    return openai.OpenAI(base_url=server.base_url, api_key=api_key or server.api_key, **options)


def http(server: MockServer) -> httpx.Client:
    return httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {server.api_key}"})


def ask(client: openai.OpenAI, text: str = "Hello there", model: str = "gpt-4o", **options) -> str | None:
    return client.chat.completions.create(model=model, messages=hello(text), **options).choices[0].message.content


def stream_pieces(client: openai.OpenAI, text: str = "Hello there", **options) -> tuple[list[str], list[float], list]:
    pieces, times, chunks = [], [], []
    for chunk in client.chat.completions.create(model="gpt-4o", messages=hello(text), stream=True, **options):
        chunks.append(chunk)
        for choice in chunk.choices:
            if choice.delta.content:
                pieces.append(choice.delta.content)
                times.append(time.monotonic())
    return pieces, times, chunks


def chat_entries(server: MockServer) -> list[dict]:
    return [e for e in server.requests if e["path"] == "/v1/chat/completions"]


@pytest.fixture(scope="module")
def default_answer() -> Iterator[Callable[..., str | None]]:
    """What a request no rule answers gets from a server seeded with SEED: generated text that
    depends on the seed and the request alone (not on the scenario, nor on what the server did
    before), so a plain server with the same seed says exactly what the scenario's must."""
    with MockServer(seed=SEED) as plain, sdk(plain) as client:
        yield lambda text="Hello there", model="gpt-4o": ask(client, text, model)


# --- sequences and times ----------------------------------------------------------

def test_sequence_answers_one_response_per_request_and_repeats_the_last(tmp_path):
    path = write_scenario(tmp_path, "seq", [
        {"match": {"endpoint": "chat"}, "respond": [{"content": "one"}, {"content": "two"}, {"content": "three"}]},
    ])
    with MockServer(scenarios=[path]) as server, sdk(server) as client:
        answers = [ask(client) for _ in range(5)]
        rules = [e["rule"] for e in chat_entries(server)]

    assert answers == ["one", "two", "three", "three", "three"]
    assert rules == ["seq/rules[0]"] * 5


def test_sequence_can_mix_errors_and_default_answers(tmp_path, default_answer):
    path = write_scenario(tmp_path, "mixed", [
        {"match": {"endpoint": "chat"}, "respond": [{"error": "internal_error"}, {}]},
    ])
    with MockServer(scenarios=[path], seed=SEED) as server, sdk(server) as client:
        with pytest.raises(openai.InternalServerError) as caught:
            ask(client)
        later = [ask(client) for _ in range(2)]

    assert caught.value.status_code == 500
    assert later == [default_answer()] * 2  # `{}`: the default generated answer, repeated


def test_times_retires_a_rule_and_the_next_rule_answers(tmp_path):
    path = write_scenario(tmp_path, "times", [
        {"name": "limited", "match": {"endpoint": "chat"}, "times": 2, "respond": {"content": "limited"}},
        {"match": {"endpoint": "chat"}, "respond": {"content": "fallback"}},
    ])
    with MockServer(scenarios=[path]) as server, sdk(server) as client:
        answers = [ask(client) for _ in range(4)]
        rules = [e["rule"] for e in chat_entries(server)]

    assert answers == ["limited", "limited", "fallback", "fallback"]
    assert rules == ["times/rules[0] (limited)"] * 2 + ["times/rules[1]"] * 2


def test_times_retired_rule_falls_back_to_the_default_answer(tmp_path, default_answer):
    path = write_scenario(tmp_path, "once", [
        {"match": {"endpoint": "chat"}, "times": 1, "respond": {"content": "scripted"}},
    ])
    with MockServer(scenarios=[path], seed=SEED) as server, sdk(server) as client:
        first, second = ask(client), ask(client)
        entries = chat_entries(server)

    assert first == "scripted"
    assert second == default_answer()
    assert entries[1]["rule"] is None
    assert entries[1]["near_misses"][0]["differences"] == ["times: used up after 1"]


def test_times_with_a_sequence_plays_it_then_retires(tmp_path):
    path = write_scenario(tmp_path, "seqtimes", [
        {"match": {"endpoint": "chat"}, "times": 3, "respond": [{"content": "a"}, {"content": "b"}]},
        {"match": {"endpoint": "chat"}, "respond": {"content": "after"}},
    ])
    with MockServer(scenarios=[path]) as server, sdk(server) as client:
        answers = [ask(client) for _ in range(5)]
    assert answers == ["a", "b", "b", "after", "after"]


# --- stacking ------------------------------------------------------------------------

def test_rules_stack_across_scenario_files_in_order(tmp_path):
    first = write_scenario(tmp_path, "first", [
        {"match": {"endpoint": "chat", "message": "refund"}, "respond": {"content": "from first"}},
    ])
    second = write_scenario(tmp_path, "second", [
        {"match": {"endpoint": "chat"}, "respond": {"content": "from second"}},
    ])
    with MockServer(scenarios=[first, second]) as server, sdk(server) as client:
        stacked = [ask(client, "I want a refund"), ask(client, "hello")]
        rules = [e["rule"] for e in chat_entries(server)]
    with MockServer(scenarios=[second, first]) as server, sdk(server) as client:
        reversed_order = [ask(client, "I want a refund"), ask(client, "hello")]

    assert stacked == ["from first", "from second"]
    assert rules == ["first/rules[0]", "second/rules[0]"]
    assert reversed_order == ["from second", "from second"]  # the catch-all of the earlier file wins


def test_a_shipped_name_and_a_file_stack(tmp_path):
    mine = write_scenario(tmp_path, "mine", [
        {"match": {"endpoint": "chat", "model": "gpt-4o-mini"}, "respond": {"content": "mini"}},
    ])
    with MockServer(scenarios=[mine, "rate-limited"]) as server, sdk(server) as client:
        assert ask(client, model="gpt-4o-mini") == "mini"
        with pytest.raises(openai.RateLimitError):
            ask(client, model="gpt-4o")


# --- matching ---------------------------------------------------------------------------

def test_match_model_glob(tmp_path):
    path = write_scenario(tmp_path, "glob", [
        {"match": {"endpoint": "chat", "model": "claude-*"}, "respond": {"content": "anthropic"}},
        {"match": {"endpoint": "chat", "model": "gpt-4o"}, "respond": {"content": "exact"}},
    ])
    with MockServer(scenarios=[path]) as server, sdk(server) as client:
        assert ask(client, model="claude-3-5-sonnet-20241022") == "anthropic"
        assert ask(client, model="claude-3-5-haiku-20241022") == "anthropic"
        assert ask(client, model="gpt-4o") == "exact"
        other = ask(client, model="gpt-4o-mini")  # exact means exact: no prefix match
    assert other not in ("anthropic", "exact")


def test_match_stream_flag(tmp_path):
    path = write_scenario(tmp_path, "streamflag", [
        {"match": {"endpoint": "chat", "stream": True}, "respond": {"content": "streamed answer"}},
        {"match": {"endpoint": "chat", "stream": False}, "respond": {"content": "plain answer"}},
    ])
    with MockServer(scenarios=[path]) as server, sdk(server) as client:
        pieces, _, _ = stream_pieces(client)
        plain = ask(client)
    assert "".join(pieces) == "streamed answer"
    assert plain == "plain answer"


def test_match_message_substring_and_regex(tmp_path):
    path = write_scenario(tmp_path, "message", [
        {"match": {"endpoint": "chat", "message": "/^order #\\d+$/"}, "respond": {"content": "regex"}},
        {"match": {"endpoint": "chat", "message": "refund"}, "respond": {"content": "substring"}},
        {"match": {"endpoint": "chat"}, "respond": {"content": "other"}},
    ])
    with MockServer(scenarios=[path]) as server, sdk(server) as client:
        assert ask(client, "order #1234") == "regex"
        assert ask(client, "where is order #1234?") == "other"  # the regex is anchored
        assert ask(client, "Can I get a refund please") == "substring"
        assert ask(client, "hello") == "other"
        # the last *user* message counts, not the system prompt or earlier turns
        result = client.chat.completions.create(model="gpt-4o", messages=[
            {"role": "system", "content": "refund policy: none"},
            {"role": "user", "content": "refund?"},
            {"role": "assistant", "content": "No."},
            {"role": "user", "content": "ok thanks"},
        ])
    assert result.choices[0].message.content == "other"


def test_match_headers_with_a_glob(tmp_path, default_answer):
    path = write_scenario(tmp_path, "headers", [
        {"match": {"endpoint": "chat", "headers": {"X-Tenant": "acme-*"}}, "respond": {"content": "acme"}},
    ])
    with MockServer(scenarios=[path], seed=SEED) as server, sdk(server) as client:
        assert ask(client, extra_headers={"X-Tenant": "acme-eu"}) == "acme"
        assert ask(client, extra_headers={"x-tenant": "acme-us"}) == "acme"  # header names are case-insensitive
        assert ask(client, extra_headers={"X-Tenant": "globex"}) == default_answer()
        assert ask(client) == default_answer()


def test_match_body_subset(tmp_path, default_answer):
    path = write_scenario(tmp_path, "body", [
        {"match": {"endpoint": "chat", "body": {"user": "alice", "metadata": {"team": "search"}}},
         "respond": {"content": "subset"}},
    ])
    with MockServer(scenarios=[path], seed=SEED) as server, sdk(server) as client:
        hit = ask(client, user="alice", metadata={"team": "search", "env": "ci"}, temperature=0.3)
        wrong_value = ask(client, user="alice", metadata={"team": "ads"})
        missing = ask(client, user="alice")
    assert hit == "subset"
    assert wrong_value == missing == default_answer()  # `user` and `metadata` do not seed the answer


def test_match_key_glob(tmp_path, default_answer):
    path = write_scenario(tmp_path, "keys", [
        {"match": {"endpoint": "chat", "key": "sk-poeti-acme-*"}, "respond": {"content": "acme key"}},
    ])
    with MockServer(scenarios=[path], seed=SEED) as server:
        with sdk(server, api_key=ACME_KEY) as acme:
            assert ask(acme) == "acme key"
        with sdk(server) as default:
            other = ask(default)
        entry = chat_entries(server)[-1]
    assert other == default_answer()
    assert entry["near_misses"][0]["differences"] == ["key: a different API key"]
    assert ACME_KEY not in json.dumps(entry)  # the journal never shows a full key


def test_match_last_role(tmp_path):
    path = write_scenario(tmp_path, "roles", [
        {"match": {"endpoint": "chat", "last_role": "tool"}, "respond": {"content": "after tool"}},
        {"match": {"endpoint": "chat", "last_role": "user"}, "respond": {"content": "after user"}},
    ])
    call = {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    with MockServer(scenarios=[path]) as server, sdk(server) as client:
        after_user = ask(client)
        after_tool = client.chat.completions.create(model="gpt-4o", messages=[
            *hello(),
            {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": "call_1", "content": "42"},
        ]).choices[0].message.content
    assert after_user == "after user"
    assert after_tool == "after tool"


def conversation(*turns: str, calls: tuple[str, ...] = (), result_of: str | None = None) -> list[dict]:
    """User messages, each answered; then, optionally, calls to `calls` and the result of the one named `result_of`."""
    messages: list[dict] = []
    for i, text in enumerate(turns):
        messages.append({"role": "user", "content": text})
        if i < len(turns) - 1:
            messages.append({"role": "assistant", "content": "noted"})
    if calls:
        messages.append({"role": "assistant", "content": None, "tool_calls": [
            {"id": f"call_{name}", "type": "function", "function": {"name": name, "arguments": "{}"}} for name in calls
        ]})
    if result_of is not None:
        messages.append({"role": "tool", "tool_call_id": f"call_{result_of}", "content": "42"})
    return messages


def test_match_turn_counts_the_user_messages(tmp_path):
    path = write_scenario(tmp_path, "turns", [
        {"match": {"endpoint": "chat", "turn": 1}, "respond": {"content": "first"}},
        {"match": {"endpoint": "chat", "turn": 3}, "respond": {"content": "third"}},
    ])
    with MockServer(scenarios=[path], seed=SEED) as server, sdk(server) as client:
        def answer(messages):
            return client.chat.completions.create(model="gpt-4o", messages=messages).choices[0].message.content

        system_first = [{"role": "system", "content": "be brief"}, *conversation("a")]
        answers = [answer(system_first), answer(conversation("a", "b")), answer(conversation("a", "b", "c"))]
        second = chat_entries(server)[1]
    assert answers[0] == "first" and answers[2] == "third"
    assert second["rule"] is None and answers[1]  # turn 2: no rule, the default answer
    assert second["near_misses"][0]["differences"] == ["turn: wanted 1, got 2 (user messages)"]


@pytest.mark.parametrize(("pattern", "calls", "result_of", "holds"), [
    ("search", ("search",), "search", True),
    ("search*", ("search_web",), "search_web", True),
    ("search", ("fetch", "search"), "search", True),  # the call whose id the tool message names
    ("search", ("search", "fetch"), "fetch", False),
    ("search", (), None, False),  # the last message is the user's
    ("search", ("other",), "search", False),  # no call has that id: the result of an unknown call
])
def test_match_after_tool_names_the_call_a_result_answers(tmp_path, pattern, calls, result_of, holds):
    path = write_scenario(tmp_path, "after", [
        {"match": {"endpoint": "chat", "after_tool": pattern}, "respond": {"content": "after it"}},
    ])
    with MockServer(scenarios=[path]) as server, sdk(server) as client:
        content = client.chat.completions.create(
            model="gpt-4o", messages=conversation("find it", calls=calls, result_of=result_of)
        ).choices[0].message.content
        [entry] = chat_entries(server)
    assert (content == "after it") is holds
    if not holds:
        [difference] = entry["near_misses"][0]["differences"]
        assert difference.startswith(f"after_tool: wanted a result of {pattern}, got ")


def test_assert_requested_takes_turn_and_after_tool(poeti, client):
    client.chat.completions.create(model="gpt-4o", messages=conversation("a", "b", calls=("search",), result_of="search"))

    poeti.assert_requested(turn=2, after_tool="search")
    with pytest.raises(AssertionError, match="turn: wanted 1, got 2"):
        poeti.assert_requested(turn=1)


def test_match_non_chat_endpoint(tmp_path, default_answer):
    path = write_scenario(tmp_path, "usage", [
        {"match": {"endpoint": "usage"}, "respond": {"body": {"code": 200, "data": {"total_requests": 4242}}}},
    ])
    with MockServer(scenarios=[path], seed=SEED) as server, http(server) as h, sdk(server) as client:
        usage = h.get("/api/v1/usage")
        traces = h.get("/api/v1/request-traces")
        content = ask(client)
        usage_entry = next(e for e in server.requests if e["path"] == "/api/v1/usage")

    assert usage.status_code == 200
    assert usage.json() == {"code": 200, "data": {"total_requests": 4242}}
    assert usage.headers["x-trace-id"].startswith("trace-poeti-")
    assert traces.status_code == 200 and traces.json()["data"]["items"] == []  # other endpoints untouched
    assert content == default_answer()
    assert usage_entry["rule"] == "usage/rules[0]"


def test_headers_on_a_management_endpoint_keep_its_real_answer(tmp_path):
    path = write_scenario(tmp_path, "keyhdr", [
        {"match": {"endpoint": "api_keys", "method": "GET"}, "respond": {"headers": {"X-Scripted": "yes"}}},
    ])
    with MockServer(scenarios=[path]) as server, http(server) as h:
        listing = h.get("/api/v1/api-keys")
    assert listing.status_code == 200
    assert listing.headers["x-scripted"] == "yes"
    assert listing.json()["code"] == 200 and listing.json()["data"]


def test_method_and_path_script_a_path_the_api_does_not_have(tmp_path):
    embedding = {"object": "list", "data": [{"object": "embedding", "index": 0, "embedding": [0.1, 0.2, 0.3]}],
                 "model": "text-embedding-3-small", "usage": {"prompt_tokens": 2, "total_tokens": 2}}
    path = write_scenario(tmp_path, "embeddings", [
        {"match": {"method": "GET", "path": "/v1/embeddings"}, "respond": {"body": embedding}},
        {"match": {"method": "POST", "path": "/v1/embed*"}, "respond": {"body": "plain text", "headers": {"X-Kind": "text"}}},
    ])
    with MockServer(scenarios=[path]) as server, http(server) as h:
        got = h.get("/v1/embeddings")
        posted = h.post("/v1/embeddings", json={"input": "hi"})
        deleted = h.delete("/v1/embeddings")
        entries = [e for e in server.requests if e["path"] == "/v1/embeddings"]

    assert got.status_code == 200
    assert got.headers["content-type"].startswith("application/json")
    assert got.json() == embedding
    assert posted.status_code == 200
    assert posted.text == "plain text"
    assert posted.headers["x-kind"] == "text"
    assert deleted.status_code == 404  # not scripted: the API's own answer
    assert deleted.json()["error"]["code"] == "not_found"
    assert [e["rule"] for e in entries] == ["embeddings/rules[0]", "embeddings/rules[1]", None]


def test_sdk_embeddings_call_answered_by_a_scripted_path(tmp_path):
    embedding = {"object": "list", "data": [{"object": "embedding", "index": 0, "embedding": [0.5, -0.5]}],
                 "model": "text-embedding-3-small", "usage": {"prompt_tokens": 1, "total_tokens": 1}}
    path = write_scenario(tmp_path, "sdk-embed", [
        {"match": {"method": "POST", "path": "/v1/embeddings"}, "respond": {"body": embedding}},
    ])
    with MockServer(scenarios=[path]) as server, sdk(server) as client:
        result = client.embeddings.create(model="text-embedding-3-small", input="hi", encoding_format="float")
    assert result.data[0].embedding == [0.5, -0.5]


# --- templating -------------------------------------------------------------------------

def test_templating_fills_in_message_model_body_and_headers(tmp_path):
    path = write_scenario(tmp_path, "tmpl", [
        {"match": {"endpoint": "chat"}, "respond": {
            "content": "you said {{ message }} to {{ model }} as {{ body.user }} in {{ body.metadata.team }} "
                       "from {{ headers.x-app }}; {{ body.nothing.here }}!",
        }},
    ])
    with MockServer(scenarios=[path]) as server, sdk(server) as client:
        content = ask(client, "量子纠缠", model="gpt-4o-mini", user="bob", metadata={"team": "search"},
                      extra_headers={"X-App": "notebook"})
    assert content == "you said 量子纠缠 to gpt-4o-mini as bob in search from notebook; !"


def _faker_names(path: str, seed: int | None, calls: int = 2) -> list[str]:
    with MockServer(scenarios=[path], seed=seed) as server, sdk(server) as client:
        return [ask(client) for _ in range(calls)]


def test_templating_faker_is_deterministic_per_server_seed(tmp_path):
    path = write_scenario(tmp_path, "faker", [
        {"match": {"endpoint": "chat"}, "respond": {"content": "{{ faker.name }} <{{ faker.email }}>"}},
    ])
    first = _faker_names(path, seed=7)
    again = _faker_names(path, seed=7)
    other = _faker_names(path, seed=8)

    assert first == again
    assert first != other
    for value in first:
        name, _, email = value.partition(" <")
        assert name.strip() and "{{" not in value
        assert "@" in email and email.endswith(">")


def test_templating_faker_follows_the_scenario_seed(tmp_path):
    """README: a scenario's `seed` "seeds chaos, timing and templated Faker values".
    With it set and no server seed, two runs must fill in the same names."""
    path = write_scenario(tmp_path, "faker-seeded", [
        {"match": {"endpoint": "chat"}, "respond": {"content": "{{ faker.name }}"}},
    ], seed=7)
    assert _faker_names(path, seed=None) == _faker_names(path, seed=None)


# --- usage, status, headers, latency ----------------------------------------------------

def test_usage_override_shows_in_the_response_and_the_trace_cost(tmp_path):
    path = write_scenario(tmp_path, "usage-override", [
        {
            "match": {"endpoint": "chat"},
            "respond": {"content": "short", "usage": {"prompt_tokens": 1000, "completion_tokens": 2000}},
        },
    ])
    price = PRICES["gpt-4o"]
    expected_cost = (1000 * price["input_price"] + 2000 * price["output_price"]) / 1_000_000
    with MockServer(scenarios=[path]) as server, sdk(server) as client, http(server) as h:
        result = client.chat.completions.create(model="gpt-4o", messages=hello())
        pieces, _, chunks = stream_pieces(client, stream_options={"include_usage": True})
        traces = h.get("/api/v1/request-traces").json()["data"]["items"]
        usage = h.get("/api/v1/usage").json()["data"]

    assert (result.usage.prompt_tokens, result.usage.completion_tokens, result.usage.total_tokens) == (1000, 2000, 3000)
    assert chunks[-1].usage.prompt_tokens == 1000 and chunks[-1].usage.completion_tokens == 2000
    assert "".join(pieces) == "short"
    for trace in traces:
        assert (trace["prompt_tokens"], trace["completion_tokens"]) == (1000, 2000)
        assert trace["cost_usd"] == pytest.approx(expected_cost)
    assert usage["total_tokens"] == 6000
    assert usage["total_cost_usd"] == pytest.approx(2 * expected_cost)


def test_headers_on_a_successful_chat_answer(tmp_path):
    path = write_scenario(tmp_path, "hdr", [
        {"match": {"endpoint": "chat"}, "respond": {"headers": {"X-Env": "staging", "x-ratelimit-remaining-requests": 3}}},
    ])
    with MockServer(scenarios=[path]) as server, sdk(server) as client:
        raw = client.chat.completions.with_raw_response.create(model="gpt-4o", messages=hello())
    assert raw.status_code == 200
    assert raw.headers["x-env"] == "staging"
    assert raw.headers["x-ratelimit-remaining-requests"] == "3"
    assert raw.parse().choices[0].message.content


def test_status_and_headers_on_a_successful_chat_answer(tmp_path):
    path = write_scenario(tmp_path, "status", [
        {"match": {"endpoint": "chat"}, "respond": {"status": 203, "headers": {"X-Env": "staging"}}},
    ])
    with MockServer(scenarios=[path]) as server, sdk(server) as client:
        raw = client.chat.completions.with_raw_response.create(model="gpt-4o", messages=hello())
        errors = server.state.server_errors[:]
    assert errors == []
    assert raw.status_code == 203
    assert raw.headers["x-env"] == "staging"
    assert raw.parse().choices[0].message.content  # still the default chat answer


def test_status_with_a_raw_body(tmp_path):
    path = write_scenario(tmp_path, "status-body", [
        {"match": {"method": "GET", "path": "/v1/health"}, "respond": {"status": 200, "body": {"ok": True}}},
        {"match": {"method": "GET", "path": "/v1/teapot"}, "respond": {"status": 418, "body": {"short": "stout"}}},
    ])
    with MockServer(scenarios=[path]) as server, http(server) as h:
        teapot = h.get("/v1/teapot")
        health = h.get("/v1/health")
    assert teapot.status_code == 418
    assert teapot.json() == {"short": "stout"}
    assert health.status_code == 200
    assert health.json() == {"ok": True}


def test_error_with_a_custom_message_and_header(tmp_path):
    path = write_scenario(tmp_path, "err", [
        {"match": {"endpoint": "chat"}, "respond": {"error": "model_not_found", "message": "No such model here.",
                                                    "headers": {"X-Why": "scripted"}}},
    ])
    with MockServer(scenarios=[path]) as server, sdk(server) as client:
        with pytest.raises(openai.NotFoundError) as caught:
            ask(client)
    assert caught.value.body == {"code": "model_not_found", "message": "No such model here.", "status": 404}
    assert caught.value.response.headers["x-why"] == "scripted"


def test_latency_ms_delays_the_answer(tmp_path):
    path = write_scenario(tmp_path, "latency", [
        {"match": {"endpoint": "chat", "model": "gpt-4o"}, "respond": {"latency_ms": 300}},
    ])
    with MockServer(scenarios=[path]) as server, sdk(server) as client:
        started = time.monotonic()
        assert ask(client)
        slow = time.monotonic() - started
        assert ask(client, model="gpt-4o-mini")
        delayed, other = chat_entries(server)
    assert 0.28 <= slow < 3.0  # never sooner than asked; the margin above is for a loaded machine
    assert delayed["rule"] == "latency/rules[0]" and delayed["duration_ms"] >= 280
    assert other["rule"] is None  # the other model is not delayed: no rule answered it (timing it would time the machine)


# --- streaming: chunking and pacing -----------------------------------------------------

def test_stream_chunk_by_word_and_by_count(tmp_path):
    path = write_scenario(tmp_path, "chunks", [
        {"match": {"endpoint": "chat", "message": "words"},
         "respond": {"content": "alpha beta gamma delta", "stream": {"chunk": "word"}}},
        {"match": {"endpoint": "chat", "message": "fives"},
         "respond": {"content": "abcdefghijkl", "stream": {"chunk": 5}}},
        {"match": {"endpoint": "chat", "message": "chars"},
         "respond": {"content": "你好吗", "stream": {"chunk": "char"}}},
    ])
    with MockServer(scenarios=[path]) as server, sdk(server) as client:
        words, _, _ = stream_pieces(client, "words")
        fives, _, _ = stream_pieces(client, "fives")
        chars, _, _ = stream_pieces(client, "chars")
    assert words == ["alpha ", "beta ", "gamma ", "delta"]
    assert fives == ["abcde", "fghij", "kl"]
    assert chars == ["你", "好", "吗"]


def test_paced_stream_takes_about_n_intervals(tmp_path):
    words = "one two three four five six seven eight"
    path = write_scenario(tmp_path, "paced", [
        {"match": {"endpoint": "chat"},
         "respond": {"content": words, "stream": {"chunk": "word", "first_chunk_ms": 200, "interval_ms": 60}}},
    ])
    with MockServer(scenarios=[path]) as server, sdk(server) as client:
        started = time.monotonic()
        pieces, times, _ = stream_pieces(client)
        total = time.monotonic() - started
        entry = chat_entries(server)[-1]

    assert "".join(pieces) == words
    assert len(pieces) == 8
    # paced to deadlines, never early: the first chunk at 200 ms, the last 7 intervals of 60 ms later (0.62 s).
    # A client that a loaded machine held up reads them late, so only the upper bounds get a margin.
    assert times[0] - started >= 0.18
    assert times[-1] - started >= 0.6
    assert times[-1] - times[0] < 2.0
    assert total < 3.0
    assert entry["delivery"]["chunks_sent"] == 8
    assert entry["delivery"]["completed"] is True
    assert entry["delivery"]["interrupted"] is False


def test_client_leaving_a_paced_stream_is_noted_in_journal_and_trace(tmp_path):
    # 200 words 80 ms apart: the stream would take 16 s, the client leaves after 2 and the server stops at
    # its next write. (With 8 words, a client held up 0.5 s by a loaded machine left after the last.)
    path = write_scenario(tmp_path, "leave", [
        {"match": {"endpoint": "chat"},
         "respond": {"content": " ".join(["word"] * 200), "stream": {"chunk": "word", "interval_ms": 80}}},
    ])
    with MockServer(scenarios=[path]) as server, sdk(server) as client, http(server) as h:
        stream = client.chat.completions.create(model="gpt-4o", messages=hello(), stream=True)
        received = 0
        for chunk in stream:
            received += sum(1 for c in chunk.choices if c.delta.content)
            if received == 2:
                break
        stream.close()
        deadline = time.monotonic() + 5
        while not chat_entries(server) and time.monotonic() < deadline:
            time.sleep(0.01)
        entry = chat_entries(server)[-1]
        [trace] = h.get("/api/v1/request-traces").json()["data"]["items"]

    assert entry["delivery"]["completed"] is False
    assert entry["delivery"]["interrupted"] is True
    assert 2 <= entry["delivery"]["chunks_sent"] < 200
    assert trace["status"] == "error"
    assert trace["error_code"] == "client_disconnected"
    assert trace["interrupted"] is True


def test_unpaced_scripted_stream_is_immediate(tmp_path):
    path = write_scenario(tmp_path, "fast", [
        {"match": {"endpoint": "chat"}, "respond": {"content": "one two three four", "stream": {"chunk": "word"}}},
    ])
    with MockServer(scenarios=[path]) as server, sdk(server) as client:
        started = time.monotonic()
        pieces, _, _ = stream_pieces(client)
        elapsed = time.monotonic() - started
    assert pieces == ["one ", "two ", "three ", "four"]
    assert elapsed < 2.0  # ~10 ms of work; the margin is for a loaded machine


# --- near misses -------------------------------------------------------------------------

def test_unanswered_request_gets_the_default_answer_and_near_misses(tmp_path, default_answer):
    path = write_scenario(tmp_path, "near", [
        {"name": "claude only", "match": {"endpoint": "chat", "model": "claude-*"}, "respond": {"content": "scripted"}},
        {"name": "streams", "match": {"endpoint": "chat", "stream": True, "message": "zebra"}, "respond": {"content": "z"}},
    ])
    with MockServer(scenarios=[path], seed=SEED) as server, sdk(server) as client:
        content = ask(client, "Tell me about spring", model="gpt-4o")
        entry = chat_entries(server)[-1]

    assert content == default_answer("Tell me about spring")
    assert entry["rule"] is None
    misses = entry["near_misses"]
    assert misses[0] == {"rule": "near/rules[0] (claude only)", "differences": ["model: wanted claude-*, got gpt-4o"]}
    assert misses[1]["rule"] == "near/rules[1] (streams)"
    assert any(d.startswith("stream:") for d in misses[1]["differences"])
    assert any(d.startswith("message:") for d in misses[1]["differences"])


def test_near_misses_in_the_admin_journal(tmp_path):
    path = write_scenario(tmp_path, "hdrmiss", [
        {"match": {"endpoint": "chat", "headers": {"x-tenant": "acme"}}, "respond": {"content": "acme"}},
    ])
    with MockServer(scenarios=[path]) as server, sdk(server) as client, httpx.Client(base_url=server.url) as admin:
        ask(client, extra_headers={"X-Tenant": "globex"})
        journal = admin.get("/__admin/requests").json()["requests"]
    [entry] = [e for e in journal if e["path"] == "/v1/chat/completions"]
    assert entry["rule"] is None
    assert entry["near_misses"][0]["differences"] == ["headers.x-tenant: wanted 'acme', got 'globex'"]


# --- chaos --------------------------------------------------------------------------------

def test_chaos_with_a_match_only_hits_matching_requests(tmp_path, default_answer):
    path = write_scenario(tmp_path, "chaos", chaos={
        "rate": 1.0, "faults": ["upstream_error"], "seed": 1, "match": {"endpoint": "chat", "model": "gpt-4o-mini"},
    })
    with MockServer(scenarios=[path], seed=SEED) as server, sdk(server) as client:
        with pytest.raises(openai.InternalServerError) as caught:
            ask(client, model="gpt-4o-mini")
        assert ask(client, model="gpt-4o") == default_answer()
        entries = chat_entries(server)
    assert caught.value.status_code == 502
    assert [e["rule"] for e in entries] == ["chaos/chaos", None]


# --- the admin switch and reset -------------------------------------------------------------

def test_admin_switch_by_names(tmp_path, default_answer):
    mine = write_scenario(tmp_path, "mine", [{"match": {"endpoint": "chat"}, "respond": {"content": "mine"}}])
    folders = (str(tmp_path),)  # the admin API reads scenario files only from the server's folders
    with MockServer(seed=SEED, scenario_dirs=folders) as server, sdk(server) as client, \
            httpx.Client(base_url=server.url) as admin:
        before = ask(client)
        switched = admin.put("/__admin/scenarios/active", json={"names": ["rate-limited"]})
        with pytest.raises(openai.RateLimitError):
            ask(client)
        by_path = admin.put("/__admin/scenarios/active", json={"names": [mine]})
        after = ask(client)
        listing = admin.get("/__admin/scenarios").json()
        cleared = admin.put("/__admin/scenarios/active", json={"names": []})
        default = ask(client)

    assert before == default_answer()
    assert switched.status_code == 200
    assert [s["name"] for s in switched.json()["active"]] == ["rate-limited"]
    assert by_path.status_code == 200
    assert after == "mine"
    assert [s["name"] for s in listing["active"]] == ["mine"]
    assert listing["active"][0]["rules"][0]["used"] == 1
    assert cleared.status_code == 200 and cleared.json()["active"] == []
    assert default == default_answer()


def test_admin_switch_inline_scenario():
    inline = {"name": "inline", "rules": [
        {"match": {"endpoint": "chat"}, "respond": [{"content": "first"}, {"content": "then"}]},
    ]}
    with MockServer() as server, sdk(server) as client, httpx.Client(base_url=server.url) as admin:
        response = admin.put("/__admin/scenarios/active", json=inline)
        answers = [ask(client) for _ in range(3)]
        again = admin.put("/__admin/scenarios/active", json=inline)  # switching starts the counters over
        restarted = ask(client)

    assert response.status_code == 200
    assert response.json()["active"][0]["name"] == "inline"
    assert answers == ["first", "then", "then"]
    assert again.status_code == 200
    assert restarted == "first"


@pytest.mark.parametrize(("scenario", "field"), [
    ({"name": "bad", "rules": [{"match": {"endpoint": "chat"}, "respond": {"fault": {"kind": "explode"}}}]},
     "rules[0].respond.fault.kind"),
    ({"name": "bad", "rules": [{"match": {"modle": "gpt-4o"}, "respond": {"content": "x"}}]}, "rules[0].match.modle"),
    ({"name": "bad", "rules": [{"respond": {"error": "rate_limit_exceded"}}]}, "rules[0].respond.error"),
    ({"name": "bad", "rules": [{"respond": {"content": "x"}, "times": 0}]}, "rules[0].times"),
    ({"rules": [{"respond": {"content": "x"}}]}, "name"),
])
def test_admin_switch_invalid_inline_scenario_is_a_400_naming_the_field(scenario, field):
    with MockServer(scenarios=["json-mode"]) as server, httpx.Client(base_url=server.url) as admin, sdk(server) as client:
        response = admin.put("/__admin/scenarios/active", json=scenario)
        listing = admin.get("/__admin/scenarios").json()
        content = ask(client)

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid_request"
    assert error["status"] == 400
    assert f": {field}: " in error["message"]  # FILE:LINE: path: message
    assert [s["name"] for s in listing["active"]] == ["json-mode"]  # the active scenarios are kept
    assert json.loads(content)["sentiment"] == "positive"


def test_admin_switch_unknown_name_is_a_400():
    with MockServer() as server, httpx.Client(base_url=server.url) as admin:
        response = admin.put("/__admin/scenarios/active", json={"names": ["no-such-scenario"]})
        wrong_type = admin.put("/__admin/scenarios/active", json={"names": "rate-limited"})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_request"
    assert "no-such-scenario" in response.json()["error"]["message"]
    assert wrong_type.status_code == 400
    assert "names" in wrong_type.json()["error"]["message"]


def test_admin_reset_rewinds_sequence_counters(tmp_path):
    path = write_scenario(tmp_path, "rewind", [
        {"match": {"endpoint": "chat"}, "times": 3, "respond": [{"content": "a"}, {"content": "b"}, {"content": "c"}]},
    ])
    with MockServer(scenarios=[path]) as server, sdk(server) as client, httpx.Client(base_url=server.url) as admin:
        before = [ask(client) for _ in range(4)]
        reset = admin.post("/__admin/reset")
        after = [ask(client) for _ in range(2)]
        listing = admin.get("/__admin/scenarios").json()

    assert before[:3] == ["a", "b", "c"]
    assert before[3] not in ("a", "b", "c")  # retired after 3
    assert reset.status_code == 200
    assert after == ["a", "b"]
    assert listing["active"][0]["rules"][0]["used"] == 2


def test_admin_reset_rewinds_a_shipped_sequence():
    with MockServer(scenarios=["outage-then-recovery"]) as server, sdk(server) as client, \
            httpx.Client(base_url=server.url) as admin:
        for _ in range(3):
            with pytest.raises(openai.InternalServerError):
                ask(client)
        assert ask(client)
        admin.post("/__admin/reset")
        with pytest.raises(openai.InternalServerError) as caught:
            ask(client)
    assert caught.value.status_code == 503
