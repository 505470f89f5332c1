"""The admin API under /__admin/: health, the request journal, reset, scenarios
switched at run time, the clock, and the optional admin token.

Each test runs its own MockServer on 127.0.0.1, port 0, in a thread, and
talks to it with httpx as any client would.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from mockpoeti import MockServer

DEFAULT_KEY = "sk-poeti-mockpoeti-default-key"
HELLO = {"model": "gpt-4o", "messages": [{"role": "user", "content": "Explain quantum entanglement."}]}
CLOCK = "2026-04-09T14:23:18Z"
CLOCK_UNIX = 1775744598
SHIPPED = sorted(p.stem for p in (Path(__file__).resolve().parent.parent / "scenarios").glob("*.yaml"))
ISO_SECOND = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")


@contextmanager
def running(**options) -> Iterator[tuple[MockServer, httpx.Client]]:
    """A server and an httpx client for it that sends the default key."""
    with MockServer(**options) as server:
        with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {server.api_key}"}) as http:
            yield server, http


@pytest.fixture
def server_and_http() -> Iterator[tuple[MockServer, httpx.Client]]:
    with running(seed=7) as pair:
        yield pair


@pytest.fixture
def server(server_and_http) -> MockServer:
    return server_and_http[0]


@pytest.fixture
def http(server_and_http) -> httpx.Client:
    return server_and_http[1]


def chat(http: httpx.Client, key: str | None = None, **extra) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else None
    return http.post("/v1/chat/completions", json={**HELLO, **extra}, headers=headers)


def assert_error(response: httpx.Response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "status"}
    assert body["error"]["code"] == code
    assert body["error"]["status"] == status
    assert body["error"]["message"]
    return body["error"]


# --- health ---------------------------------------------------------------------

def test_health_says_ok_and_counts_what_the_server_saw(http):
    before = http.get("/__admin/health")
    assert before.status_code == 200
    assert before.headers["X-Trace-ID"]
    assert before.json() == {"status": "ok", "seed": 7, "traces": 0, "requests": 0}

    assert chat(http).status_code == 200
    assert http.get("/v1/models").status_code == 200

    after = http.get("/__admin/health").json()
    assert (after["traces"], after["requests"]) == (1, 2)  # a chat call is traced; both are journaled


def test_admin_needs_no_key_by_default(server):
    assert httpx.get(server.url + "/__admin/health").status_code == 200


# --- the request journal ---------------------------------------------------------

def test_the_journal_records_each_call_newest_last_with_its_trace_id(server, http):
    http.put("/__admin/clock", json={"time": CLOCK}).raise_for_status()
    created = http.post("/api/v1/api-keys", json={"name": "journal"})
    secret = created.json()["data"]["key"]
    first = http.post("/v1/chat/completions?note=first", json=HELLO, headers={"Authorization": f"Bearer {secret}"})
    http.get("/__admin/health")  # admin calls are not journaled
    models = http.get("/v1/models", params={"page": "2"}, headers={"X-Api-Key": secret})
    refused = chat(http, key="sk-poeti-unknown-but-secret-0123456789")
    http.get("/__admin/scenarios")
    responses = [created, first, models, refused]

    listed = http.get("/__admin/requests").json()
    entries = listed["requests"]

    assert server.requests == entries  # the Python view and the admin API agree
    assert listed["meta"]["total"] == 4
    assert [(e["method"], e["path"], e["status"]) for e in entries] == [
        ("POST", "/api/v1/api-keys", 200),
        ("POST", "/v1/chat/completions", 200),
        ("GET", "/v1/models", 200),
        ("POST", "/v1/chat/completions", 401),
    ]
    assert [e["trace_id"] for e in entries] == [r.headers["X-Trace-ID"] for r in responses]
    assert [e["query"] for e in entries] == [{}, {"note": "first"}, {"page": "2"}, {}]
    assert [e["body"] for e in entries[:3]] == [{"name": "journal"}, HELLO, None]
    for entry in entries:
        assert entry["time"] == CLOCK
        assert isinstance(entry["duration_ms"], (int, float)) and entry["duration_ms"] >= 0
        assert entry["headers"]["Authorization"].startswith("Bearer sk-poeti-")
    assert entries[1]["headers"]["Authorization"] != f"Bearer {secret}"


@pytest.mark.parametrize(
    "key, path",
    [
        ("sk-poeti-unknown-but-secret-0123456789", "/v1/chat/completions"),  # refused by auth
        (DEFAULT_KEY, "/v1/chat/completion"),  # no such path
    ],
    ids=["unknown key", "unknown path"],
)
def test_the_journal_keeps_the_body_of_a_refused_call(server, http, key, path):
    refused = http.post(path, json=HELLO, headers={"Authorization": f"Bearer {key}"})
    assert refused.status_code in (401, 404)
    [entry] = server.requests
    assert entry["status"] == refused.status_code
    assert entry["body"] == HELLO  # what the client sent, even though no handler read it


def test_no_full_key_ever_appears_in_the_journal(server, http):
    secret = http.post("/api/v1/api-keys", json={"name": "hidden"}).json()["data"]["key"]
    unknown = "sk-poeti-unknown-but-secret-0123456789"
    chat(http, key=secret)
    http.get("/v1/models", headers={"Authorization": f"Bearer {unknown}"})
    http.get("/v1/models", headers={"Authorization": secret})  # no scheme
    http.get("/v1/models", headers={"X-Api-Key": secret, "api-key": secret})

    raw = http.get("/__admin/requests").text
    local = json.dumps(server.requests, ensure_ascii=False)

    assert len(server.requests) == 5
    for key in (DEFAULT_KEY, secret, unknown):
        assert key not in raw
        assert key not in local


def test_deleting_the_journal_empties_it(server, http):
    chat(http)
    http.get("/v1/models")
    assert len(server.requests) == 2

    cleared = http.delete("/__admin/requests")

    assert cleared.status_code == 200
    assert http.get("/__admin/requests").json()["requests"] == []
    assert server.requests == []
    http.get("/v1/models")
    assert [e["path"] for e in server.requests] == ["/v1/models"]


def test_the_journal_keeps_only_the_newest_entries():
    with running(max_journal=5) as (server, http):
        for i in range(8):
            http.get("/v1/models", params={"i": str(i)})

        listed = http.get("/__admin/requests").json()

        assert [e["query"]["i"] for e in listed["requests"]] == ["3", "4", "5", "6", "7"]
        assert listed["meta"]["total"] == 8
        assert server.requests == listed["requests"]


# --- reset ----------------------------------------------------------------------

def test_reset_restores_the_fixtures_clears_traffic_and_rewinds_the_seed():
    with running(seed=7, clock=CLOCK) as (server, http):
        first = chat(http)
        secret = http.post("/api/v1/api-keys", json={"name": "temporary"}).json()["data"]["key"]
        assert chat(http, key=secret).status_code == 200

        assert http.post("/__admin/reset").status_code == 200

        again = chat(http)  # the first request after reset: the same ids as the first ever
        assert again.headers["X-Trace-ID"] == first.headers["X-Trace-ID"]
        assert again.content == first.content
        assert_error(chat(http, key=secret), 401, "invalid_api_key")
        traces = http.get("/api/v1/request-traces").json()["data"]
        assert [t["trace_id"] for t in traces["items"]] == [again.headers["X-Trace-ID"]]
        assert http.get("/api/v1/usage").json()["data"]["total_requests"] == 1
        keys = http.get("/api/v1/api-keys").json()["data"]
        assert "temporary" not in [k["name"] for k in keys]
        assert [k["total_requests"] for k in keys if k["name"] == "默认 Key"] == [1]
        assert [e["path"] for e in server.requests] == [
            "/v1/chat/completions", "/v1/chat/completions", "/api/v1/request-traces", "/api/v1/usage", "/api/v1/api-keys",
        ]


def test_reset_unfreezes_a_clock_that_was_set(http):
    http.put("/__admin/clock", json={"time": CLOCK}).raise_for_status()
    http.post("/__admin/reset").raise_for_status()
    assert http.get("/__admin/clock").json()["frozen"] is False


def test_reset_rewinds_the_counters_of_the_start_scenarios():
    with running(scenarios=["retry-then-succeed"]) as (_, http):
        assert [chat(http).status_code for _ in range(3)] == [429, 429, 200]
        http.post("/__admin/reset").raise_for_status()
        assert chat(http).status_code == 429


# --- scenarios at run time --------------------------------------------------------

def test_scenarios_lists_the_shipped_library_and_what_is_active(http):
    listed = http.get("/__admin/scenarios")
    assert listed.status_code == 200
    assert listed.json()["available"] == SHIPPED
    assert listed.json()["active"] == []


def test_activating_a_scenario_by_name_and_switching_it_off(http):
    switched = http.put("/__admin/scenarios/active", json={"names": ["rate-limited"]})
    assert switched.status_code == 200
    assert [s["name"] for s in switched.json()["active"]] == ["rate-limited"]
    assert [s["name"] for s in http.get("/__admin/scenarios").json()["active"]] == ["rate-limited"]

    limited = chat(http)
    assert_error(limited, 429, "rate_limit_exceeded")
    assert limited.headers["Retry-After"] == "20"

    off = http.put("/__admin/scenarios/active", json={"names": []})
    assert off.status_code == 200
    assert off.json()["active"] == []
    assert chat(http).status_code == 200


def test_an_unknown_scenario_name_is_refused_naming_the_file(http):
    http.put("/__admin/scenarios/active", json={"names": ["rate-limited"]}).raise_for_status()

    refused = http.put("/__admin/scenarios/active", json={"names": ["no-such-scenario"]})

    error = assert_error(refused, 400, "invalid_request")
    assert "no-such-scenario" in error["message"] and "no shipped scenario" in error["message"]
    assert [s["name"] for s in http.get("/__admin/scenarios").json()["active"]] == ["rate-limited"]  # unchanged


def test_names_must_be_a_list_of_strings(http):
    error = assert_error(http.put("/__admin/scenarios/active", json={"names": "rate-limited"}), 400, "invalid_request")
    assert "names" in error["message"]


def test_an_inline_scenario_answers_at_once(http):
    inline = {
        "name": "inline-teapot",
        "rules": [{"match": {"endpoint": "chat"}, "respond": {"content": "I am a teapot"}}],
    }

    switched = http.put("/__admin/scenarios/active", json=inline)

    assert switched.status_code == 200
    assert [s["name"] for s in switched.json()["active"]] == ["inline-teapot"]
    answer = chat(http)
    assert answer.status_code == 200
    assert answer.json()["choices"][0]["message"]["content"] == "I am a teapot"


def test_an_invalid_inline_scenario_is_refused_naming_the_field(http):
    refused = http.put("/__admin/scenarios/active", json={"name": "typo", "rulez": []})
    error = assert_error(refused, 400, "invalid_request")
    assert "rulez" in error["message"]
    assert "did you mean 'rules'" in error["message"]
    assert chat(http).status_code == 200


# --- the clock --------------------------------------------------------------------

def test_the_clock_runs_on_wall_time_until_set(http):
    clock = http.get("/__admin/clock").json()
    assert clock["frozen"] is False
    assert ISO_SECOND.fullmatch(clock["now"])
    assert abs(clock["timestamp"] - datetime.now(UTC).timestamp()) < 60


def test_setting_the_clock_freezes_created_and_advance_moves_it(http):
    frozen = http.put("/__admin/clock", json={"time": CLOCK})
    assert frozen.status_code == 200
    assert frozen.json() == {"now": CLOCK, "timestamp": CLOCK_UNIX, "frozen": True}
    assert [chat(http).json()["created"] for _ in range(2)] == [CLOCK_UNIX, CLOCK_UNIX]

    moved = http.put("/__admin/clock", json={"advance": 3600})
    assert moved.status_code == 200
    assert moved.json()["now"] == "2026-04-09T15:23:18Z"
    assert chat(http).json()["created"] == CLOCK_UNIX + 3600
    assert http.get("/__admin/clock").json()["timestamp"] == CLOCK_UNIX + 3600


def test_the_clock_also_takes_unix_seconds(http):
    assert http.put("/__admin/clock", json={"time": CLOCK_UNIX}).json()["now"] == CLOCK


BAD_CLOCK = {
    "time not a time": ({"time": "next tuesday"}, "time"),
    "time null": ({"time": None}, "time"),
    "time a list": ({"time": [2026, 4, 9]}, "time"),
    "time past any calendar": ({"time": 1e300}, "time"),
    "time nan": ({"time": "nan"}, "time"),
    "time inf": ({"time": "inf"}, "time"),
    "frozen not a bool": ({"time": CLOCK, "frozen": "yes"}, "frozen"),
    "advance negative": ({"advance": -1}, "advance"),
    "advance a string": ({"advance": "3600"}, "advance"),
    "advance a bool": ({"advance": True}, "advance"),
    "good time, bad advance": ({"time": CLOCK, "advance": "soon"}, "advance"),  # refused whole: no time set either
    "misspelt time": ({"tme": CLOCK}, "time"),
    "empty": ({}, "time"),
}


@pytest.mark.parametrize("body, field", BAD_CLOCK.values(), ids=BAD_CLOCK.keys())
def test_a_bad_clock_setting_is_refused_naming_the_field_and_changes_nothing(body, field):
    with running(clock="2030-01-01T00:00:00Z") as (_, http):
        before = http.get("/__admin/clock").json()

        refused = http.put("/__admin/clock", json=body)

        error = assert_error(refused, 400, "invalid_request")
        assert field in error["message"]
        assert http.get("/__admin/clock").json() == before
        assert chat(http).status_code == 200  # and the server still serves


# --- the admin token ------------------------------------------------------------------

ADMIN_CALLS = [
    ("GET", "/__admin/health", None),
    ("GET", "/__admin/requests", None),
    ("DELETE", "/__admin/requests", None),
    ("POST", "/__admin/reset", None),
    ("GET", "/__admin/scenarios", None),
    ("PUT", "/__admin/scenarios/active", {"names": []}),
    ("GET", "/__admin/clock", None),
    ("PUT", "/__admin/clock", {"advance": 1}),
]


@pytest.fixture
def guarded() -> Iterator[MockServer]:
    with MockServer(admin_token="s3cret") as server:
        yield server


@pytest.mark.parametrize("method, path, body", ADMIN_CALLS, ids=[f"{m} {p}" for m, p, _ in ADMIN_CALLS])
def test_an_admin_token_guards_every_admin_call(guarded, method, path, body):
    with httpx.Client(base_url=guarded.url) as http:
        missing = http.request(method, path, json=body)
        wrong = http.request(method, path, json=body, headers={"X-Admin-Token": "guess"})
        right = http.request(method, path, json=body, headers={"X-Admin-Token": "s3cret"})

    for refused in (missing, wrong):
        assert_error(refused, 401, "invalid_api_key")
        assert refused.headers["X-Trace-ID"]
    assert right.status_code == 200, right.text


@pytest.mark.parametrize("token", [b"\xff\xfe", "s3cr\u00e9t".encode()], ids=["not utf-8", "utf-8"])
def test_an_admin_token_that_is_not_ascii_is_refused_not_crashed_on(guarded, token):
    refused = httpx.get(guarded.url + "/__admin/health", headers={"X-Admin-Token": token})
    assert_error(refused, 401, "invalid_api_key")


def test_the_admin_token_does_not_touch_the_api(guarded):
    with httpx.Client(base_url=guarded.url, headers={"Authorization": f"Bearer {guarded.api_key}"}) as http:
        assert chat(http).status_code == 200
        assert http.get("/v1/models").status_code == 200
