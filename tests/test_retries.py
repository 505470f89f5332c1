"""Retry verdicts: `poeti.attempts()` and `poeti.assert_retried()` against real retry loops.

The official SDK's own loop and the reference's `chat_with_retry` pass; clients
that retry too soon, retry a 400, never retry, retry too often or never back
off each fail with a sentence naming the attempt at fault. Waits are kept to
tenths of a second (Retry-After "0.1": the SDK honours fractions), and every
check on a wait has a wide margin: a measured wait is the client's sleep plus
however late a loaded machine let it send, so a test never needs a wait to come
out short, and a backoff that must look exponential (or must not) is given a
clear ratio. The one verdict whose line is a few milliseconds (a retry at once)
is also checked on journal entries made by hand.
"""

from __future__ import annotations

import contextlib
import itertools
import re
import time

import httpx
import openai
import pytest
from payloads import chat_with_retry

from mockpoeti.retries import AT_ONCE_S, group_attempts, judge

RATE_LIMITED = {"error": "rate_limit_exceeded", "headers": {"Retry-After": "0.1"}}
SERVER_ERROR = {"error": "internal_error"}  # a 500: no Retry-After, the client's backoff sets the pace
ACME_KEY = "sk-poeti-acme-production-0001"  # fixtures/accounts.yaml


def sdk(poeti, max_retries: int = 0, api_key: str | None = None) -> openai.OpenAI:
    return openai.OpenAI(base_url=poeti.base_url, api_key=api_key or poeti.api_key, max_retries=max_retries)


def create(client: openai.OpenAI, text: str = "hello"):
    return client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": text}])


def retry_by_hand(poeti, waits: list[float]) -> httpx.Response:
    """A hand-written client: the same request again after each of `waits`, whatever the answer."""
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hello"}]}
    with httpx.Client(base_url=poeti.base_url, headers={"Authorization": f"Bearer {poeti.api_key}"}) as http:
        answer = http.post("/chat/completions", json=body)
        for wait in waits:
            time.sleep(wait)
            answer = http.post("/chat/completions", json=body)
    return answer


def verdict_of(poeti, **options) -> str:
    with pytest.raises(AssertionError) as caught:
        poeti.assert_retried(**options)
    return str(caught.value)


# --- clients that retry well pass ----------------------------------------------------------

def test_the_sdk_retry_loop_honours_retry_after(poeti):
    poeti.stub([RATE_LIMITED, RATE_LIMITED, "at last"])

    reply = create(sdk(poeti, max_retries=2))

    calls = poeti.attempts()
    assert reply.choices[0].message.content == "at last"
    assert len(calls) == 1
    (call,) = calls
    assert [a["status"] for a in call] == [429, 429, 200]
    assert [a["headers"]["x-stainless-retry-count"] for a in call] == ["0", "1", "2"]
    assert call[0]["wait_s"] is None
    assert all(a["wait_s"] >= 0.095 for a in call[1:])  # the SDK waited what Retry-After said
    assert [a["retry_after"] for a in call] == [0.1, 0.1, None]
    assert poeti.assert_retried(max_attempts=3) == calls


def test_the_sdk_backs_off_exponentially_without_retry_after(poeti):
    poeti.stub([SERVER_ERROR, SERVER_ERROR, "at last"])

    create(sdk(poeti, max_retries=2))

    (call,) = poeti.assert_retried(max_attempts=3)
    first, second = call[1]["wait_s"], call[2]["wait_s"]
    assert 0.3 <= first <= 2.0 and 0.6 <= second <= 4.0  # 0.5 s then 1 s, less up to 25% jitter
    assert second > first


@pytest.mark.poeti_scenario("retry-then-succeed")
def test_the_sdk_with_the_shipped_retry_then_succeed_scenario(poeti):
    reply = create(sdk(poeti, max_retries=2))

    (call,) = poeti.assert_retried(max_attempts=3)
    assert reply.choices[0].message.content
    assert [a["status"] for a in call] == [429, 429, 200]
    assert [a["retry_after"] for a in call[:2]] == [1.0, 1.0]
    assert all(a["wait_s"] >= 0.95 for a in call[1:])


@pytest.mark.parametrize("failure", [RATE_LIMITED, SERVER_ERROR, {"error": "upstream_error"}], ids=["429", "500", "502"])
def test_the_references_chat_with_retry_passes(poeti, failure):
    poeti.stub([failure, failure, "at last"])

    # 0.2 s then 0.4 s: the verdict wants 1.3x growth, which a late first send of up to ~0.1 s leaves
    reply = chat_with_retry(sdk(poeti), time.sleep, 0.2, model="gpt-4o", messages=[{"role": "user", "content": "hello"}])

    (call,) = poeti.assert_retried(max_attempts=3)
    assert reply.choices[0].message.content == "at last"
    assert [a["headers"]["x-stainless-retry-count"] for a in call] == ["0", "0", "0"]  # grouped by key and body
    assert call[2]["wait_s"] > call[1]["wait_s"] >= 0.195


def test_the_reference_gives_up_after_three_rate_limits_and_that_is_fine(poeti):
    poeti.stub(RATE_LIMITED)

    with pytest.raises(openai.RateLimitError):
        chat_with_retry(sdk(poeti), time.sleep, 0.1, model="gpt-4o", messages=[{"role": "user", "content": "hello"}])

    (call,) = poeti.assert_retried(max_attempts=3)
    assert [a["status"] for a in call] == [429, 429, 429]


def test_a_400_that_is_not_retried_is_fine(poeti):
    poeti.stub({"error": "invalid_request"})

    with pytest.raises(openai.BadRequestError):
        chat_with_retry(sdk(poeti), time.sleep, 0.1, model="gpt-4o", messages=[{"role": "user", "content": "hello"}])

    assert len(poeti.assert_retried()) == 1


# --- clients that retry badly fail, with the attempt at fault named ------------------------------

def test_a_retry_sooner_than_retry_after(poeti):
    poeti.stub([{"error": "rate_limit_exceeded"}, "ok"])  # a scripted 429 says Retry-After: 1

    retry_by_hand(poeti, [0.2])

    message = verdict_of(poeti)
    assert re.match(r"call 1: attempt 2 came 0\.\d+ s after a 429 that said Retry-After: 1\n", message), message
    assert re.search(r"^  call 1 \(POST /v1/chat/completions\): 429 \(Retry-After: 1\) -> 0\.\d+ s -> 200$", message, re.M)
    assert len(poeti.assert_retried(honours_retry_after=False)) == 1  # waits are not judged against it then


def test_a_retried_400(poeti):
    poeti.stub([{"error": "invalid_request"}, "ok"])

    retry_by_hand(poeti, [0.1])

    assert verdict_of(poeti).splitlines()[0] == (
        "call 1: attempt 2 retried a 400, which retrying cannot fix (only 429, 500, 502, 503, 504 are worth retrying)"
    )
    assert poeti.assert_retried(retries_only_on=(400, 429))  # if the client's API says a 400 may pass


def test_a_client_that_never_retries(poeti):
    poeti.stub({"error": "service_unavailable"})

    with pytest.raises(openai.InternalServerError):
        create(sdk(poeti, max_retries=0))

    assert verdict_of(poeti).splitlines()[0] == "call 1 gave up after a 503 without retrying"
    assert poeti.assert_retried(max_attempts=1)  # one attempt was all it was allowed


def test_too_many_attempts(poeti):
    poeti.stub(SERVER_ERROR)

    retry_by_hand(poeti, [0.05, 0.1, 0.2, 0.4])

    assert verdict_of(poeti, max_attempts=3).splitlines()[0] == "call 1 made 5 attempts; at most 3 were allowed"
    assert len(poeti.assert_retried(backoff="any")[0]) == 5  # the count is judged here, not the growth of 50 ms waits


def test_a_backoff_that_does_not_grow(poeti):
    poeti.stub([SERVER_ERROR, SERVER_ERROR, "ok"])

    retry_by_hand(poeti, [0.4, 0.2])  # shrinking: however late either send, not 1.3x

    message = verdict_of(poeti)
    assert re.match(r"call 1: attempt 3 came 0\.\d+ s after a 500, 0\.\d times the 0\.\d+ s before attempt 2: "
                    r"exponential backoff should about double each wait\n", message), message
    assert poeti.assert_retried(backoff="any")


def test_a_retry_at_once(poeti):
    poeti.stub([SERVER_ERROR, "ok"])

    retry_by_hand(poeti, [0])

    (call,) = poeti.attempts()
    if call[1]["wait_s"] < AT_ONCE_S:  # a loaded machine may have sent it later than that: then see below
        assert re.match(r"call 1: attempt 2 came 0\.0\d+ s after a 500: a retry at once, with no backoff", verdict_of(poeti))
    # the sentence itself, on a journal made by hand: answered at 0.1 s, retried 5 ms later
    assert judge(group_attempts([entry(1, 0, 500), entry(2, 0.105, 200)])) == [
        "call 1: attempt 2 came 0.005 s after a 500: a retry at once, with no backoff"]


def test_nothing_failed_so_nothing_was_judged(poeti):
    create(sdk(poeti))

    assert verdict_of(poeti).startswith("no request failed, so nothing was retried (1 call in the journal)")


# --- what makes a call -----------------------------------------------------------------------------

def test_calls_are_told_apart_by_body_key_and_success(poeti):
    poeti.stub([SERVER_ERROR, "ok"], message="one")
    poeti.stub([SERVER_ERROR, "ok"], message="two")
    poeti.stub(SERVER_ERROR, key="sk-poeti-acme-*")
    mine, acme = sdk(poeti), sdk(poeti, api_key=ACME_KEY)

    for client, text in [(mine, "one"), (mine, "two"), (mine, "one"), (mine, "two"), (mine, "one")]:
        with contextlib.suppress(openai.InternalServerError):
            create(client, text)
    for client in (acme, mine):  # the same body from two keys: two calls
        with contextlib.suppress(openai.InternalServerError):
            create(client, "three")

    calls = poeti.attempts()
    texts = [[a["body"]["messages"][0]["content"] for a in call] for call in calls]
    statuses = [[a["status"] for a in call] for call in calls]
    assert texts == [["one", "one"], ["two", "two"], ["one"], ["three"], ["three"]]
    assert statuses == [[500, 200], [500, 200], [200], [500], [200]]  # after a success, the same request is a new call


def entry(n: int, at: float, status: int | None, body: str = "same", retry_count: str | None = None) -> dict:
    headers = {"Authorization": "Bearer sk-poeti-abcd..."}
    if retry_count is not None:
        headers["X-Stainless-Retry-Count"] = retry_count
    return {"id": n, "method": "POST", "path": "/v1/chat/completions", "query": {}, "headers": headers,
            "body": {"q": body}, "status": status, "monotonic_s": at, "duration_ms": 100.0, "response_headers": {}}


@pytest.mark.parametrize(("entries", "shape"), [
    ([entry(1, 0, 500), entry(2, 29.0, 200)], [[1, 2]]),  # 28.9 s after the failure: a retry
    ([entry(1, 0, 500), entry(2, 30.2, 200)], [[1], [2]]),  # 30.1 s: a new call
    ([entry(1, 0, 500), entry(2, 0.05, 500)], [[1], [2]]),  # sent before the first was answered: concurrent
    ([entry(1, 0, 500), entry(2, 1, 500, body="other"), entry(3, 2, 200)], [[1, 3], [2]]),
    ([entry(1, 0, 200, retry_count="0"), entry(2, 5, 200, retry_count="1")], [[1, 2]]),  # the SDK says so
    ([entry(1, 0, 500, retry_count="0"), entry(2, 0, 500, retry_count="0"), entry(3, 1, 200, retry_count="1"),
      entry(4, 1, 200, retry_count="1")], [[1, 3], [2, 4]]),  # two identical calls at once, retried at once
])
def test_grouping(entries, shape):
    calls = group_attempts(entries)
    assert [[a["id"] for a in call] for call in calls] == shape
    for call in calls:
        assert call[0]["wait_s"] is None
        for before, after in itertools.pairwise(call):
            assert after["wait_s"] == round(after["monotonic_s"] - before["monotonic_s"] - 0.1, 3)


def test_retry_after_up_to_a_minute_is_binding_and_beyond_it_is_not():
    def call(retry_after: str, wait: float) -> list[list[dict]]:
        first = entry(1, 0, 429)
        first["response_headers"] = {"Retry-After": retry_after}
        return group_attempts([first, entry(2, 0.1 + wait, 200)])

    assert judge(call("2", 1.92)) == []  # within 5%
    assert judge(call("2", 1.7)) == ["call 1: attempt 2 came 1.7 s after a 429 that said Retry-After: 2"]
    assert judge(call("600", 20)) == []  # ten minutes: a client may cap it (the SDKs give up instead)
    assert judge(call("45", 50)) == []  # a long Retry-After honoured: still the same call, 50 s on
