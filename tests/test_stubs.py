"""Stubs from Python: `poeti.stub(...)` as a test writes it, through the official SDK.

A stub is one scenario rule added at run time: the same checks, matching,
templating, faults and journal, tried before the scenarios' rules, newest first.
The plugin's side (a fresh `poeti` per test, xdist) runs real test files through
pytester at the end.
"""

from __future__ import annotations

import json

import httpx
import openai
import pytest
from payloads import WEATHER
from serving import PYTEST_OPTIONS

from mockpoeti import ConfigError, MockServer

pytest_plugins = ["pytester"]

TIME = {"type": "function", "function": {"name": "get_time"}}


def ask(client: openai.OpenAI, text: str = "hello", model: str = "gpt-4o", **options) -> str | None:
    reply = client.chat.completions.create(model=model, messages=[{"role": "user", "content": text}], **options)
    return reply.choices[0].message.content


# --- answering ----------------------------------------------------------------------------

def test_a_string_is_the_answer_and_templates_are_filled_in(poeti, client):
    poeti.stub("你问的是：{{ message }}")

    assert ask(client, "量子纠缠") == "你问的是：量子纠缠"
    assert ask(client, "hi", model="gpt-4o-mini") == "你问的是：hi"


def test_a_stub_answers_chat_calls_only_unless_it_names_an_endpoint_or_path(poeti, client, http):
    poeti.stub("only chat")
    models = http.get("/v1/models")
    poeti.stub({"status": 200, "body": {"object": "list", "data": []}}, endpoint="models")
    empty = http.get("/v1/models")
    poeti.stub({"status": 418, "body": "teapot"}, path="/v1/embeddings", method="POST")
    teapot = http.post("/v1/embeddings", json={"model": "x", "input": "y"})

    assert ask(client) == "only chat"
    assert models.status_code == 200 and models.json()["data"]  # the catalog, not the stub
    assert empty.json() == {"object": "list", "data": []}
    assert (teapot.status_code, teapot.text) == (418, "teapot")


def test_match_keys_choose_the_stub(poeti, client):
    poeti.stub("mini", model="gpt-4o-mini")
    poeti.stub("about the weather", message="/weather|天气/")

    assert ask(client, "hello", model="gpt-4o-mini") == "mini"
    assert ask(client, "今天天气怎么样") == "about the weather"
    assert ask(client, "hello") not in ("mini", "about the weather")  # the default, generated answer


def test_a_sequence_plays_in_turn_and_its_last_answer_repeats(poeti, client):
    poeti.stub(["first", {"content": "second"}, "last"])

    assert [ask(client) for _ in range(5)] == ["first", "second", "last", "last", "last"]


def test_times_uses_a_stub_up_then_the_next_rule_answers(poeti, client):
    poeti.stub("fallback")
    limited = poeti.stub({"error": "rate_limit_exceeded"}, times=2)

    for _ in range(2):
        with pytest.raises(openai.RateLimitError) as caught:
            ask(client)
        assert caught.value.response.headers["retry-after"] == "1"  # like every scripted 429
    assert ask(client) == "fallback"
    assert limited.calls == 2


def test_the_newest_stub_wins_and_removing_it_uncovers_the_older(poeti, client):
    broad = poeti.stub("broad")
    narrow = poeti.stub("narrow", model="gpt-4o")

    first = ask(client)
    narrow.remove()
    second = ask(client)
    broad.remove()
    third = ask(client)
    narrow.remove()  # already gone: nothing happens

    assert (first, second) == ("narrow", "broad")
    assert third not in ("narrow", "broad")
    assert poeti.stubs == []


def test_stubs_come_before_scenario_rules_and_survive_a_switch(poeti, client):
    poeti.use("rate-limited")
    with pytest.raises(openai.RateLimitError):
        ask(client)
    poeti.stub("stubbed")
    assert ask(client) == "stubbed"
    poeti.use({"name": "inline", "rules": [{"match": {"endpoint": "chat"}, "respond": {"content": "inline"}}]})
    assert ask(client) == "stubbed"
    poeti.reset()
    assert ask(client) != "stubbed"


def test_an_error_a_fault_and_stream_pacing_as_in_scenario_files(poeti, client):
    poeti.stub({"error": "service_unavailable", "message": "down for a bit"}, model="gpt-4o-mini")
    poeti.stub({"fault": "reset"}, message="hang up")
    poeti.stub({"content": "一二三四", "stream": {"chunk": "char", "interval_ms": 1}}, stream=True)

    with pytest.raises(openai.InternalServerError) as down:
        ask(client, model="gpt-4o-mini")
    with pytest.raises(openai.APIConnectionError):
        ask(client, "please hang up")
    stream = client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}], stream=True)
    pieces = [c.choices[0].delta.content for c in stream if c.choices and c.choices[0].delta.content]

    assert down.value.status_code == 503 and "down for a bit" in str(down.value)
    assert pieces == ["一", "二", "三", "四"]


def test_tool_calls_from_a_stub(poeti, client):
    poeti.stub({"tool_calls": [{"name": "get_weather", "arguments": {"city": "上海"}}]}, tools=True)

    reply = client.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "天气"}], tools=[WEATHER]
    ).choices[0]

    assert reply.finish_reason == "tool_calls"
    call = reply.message.tool_calls[0].function
    assert (call.name, json.loads(call.arguments)) == ("get_weather", {"city": "上海"})


# --- the `tools` match key -------------------------------------------------------------------

@pytest.mark.parametrize(("tools", "wanted", "holds"), [
    ([WEATHER], True, True),
    (None, True, False),
    (None, False, True),
    ([WEATHER], False, False),
    ([WEATHER, TIME], ["get_time", "get_weather"], True),  # any order
    ([WEATHER], ["get_weather", "get_time"], False),  # exactly these: not a subset
    ([WEATHER, TIME], ["get_weather"], False),
])
def test_the_tools_key(poeti, client, tools, wanted, holds):
    poeti.stub("matched", tools=wanted)
    options = {"tools": tools} if tools else {}

    answer = ask(client, **options)

    assert (answer == "matched") is holds
    entry = poeti.last_request
    assert entry["rule"] == ("stub#1" if holds else None)
    if not holds:
        assert [d for d in entry["near_misses"][0]["differences"] if d.startswith("tools: wanted ")]


# --- what a stub saw ----------------------------------------------------------------------------

def test_calls_requests_and_the_journal_name_the_stub(poeti, client):
    mini = poeti.stub("mini", model="gpt-4o-mini")
    other = poeti.stub("other", model="gpt-4o")

    ask(client, "one", model="gpt-4o-mini")
    ask(client, "two", model="gpt-4o")
    ask(client, "three", model="gpt-4o-mini")

    assert (mini.id, other.id) == (1, 2)
    assert (mini.label, other.label) == ("stub#1", "stub#2")
    assert (mini.calls, other.calls) == (2, 1)
    assert [r["body"]["messages"][0]["content"] for r in mini.requests] == ["one", "three"]
    assert [r["rule"] for r in poeti.requests] == ["stub#1", "stub#2", "stub#1"]
    listed = {s["id"]: s for s in poeti.stubs}
    assert listed[1]["calls"] == 2 and listed[1]["match"] == {"endpoint": "chat", "model": "gpt-4o-mini"}
    assert [s["id"] for s in poeti.stubs] == [2, 1]  # the order they are tried


def test_near_misses_name_stubs(poeti, client):
    poeti.stub("never", model="gpt-4o-mini", message="exact words")

    ask(client, "something else")

    misses = poeti.last_request["near_misses"]
    assert misses[0]["rule"] == "stub#1"
    assert misses[0]["differences"] == ["model: wanted gpt-4o-mini, got gpt-4o",
                                        "message: wanted 'exact words', got 'something else'"]


def test_reset_removes_stubs_and_ids_start_again(poeti, client):
    old = poeti.stub("old")
    ask(client)
    poeti.reset()
    new = poeti.stub("new")

    assert ask(client) == "new"
    assert new.id == 1
    assert old.requests == []  # that server state, and its journal, are gone
    old.remove()  # does not take away the new stub#1
    assert ask(client) == "new"


# --- checked like scenario files --------------------------------------------------------------

@pytest.mark.parametrize(("call", "message"), [
    (lambda s: s.stub("x", modle="gpt-4o"), r"^match\.modle: unknown key; did you mean 'model'\? expected one of "),
    (lambda s: s.stub({"contnet": "x"}), r"^respond\.contnet: unknown key; did you mean 'content'\? "),
    (lambda s: s.stub({"error": "rate_limit_exceded"}), r"did you mean 'rate_limit_exceeded'\?"),
    (lambda s: s.stub({"fault": "explode"}), r"^respond\.fault: 'explode' is not a fault kind; "),
    (lambda s: s.stub("x", times=0), r"^times: 0 is out of range; expected an integer from 1 to "),
    (lambda s: s.stub("x", tools="yes"), r"^match\.tools: 'yes' is not true, false or a list of tool names$"),
    (lambda s: s.stub("{{ open('/etc/passwd') }}"), r"^respond\.content: "),
    (lambda s: s.stub([]), r"^respond: expected at least 1 item$"),
])
def test_a_bad_stub_is_a_value_error_with_the_validators_message(poeti, call, message):
    with pytest.raises(ValueError, match=message):
        call(poeti)
    assert poeti.stubs == []


def test_use_takes_inline_scenarios_beside_names(poeti, client):
    inline = {"name": "mine", "rules": [{"match": {"model": "gpt-4o-mini"}, "respond": {"content": "inline"}}]}

    poeti.use(inline, "rate-limited")

    assert ask(client, model="gpt-4o-mini") == "inline"
    with pytest.raises(openai.RateLimitError):
        ask(client)
    with pytest.raises(ConfigError, match=r"^<inline bad>:1: rules\[0\]\.respond\.contnet: unknown key; did you mean"):
        poeti.use({"name": "bad", "rules": [{"respond": {"contnet": "x"}}]})  # as a file's problems are reported


def test_two_copies_of_a_scenario_count_their_rules_apart(poeti, client, http):
    """Playbook.describe used to find a rule's counter by equality: both copies showed the first's."""
    poeti.use("retry-then-succeed", "retry-then-succeed")
    for _ in range(3):
        with pytest.raises(openai.RateLimitError):
            ask(client)

    active = http.get("/__admin/scenarios").json()["active"]

    assert [s["rules"][0]["used"] for s in active] == [2, 1]


# --- in the test's own event loop ------------------------------------------------------------------

async def test_stubs_in_an_async_server():
    async with MockServer() as server:
        stub = server.stub(["一", "二"], model="gpt-4o-mini")
        async with openai.AsyncOpenAI(base_url=server.base_url, api_key=server.api_key, max_retries=0) as client:
            answers = [
                (await client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}]))
                .choices[0].message.content
                for _ in range(3)
            ]
        async with httpx.AsyncClient(base_url=server.url) as admin:
            listed = (await admin.get("/__admin/stubs")).json()["stubs"]

        assert answers == ["一", "二", "二"]
        assert stub.calls == 3 and len(stub.requests) == 3
        assert listed[0]["calls"] == 3
        stub.remove()
        assert server.stubs == []


# --- the plugin: real test files, a fresh `poeti` per test, and xdist ---------------------------

STUB_TESTS = '''
import openai
import pytest


def ask(poeti, model="gpt-4o"):
    client = openai.OpenAI(base_url=poeti.base_url, api_key=poeti.api_key, max_retries=0)
    return client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}]).choices[0].message.content


@pytest.fixture
def broad(poeti):
    return poeti.stub("from the fixture")


@pytest.mark.parametrize("n", range(4))
def test_a_stub_per_test(poeti, n):
    assert poeti.stubs == []  # nothing left over from the test before, on this worker
    stub = poeti.stub(f"answer {n}")
    assert ask(poeti) == f"answer {n}"
    assert stub.id == 1 and stub.calls == 1


def test_a_test_overrides_its_fixtures_stub(poeti, broad):
    assert ask(poeti) == "from the fixture"
    poeti.stub("from the test")
    assert ask(poeti) == "from the test"
    assert broad.calls == 1


@pytest.mark.poeti_scenario("rate-limited")
def test_a_stub_beats_the_markers_scenario(poeti):
    poeti.stub("not limited", model="gpt-4o-mini")
    assert ask(poeti, "gpt-4o-mini") == "not limited"
    with pytest.raises(openai.RateLimitError):
        ask(poeti)


@pytest.mark.asyncio
async def test_async_client(poeti):
    poeti.stub(["a", "b"])
    async with openai.AsyncOpenAI(base_url=poeti.base_url, api_key=poeti.api_key, max_retries=0) as client:
        got = [(await client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}]))
               .choices[0].message.content for _ in range(3)]
    assert got == ["a", "b", "b"]


def test_a_typo_fails_with_did_you_mean(poeti):
    poeti.stub("x", modle="gpt-4o")


def test_a_retry_verdict_fails_the_test(poeti):
    poeti.stub({"error": "service_unavailable"})
    with pytest.raises(openai.InternalServerError):
        ask(poeti)
    poeti.assert_retried()
'''


def test_stubs_in_real_test_files_under_xdist(pytester: pytest.Pytester):
    pytester.makepyfile(test_stubs_usage=STUB_TESTS)

    result = pytester.runpytest_subprocess(*PYTEST_OPTIONS, "-n", "2", timeout=180)

    result.assert_outcomes(passed=7, failed=2)
    # each failure on its own: xdist reports the two workers' failures in either order
    result.stdout.fnmatch_lines(["*ValueError: match.modle: unknown key; did you mean 'model'?*"])
    result.stdout.fnmatch_lines(["*AssertionError: call 1 gave up after a 503 without retrying*"])
