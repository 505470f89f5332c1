"""API keys: creation, revocation, validation, rate limits, budgets, and accounts
that never see each other."""

from __future__ import annotations

import re

import httpx
import openai
import pytest

ACME_KEY = "sk-poeti-acme-production-0001"
HELLO = [{"role": "user", "content": "hi"}]
KEY_FIELDS = {"id", "name", "key", "key_prefix", "is_active", "monthly_budget", "rate_limit",
              "total_requests", "total_cost", "created_at"}


def create_key(http: httpx.Client, **body) -> dict:
    response = http.post("/api/v1/api-keys", json={"name": "test key", **body})
    assert response.status_code == 200, response.text
    return response.json()["data"]


def sdk(poeti, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=poeti.base_url, api_key=key, max_retries=0)


@pytest.fixture
def acme(poeti):
    with httpx.Client(base_url=poeti.url, headers={"Authorization": f"Bearer {ACME_KEY}"}) as c:
        yield c


def ask(http: httpx.Client, key: str, model: str = "gpt-4o-mini") -> httpx.Response:
    return http.post(
        "/v1/chat/completions",
        json={"model": model, "messages": HELLO},
        headers={"Authorization": f"Bearer {key}"},
    )


def assert_error(response: httpx.Response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert body == {"error": {"code": code, "message": body["error"]["message"], "status": status}}
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    assert response.headers["X-Trace-ID"]
    return body["error"]


# --- creating ---------------------------------------------------------------

def test_create_answers_the_full_key_once(http):
    response = http.post("/api/v1/api-keys", json={"name": "我的应用", "monthly_budget": 50.0, "rate_limit": 100})
    assert response.status_code == 200
    assert response.headers["X-Trace-ID"]
    body = response.json()
    assert set(body) == {"code", "data"} and body["code"] == 200
    key = body["data"]
    assert set(key) == KEY_FIELDS
    assert key["name"] == "我的应用"
    assert key["key"].startswith("sk-poeti-") and len(key["key"]) >= 24
    assert key["key_prefix"].endswith("...")
    assert key["key"].startswith(key["key_prefix"].removesuffix("..."))
    assert len(key["key_prefix"].removesuffix("...")) < len(key["key"])
    assert key["is_active"] is True
    assert (key["monthly_budget"], key["rate_limit"]) == (50.0, 100)
    assert (key["total_requests"], key["total_cost"]) == (0, 0)
    assert isinstance(key["id"], int)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", key["created_at"])


def test_created_keys_are_distinct(http):
    keys = [create_key(http, name=f"k{i}") for i in range(3)]
    assert len({k["key"] for k in keys}) == 3
    assert len({k["id"] for k in keys}) == 3


def test_a_new_key_works_at_once(poeti, http):
    key = create_key(http)
    with sdk(poeti, key["key"]) as client:
        assert [m.id for m in client.models.list()]
        reply = client.chat.completions.create(model="gpt-4o", messages=HELLO)
    assert reply.choices[0].message.content
    listed = {k["id"]: k for k in http.get("/api/v1/api-keys").json()["data"]}
    assert listed[key["id"]]["total_requests"] == 1
    assert listed[key["id"]]["total_cost"] > 0


def test_no_listing_shows_a_full_key(poeti, http):
    key = create_key(http, name="secret")
    with sdk(poeti, key["key"]) as client:
        client.chat.completions.create(model="gpt-4o", messages=HELLO)
    listings = [
        http.get("/api/v1/api-keys"),
        http.get(f"/api/v1/api-keys/{key['id']}"),
        http.get("/api/v1/request-traces"),
        http.get("/api/v1/usage"),
        http.get("/__admin/requests"),
    ]
    listings.append(http.delete(f"/api/v1/api-keys/{key['id']}"))
    for response in listings:
        assert response.status_code == 200, response.request.url
        for secret in (key["key"], poeti.api_key):
            assert secret not in response.text, response.request.url
    (listed,) = [k for k in listings[0].json()["data"] if k["id"] == key["id"]]
    assert "key" not in listed
    assert listed["key_prefix"] == key["key_prefix"]


# --- revoking ---------------------------------------------------------------

def test_a_revoked_key_is_refused_and_its_call_still_traced(poeti, http):
    key = create_key(http, name="short-lived")
    revoked = http.delete(f"/api/v1/api-keys/{key['id']}")
    assert revoked.status_code == 200
    assert revoked.json()["code"] == 200
    assert revoked.json()["data"]["id"] == key["id"]
    assert revoked.json()["data"]["is_active"] is False
    listed = {k["id"]: k for k in http.get("/api/v1/api-keys").json()["data"]}
    assert listed[key["id"]]["is_active"] is False

    with sdk(poeti, key["key"]) as client, pytest.raises(openai.AuthenticationError) as caught:
        client.chat.completions.create(model="gpt-4o", messages=HELLO)
    assert caught.value.status_code == 401
    assert caught.value.code == "invalid_api_key"
    trace_id = caught.value.response.headers["X-Trace-ID"]

    traces = http.get(f"/api/v1/request-traces?key_id={key['id']}").json()["data"]
    assert [t["trace_id"] for t in traces["items"]] == [trace_id]
    assert traces["items"][0]["status"] == "error"
    assert traces["items"][0]["error_code"] == "invalid_api_key"
    assert_error(ask(http, key["key"]), 401, "invalid_api_key")


def test_a_revoked_key_is_refused_on_management_endpoints_too(http):
    key = create_key(http)
    http.delete(f"/api/v1/api-keys/{key['id']}").raise_for_status()
    headers = {"Authorization": f"Bearer {key['key']}"}
    for path in ("/api/v1/api-keys", "/api/v1/usage", "/api/v1/request-traces", "/v1/models"):
        assert_error(http.get(path, headers=headers), 401, "invalid_api_key")


# --- validation ---------------------------------------------------------------

INVALID_BODIES = [
    ({}, "name"),
    ({"name": ""}, "name"),
    ({"name": "x" * 129}, "name"),
    ({"name": 42}, "name"),
    ({"name": None}, "name"),
    ({"name": ["a"]}, "name"),
    ({"name": "ok", "monthly_budget": -1}, "monthly_budget"),
    ({"name": "ok", "monthly_budget": -0.01}, "monthly_budget"),
    ({"name": "ok", "monthly_budget": "10"}, "monthly_budget"),
    ({"name": "ok", "monthly_budget": True}, "monthly_budget"),
    ({"name": "ok", "rate_limit": 0}, "rate_limit"),
    ({"name": "ok", "rate_limit": -5}, "rate_limit"),
    ({"name": "ok", "rate_limit": 1.5}, "rate_limit"),
    ({"name": "ok", "rate_limit": "10"}, "rate_limit"),
    ({"name": "ok", "rate_limit": True}, "rate_limit"),
]


@pytest.mark.parametrize(("body", "field"), INVALID_BODIES, ids=[repr(b)[:40] for b, _ in INVALID_BODIES])
def test_invalid_key_bodies_name_the_field(http, body, field):
    before = http.get("/api/v1/api-keys").json()["data"]
    error = assert_error(http.post("/api/v1/api-keys", json=body), 400, "invalid_request")
    assert field in error["message"]
    assert http.get("/api/v1/api-keys").json()["data"] == before


VALID_BODIES = [
    ({"name": "x"}, None, None),
    ({"name": "x" * 128}, None, None),
    ({"name": "ok", "monthly_budget": None, "rate_limit": None}, None, None),
    ({"name": "ok", "monthly_budget": 0}, 0, None),
    ({"name": "ok", "monthly_budget": 12.5, "rate_limit": 1}, 12.5, 1),
]


@pytest.mark.parametrize(("body", "budget", "rate_limit"), VALID_BODIES, ids=[repr(b)[:40] for b, _, _ in VALID_BODIES])
def test_valid_key_bodies_are_accepted(http, body, budget, rate_limit):
    key = create_key(http, **body)
    assert key["name"] == body["name"]
    assert key["monthly_budget"] == budget
    assert key["rate_limit"] == rate_limit


# --- limits ---------------------------------------------------------------------

def test_rate_limit_answers_429_with_retry_after_until_the_minute_passes(poeti, http):
    key = create_key(http, rate_limit=3)
    with sdk(poeti, key["key"]) as client:
        for _ in range(3):
            client.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
        with pytest.raises(openai.RateLimitError) as caught:
            client.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
        assert caught.value.status_code == 429
        assert caught.value.code == "rate_limit_exceeded"

        refused = ask(http, key["key"])
        assert_error(refused, 429, "rate_limit_exceeded")
        retry_after = refused.headers["Retry-After"]
        assert retry_after.isdigit() and 1 <= int(retry_after) <= 60

        httpx.put(poeti.url + "/__admin/clock", json={"advance": 61}).raise_for_status()
        reply = client.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    assert reply.choices[0].message.content


def test_retry_after_counts_down_with_the_clock(poeti, http):
    key = create_key(http, rate_limit=2)
    assert ask(http, key["key"]).status_code == 200
    assert ask(http, key["key"]).status_code == 200
    httpx.put(poeti.url + "/__admin/clock", json={"advance": 45}).raise_for_status()
    refused = ask(http, key["key"])
    assert_error(refused, 429, "rate_limit_exceeded")
    assert 14 <= int(refused.headers["Retry-After"]) <= 15


def test_rate_limit_is_per_key(poeti, http):
    limited = create_key(http, rate_limit=1)
    assert ask(http, limited["key"]).status_code == 200
    assert_error(ask(http, limited["key"]), 429, "rate_limit_exceeded")
    assert ask(http, poeti.api_key).status_code == 200


def test_a_zero_budget_answers_402(poeti, http):
    key = create_key(http, monthly_budget=0)
    assert_error(ask(http, key["key"]), 402, "budget_exceeded")
    with sdk(poeti, key["key"]) as client, pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(model="gpt-4o", messages=HELLO)
    assert caught.value.status_code == 402
    assert caught.value.code == "budget_exceeded"


def test_a_small_budget_is_exhausted_by_its_calls(poeti, http):
    budget = 0.0001
    key = create_key(http, monthly_budget=budget)
    costs = []
    for _ in range(50):
        response = ask(http, key["key"], model="qwen-turbo")
        if response.status_code != 200:
            break
        trace = http.get(f"/api/v1/request-traces/{response.headers['X-Trace-ID']}").json()["data"]
        costs.append(trace["cost_usd"])
    assert_error(response, 402, "budget_exceeded")
    assert len(costs) >= 2, "a budget several calls big lets several calls through"
    assert sum(costs[:-1]) < budget <= sum(costs)
    assert_error(ask(http, key["key"], model="qwen-turbo"), 402, "budget_exceeded")


def test_a_monthly_budget_renews_with_the_month(poeti, http):
    httpx.put(poeti.url + "/__admin/clock", json={"time": "2026-04-29T10:00:00Z"}).raise_for_status()
    key = create_key(http, monthly_budget=0.000001)
    assert ask(http, key["key"], model="gpt-4o").status_code == 200
    assert_error(ask(http, key["key"], model="gpt-4o"), 402, "budget_exceeded")
    httpx.put(poeti.url + "/__admin/clock", json={"time": "2026-05-01T00:00:01Z"}).raise_for_status()
    assert ask(http, key["key"], model="gpt-4o").status_code == 200


# --- accounts ---------------------------------------------------------------------

def test_an_account_sees_only_its_own_keys(http, acme):
    acme_keys = acme.get("/api/v1/api-keys")
    default_keys = http.get("/api/v1/api-keys").json()["data"]
    assert acme_keys.status_code == 200
    assert sorted(k["name"] for k in acme_keys.json()["data"]) == ["Retired", "Staging", "生产环境 Key"]
    assert not {k["id"] for k in default_keys} & {k["id"] for k in acme_keys.json()["data"]}
    assert "sk-poeti-mock" not in acme_keys.text


def test_an_account_sees_only_its_own_traces_and_usage(poeti, http, acme):
    mine = ask(http, poeti.api_key)
    assert mine.status_code == 200
    trace_id = mine.headers["X-Trace-ID"]

    assert acme.get("/api/v1/request-traces").json()["data"] == {"items": [], "total": 0, "page": 1, "page_size": 20}
    assert_error(acme.get(f"/api/v1/request-traces/{trace_id}"), 404, "not_found")
    assert acme.get("/api/v1/usage").json()["data"]["total_requests"] == 0
    assert acme.get("/api/v1/request-traces/stats").json()["total_requests"] == 0

    theirs = ask(http, ACME_KEY)
    assert theirs.status_code == 200
    listed = http.get("/api/v1/request-traces").json()["data"]
    assert [t["trace_id"] for t in listed["items"]] == [trace_id]
    assert http.get("/api/v1/usage").json()["data"]["total_requests"] == 1
    assert_error(http.get(f"/api/v1/request-traces/{theirs.headers['X-Trace-ID']}"), 404, "not_found")


def test_a_foreign_key_id_looks_exactly_like_a_missing_one(http, acme):
    acme_ids = [k["id"] for k in acme.get("/api/v1/api-keys").json()["data"]]
    taken = set(acme_ids) | {k["id"] for k in http.get("/api/v1/api-keys").json()["data"]}
    foreign = acme_ids[0]
    # an id that never existed, as many digits long, so even Content-Length cannot tell them apart
    missing = next(i for i in range(10 ** (len(str(foreign)) - 1), 10 ** len(str(foreign))) if i not in taken)

    for method in ("DELETE", "GET"):
        foreign_answer = http.request(method, f"/api/v1/api-keys/{foreign}")
        missing_answer = http.request(method, f"/api/v1/api-keys/{missing}")
        assert_error(foreign_answer, 404, "not_found")
        assert_error(missing_answer, 404, "not_found")
        assert re.sub(rf"\b{foreign}\b", "ID", foreign_answer.text) == re.sub(rf"\b{missing}\b", "ID", missing_answer.text)
        per_response = {"x-trace-id", "x-request-id", "date"}
        assert {k: v for k, v in foreign_answer.headers.items() if k not in per_response} == {
            k: v for k, v in missing_answer.headers.items() if k not in per_response
        }

    still_active = {k["id"]: k for k in acme.get("/api/v1/api-keys").json()["data"]}[foreign]
    assert still_active["is_active"] is True


def test_authorization_values_are_remembered_in_bounded_memory(poeti):
    """Each Authorization value found is remembered (no parse, no hash next time), at most
    MAX_REMEMBERED_AUTHORIZATIONS of them: a client spelling one key many ways cannot grow it,
    and every spelling still names the key, before and after the memory is cleared."""
    from mockpoeti.books.state import MAX_REMEMBERED_AUTHORIZATIONS

    key = poeti.api_key
    spellings = [f"Bearer {' ' * n}{key}" for n in range(1, MAX_REMEMBERED_AUTHORIZATIONS + 200)]
    with httpx.Client(base_url=poeti.url) as client:
        for spelling in spellings[:: 40] + spellings:
            assert client.get("/v1/models", headers={"Authorization": spelling}).status_code == 200
        assert client.get("/v1/models", headers={"Authorization": "Bearer sk-poeti-nobody"}).status_code == 401
    remembered = poeti.call(lambda: dict(poeti.state.keys_by_authorization))
    assert 0 < len(remembered) <= MAX_REMEMBERED_AUTHORIZATIONS
    assert {k.secret for k in remembered.values()} == {key}
