"""Sessions: isolated twins inside one server, answered under /sessions/{id}/..., made and
ended over HTTP (`/__admin/sessions`) or from Python (`server.session()`).

What they must be: answered exactly as the root answers the same path, each against
its own keys, books, stubs, scenarios, journal, clock and seed; bounded in number and
idle time; cheap to make and freed when they end.
"""

from __future__ import annotations

import gc
import inspect
import os
import re
import subprocess
import sys
import time
from collections import deque
from pathlib import Path

import httpx
import openai
import pytest

from mockpoeti import MockServer
from mockpoeti.books.state import State
from mockpoeti.twin import ServerError

pytest_plugins = ["pytester"]

README = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")

CHAT = "/v1/chat/completions"
HELLO = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hello"}]}
# measured, not computed; and the length of an answer that holds a measure (a trace's latency_ms, 9 or 10)
VOLATILE = {"latency_ms", "avg_latency_ms", "duration_ms", "monotonic_s", "timeline", "Date", "Content-Length"}


def error_of(response: httpx.Response, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    assert response.json() == {"error": {"code": code, "message": response.json()["error"]["message"], "status": status}}
    assert response.headers["X-Trace-ID"].startswith("trace-poeti-")
    return response.json()["error"]["message"]


def make(server: MockServer, **options) -> dict:
    made = httpx.post(server.url + "/__admin/sessions", json=options)
    assert made.status_code == 201, made.text
    return made.json()


def keyed(key: str, url: str) -> httpx.Client:
    return httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"})


def steady(value):
    """A JSON answer without what is measured (latencies, durations): what must be equal."""
    if isinstance(value, dict):
        return {k: steady(v) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list):
        return [steady(v) for v in value]
    return value


# --- made, listed, ended ----------------------------------------------------------------

def test_a_session_is_made_listed_and_ended_over_http(poeti):
    made = httpx.post(poeti.url + "/__admin/sessions")  # no body: a fresh twin of the server as it started
    session = made.json()
    listed = httpx.get(poeti.url + "/__admin/sessions").json()
    one = httpx.get(poeti.url + f"/__admin/sessions/{session['id']}").json()
    with keyed(session["api_key"], session["root_url"]) as http:
        answered = http.post(CHAT, json=HELLO)
    ended = httpx.delete(poeti.url + f"/__admin/sessions/{session['id']}")
    with keyed(session["api_key"], session["root_url"]) as http:
        gone = [http.post(CHAT, json=HELLO), http.get("/v1/models"), http.get("/__admin/health"), http.get("/api/v1/usage")]
    again = httpx.delete(poeti.url + f"/__admin/sessions/{session['id']}")

    assert made.status_code == 201
    assert made.headers["Location"] == f"/__admin/sessions/{session['id']}"
    assert re.fullmatch(r"[0-9a-f]{12}", session["id"])
    assert session["root_url"] == f"{poeti.url}/sessions/{session['id']}"
    assert session["base_url"] == session["root_url"] + "/v1"
    assert session["api_key"] == f"sk-poeti-{session['id']}-session"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", session["created_at"])
    assert session["seed"] == 7 and session["scenarios"] == []  # the server's seed, its start's scenarios (none)
    assert answered.status_code == 200
    assert listed["meta"] == {"total": 1, "max_sessions": 100, "ttl_s": 600.0}
    [entry] = listed["sessions"]
    assert entry["id"] == session["id"] and entry["root_url"] == session["root_url"]
    assert "api_key" not in entry and entry["key_prefix"] == session["api_key"][:13] + "..."  # the full key: once
    assert (entry["requests"], entry["traces"]) == (0, 0)
    assert one["id"] == session["id"]
    assert ended.status_code == 200 and ended.json()["ended"] is True and ended.json()["requests"] == 1
    for response in gone:
        assert "No such session" in error_of(response, 404, "not_found")
    error_of(again, 404, "not_found")
    assert httpx.get(poeti.url + "/__admin/sessions").json()["sessions"] == []
    assert poeti.requests == []  # the root saw none of it


def test_the_root_url_follows_the_host_the_client_used(poeti):
    by_name = httpx.post(poeti.url + "/__admin/sessions", headers={"Host": f"localhost:{poeti.port}"}).json()
    odd = httpx.post(poeti.url + "/__admin/sessions", headers={"Host": "evil.example/<script>"}).json()

    assert by_name["root_url"] == f"http://localhost:{poeti.port}/sessions/{by_name['id']}"
    assert odd["root_url"] == f"http://127.0.0.1:{poeti.port}/sessions/{odd['id']}"  # not a Host fit for a URL
    with keyed(by_name["api_key"], by_name["base_url"]) as http:
        assert http.get("/models").status_code == 200


def test_every_session_can_be_ended_at_once(poeti):
    ids = [make(poeti)["id"] for _ in range(3)]
    ended = httpx.delete(poeti.url + "/__admin/sessions")

    assert ended.json() == {"ended": 3}
    for session_id in ids:
        error_of(httpx.get(f"{poeti.url}/sessions/{session_id}/__admin/health"), 404, "not_found")


@pytest.mark.parametrize("path", ["/sessions/", "/sessions/nope/v1/models", "/sessions/0123456789ab/__admin/health",
                                  "/sessions//v1/models"])
def test_a_path_naming_no_session_is_a_404_the_root_never_sees(poeti, path):
    response = httpx.get(poeti.url + path, headers={"Authorization": f"Bearer {poeti.api_key}"})

    assert "No such session" in error_of(response, 404, "not_found")
    assert poeti.requests == []


def test_sessions_are_made_at_the_root_only(poeti):
    session = make(poeti)
    nested = httpx.post(session["root_url"] + "/__admin/sessions")
    listed = httpx.get(session["root_url"] + "/__admin/sessions")

    assert "at the root" in error_of(nested, 404, "not_found")
    error_of(listed, 404, "not_found")
    assert len(httpx.get(poeti.url + "/__admin/sessions").json()["sessions"]) == 1


# --- answered as the root answers -------------------------------------------------------

def conversation(url: str, key: str) -> list:
    """The same requests, in the same order, answered by the root or a session: every
    answer with its X-Trace-ID, without what is measured (latencies)."""
    out = []
    with keyed(key, url) as http:
        for method, path, body in [
            ("POST", CHAT, HELLO),
            ("POST", CHAT, {**HELLO, "stream": True, "stream_options": {"include_usage": True}}),
            ("POST", CHAT, {"model": "no-such-model", "messages": HELLO["messages"]}),
            ("GET", "/v1/models", None),
            ("GET", "/v1/models/gpt-4o", None),
            ("GET", "/api/v1/usage", None),
            ("GET", "/api/v1/request-traces", None),
            ("GET", "/api/v1/request-traces/stats", None),
            ("GET", "/nowhere", None),
            ("PUT", "/__admin/scenarios/active", {"names": ["retry-then-succeed"]}),
            ("POST", CHAT, HELLO),
            ("POST", "/__admin/stubs", {"match": {"message": "weather"}, "respond": "晴"}),
            ("POST", CHAT, {"model": "gpt-4o", "messages": [{"role": "user", "content": "weather?"}]}),
            ("GET", "/__admin/stubs", None),
            ("PUT", "/__admin/clock", {"advance": 3600}),
            ("GET", "/__admin/clock", None),
            ("GET", "/__admin/scenarios", None),
            ("GET", "/__admin/health", None),
            ("GET", "/__admin/requests", None),
        ]:
            response = http.request(method, path, json=body)
            text = response.text
            body_seen = steady(response.json()) if text.startswith(("{", "[")) else text
            out.append((method, path, response.status_code, response.headers["X-Trace-ID"],
                        response.headers.get("Location"), body_seen))
        trace_id = out[0][3]
        out.append(steady(http.get(f"/api/v1/request-traces/{trace_id}").json()))
    return out


def test_a_session_answers_every_path_exactly_as_the_root_does(poeti, poeti_clock):
    session = make(poeti, seed=7, clock=poeti_clock)  # the fixture's server after its reset: seed 7, that clock
    poeti.reset(seed=7, clock=poeti_clock)  # as it was before this admin call drew a trace id

    at_root = conversation(poeti.url, poeti.api_key)  # the fixtures' keys are known in every session too
    in_session = conversation(session["root_url"], poeti.api_key)

    for root, there in zip(at_root, in_session, strict=True):
        if isinstance(root, tuple) and root[4] is not None:  # Location: the session's own path
            assert there[4] == session["root_url"].removeprefix(poeti.url) + root[4]
            root, there = root[:4] + root[5:], there[:4] + there[5:]
        assert there == root
    statuses = [step[2] for step in at_root[:-1]]
    assert statuses == [200, 200, 404, 200, 200, 200, 200, 200, 404, 200, 429, 201, 200, 200, 200, 200, 200, 200, 200]
    journal = in_session[-2][5]["requests"]
    assert [entry["path"] for entry in journal][:2] == [CHAT, CHAT]  # the journal shows paths inside the session
    assert [entry["trace_id"] for entry in journal] == [step[3] for step in in_session[:-1] if "__admin" not in step[1]]


def test_what_a_session_does_is_seen_nowhere_else(poeti):
    a, b = make(poeti, clock="2026-04-09T14:23:18Z"), make(poeti, clock="2026-04-09T14:23:18Z")
    with keyed(poeti.api_key, a["root_url"]) as in_a:
        for _ in range(3):
            assert in_a.post(CHAT, json=HELLO).status_code == 200
        in_a.post("/__admin/stubs", json={"respond": "stubbed in a"})
        in_a.put("/__admin/scenarios/active", json={"names": ["rate-limited"]})
        in_a.put("/__admin/clock", json={"advance": 86400 * 40})
        in_a.post("/api/v1/api-keys", json={"name": "made in a"})
        assert in_a.post(CHAT, json=HELLO).json()["choices"][0]["message"]["content"] == "stubbed in a"

    seen = {}
    for url in (poeti.url, b["root_url"]):
        with keyed(poeti.api_key, url) as other:
            journal = other.get("/__admin/requests").json()["requests"]  # first: what follows is journaled too
            seen[url] = (
                journal,
                other.get("/api/v1/usage").json()["data"]["total_requests"],
                other.get("/api/v1/request-traces").json()["data"]["total"],
                [(k["name"], k["total_requests"]) for k in other.get("/api/v1/api-keys").json()["data"]],
                other.get("/__admin/stubs").json()["stubs"],
                other.get("/__admin/scenarios").json()["active"],
                other.get("/__admin/clock").json()["now"],
                other.post(CHAT, json=HELLO).status_code,
            )

    fresh = ([], 0, 0, [("默认 Key", 0)], [], [], "2026-04-09T14:23:18Z", 200)
    assert seen[poeti.url] == fresh
    assert seen[b["root_url"]] == (*fresh[:3], [("默认 Key", 0), ("session", 0)], *fresh[4:])  # b has its own key


# --- options -----------------------------------------------------------------------------

def test_the_options_set_the_seed_clock_scenarios_and_key(poeti, tmp_path):
    inline = {"name": "inline-one", "rules": [{"match": {"model": "gpt-4o-mini"}, "respond": {"content": "inline"}}]}
    made = make(poeti, seed=42, clock="2030-01-02T03:04:05Z", scenario=["retry-then-succeed", inline],
                api_key="sk-poeti-my-own-key-0001")
    seeded = make(poeti, seed=42, clock=1893553445)  # the same moment, as Unix seconds

    with keyed("sk-poeti-my-own-key-0001", made["root_url"]) as http:
        health = http.get("/__admin/health").json()
        scenarios = [s["name"] for s in http.get("/__admin/scenarios").json()["active"]]
        statuses = [http.post(CHAT, json=HELLO).status_code for _ in range(3)]
        mini = http.post(CHAT, json={**HELLO, "model": "gpt-4o-mini"}).json()["choices"][0]["message"]["content"]
        created = http.post(CHAT, json=HELLO).json()["created"]
    with keyed(seeded["api_key"], seeded["root_url"]) as http:
        first = http.post(CHAT, json=HELLO).json()

    assert made["api_key"] == "sk-poeti-my-own-key-0001"
    assert made["seed"] == health["seed"] == 42
    assert made["clock"] == {"now": "2030-01-02T03:04:05Z", "frozen": True}
    assert made["scenarios"] == scenarios == ["retry-then-succeed", "inline-one"]
    assert statuses == [429, 429, 200]
    assert mini == "inline"
    assert created == 1893553445
    assert first["created"] == 1893553445 and first["id"].startswith("chatcmpl-poeti-")


@pytest.mark.parametrize(("body", "field"), [
    ({"seed": True}, "seed"),
    ({"seed": -1}, "seed"),
    ({"seed": 2**63}, "seed"),
    ({"seed": "7"}, "seed"),
    ({"clock": "yesterday"}, "clock"),
    ({"clock": [1]}, "clock"),
    ({"api_key": "has space"}, "api_key"),
    ({"api_key": "k" * 257}, "api_key"),
    ({"api_key": ""}, "api_key"),
    ({"scenario": 7}, "scenario"),
    ({"scenario": ["nope-not-shipped"]}, "scenario[0]"),
    ({"scenario": ["/etc/passwd.yaml"]}, "scenario[0]"),
    ({"scenario": ["retry-then-succeed", 3]}, "scenario[1]"),
    ({"scenario": ["retry-then-succeed"] * 33}, "scenario"),
    ({"scenario": [{"name": "x", "rules": [{"respond": {"fault": {"kind": "explode"}}}]}]}, "explode"),
    ({"seeed": 7}, "seeed"),
    ([1, 2], "JSON object"),
])
def test_options_that_cannot_work_are_a_400_naming_the_field(poeti, body, field):
    refused = httpx.post(poeti.url + "/__admin/sessions", json=body)

    assert field in error_of(refused, 400, "invalid_request")
    assert httpx.get(poeti.url + "/__admin/sessions").json()["sessions"] == []


def test_a_body_that_is_not_json_is_a_400(poeti):
    refused = httpx.post(poeti.url + "/__admin/sessions", content=b"{seed: 7", headers={"Content-Type": "application/json"})
    error_of(refused, 400, "invalid_request")


# --- keys -------------------------------------------------------------------------------

def test_a_sessions_keys_are_its_own(poeti, http):
    a, b = make(poeti, seed=3), make(poeti, seed=3)  # the same seed: keys they create would match but for the id
    with keyed(a["api_key"], a["root_url"]) as in_a:
        created = in_a.post("/api/v1/api-keys", json={"name": "mine"}).json()["data"]["key"]
        own = in_a.get("/v1/models").status_code
    with keyed(b["api_key"], b["root_url"]) as in_b:
        b_created = in_b.post("/api/v1/api-keys", json={"name": "mine"}).json()["data"]["key"]

    assert own == 200
    assert created.startswith(f"sk-poeti-{a['id']}-") and b_created.startswith(f"sk-poeti-{b['id']}-")
    assert created.removeprefix(f"sk-poeti-{a['id']}-") == b_created.removeprefix(f"sk-poeti-{b['id']}-")  # same seed
    for key in (a["api_key"], created):
        for url in (b["root_url"], poeti.url):
            with keyed(key, url) as elsewhere:
                error_of(elsewhere.get("/v1/models"), 401, "invalid_api_key")
                error_of(elsewhere.post(CHAT, json=HELLO), 401, "invalid_api_key")
    assert http.get("/api/v1/usage").json()["data"]["total_requests"] == 0


def test_the_fixtures_keys_are_known_in_every_session_with_counters_of_its_own(poeti, http):
    session = make(poeti)
    with keyed("sk-poeti-acme-staging-0002", session["root_url"]) as acme:
        assert acme.post(CHAT, json=HELLO).status_code == 200
        in_session = {k["name"]: k["total_requests"] for k in acme.get("/api/v1/api-keys").json()["data"]}
        staging = next(k["id"] for k in acme.get("/api/v1/api-keys").json()["data"] if k["name"] == "Staging")
        acme.delete(f"/api/v1/api-keys/{staging}")  # revoked in the session only
        revoked = acme.get("/v1/models")
    with keyed("sk-poeti-acme-staging-0002", poeti.url) as at_root:
        at_root_keys = {k["name"]: k["total_requests"] for k in at_root.get("/api/v1/api-keys").json()["data"]}
        still = at_root.get("/v1/models")

    assert in_session["Staging"] == 1 and at_root_keys["Staging"] == 0
    error_of(revoked, 401, "invalid_api_key")
    assert still.status_code == 200


# --- bounds ------------------------------------------------------------------------------

def test_the_cap_on_sessions_is_a_429_in_the_one_format():
    with MockServer(max_sessions=2, session_ttl_s=300) as server:
        first, second = make(server), make(server)
        refused = httpx.post(server.url + "/__admin/sessions")
        with pytest.raises(RuntimeError, match="the most it may have"):
            server.session()
        httpx.delete(f"{server.url}/__admin/sessions/{first['id']}")
        third = httpx.post(server.url + "/__admin/sessions")

    message = error_of(refused, 429, "session_limit_exceeded")
    assert "2 sessions" in message and "--max-sessions" in message and "--session-ttl" in message
    assert 295 <= int(refused.headers["Retry-After"]) <= 300  # until the least recently used one expires
    assert third.status_code == 201 and second["id"] != third.json()["id"]


def test_no_sessions_at_all_with_max_sessions_0():
    with MockServer(max_sessions=0) as server:
        error_of(httpx.post(server.url + "/__admin/sessions"), 429, "session_limit_exceeded")
        assert httpx.get(server.base_url + "/models", headers={"Authorization": f"Bearer {server.api_key}"}).status_code == 200


@pytest.mark.parametrize("options", [{"max_sessions": -1}, {"max_sessions": 100_001}, {"session_ttl_s": 0},
                                     {"session_ttl_s": 86_401}])
def test_bounds_that_cannot_work_are_refused_at_start(options):
    with pytest.raises(ValueError, match="out of range"), MockServer(**options):
        pass


@pytest.mark.parametrize(("flag", "value"), [("--max-sessions", "-1"), ("--max-sessions", "100001"),
                                             ("--max-sessions", "many"), ("--session-ttl", "0"),
                                             ("--session-ttl", "86401")])
def test_the_cli_refuses_session_bounds_that_cannot_work_with_one_line(flag, value):
    done = subprocess.run([sys.executable, "-m", "mockpoeti", "serve", "--port", "0", flag, value],
                          capture_output=True, text=True, timeout=30)

    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and flag in done.stderr


def test_a_session_unused_for_its_time_to_live_ends():
    # a time to live 20 times the gap between the busy session's calls (0.1 s and a call), so a loaded
    # machine that holds a call up a while does not end it; the idle one goes unused for twice as long
    with MockServer(session_ttl_s=2.0) as server:
        idle, busy = make(server), make(server)
        handle = server.session()
        deadline = time.monotonic() + 4.5
        with keyed(busy["api_key"], busy["root_url"]) as http:
            while time.monotonic() < deadline:  # used every 0.1 s: it lives on
                assert http.get("/v1/models").status_code == 200
                time.sleep(0.1)
        listed = [s["id"] for s in httpx.get(server.url + "/__admin/sessions").json()["sessions"]]
        gone = httpx.get(idle["root_url"] + "/__admin/health")
        with pytest.raises(RuntimeError, match="has ended"):
            handle.stub("too late")

    assert listed == [busy["id"]]
    error_of(gone, 404, "not_found")


def test_the_admin_token_guards_session_admin_paths_as_the_roots():
    with MockServer(admin_token="s3cret") as server:
        refused = httpx.post(server.url + "/__admin/sessions")
        made = httpx.post(server.url + "/__admin/sessions", headers={"X-Admin-Token": "s3cret"}).json()
        with keyed(made["api_key"], made["root_url"]) as http:
            api = http.post(CHAT, json=HELLO)
            admin = http.get("/__admin/requests")
            with_token = http.get("/__admin/requests", headers={"X-Admin-Token": "s3cret"})
        listing = httpx.get(server.url + "/__admin/sessions")

    error_of(refused, 401, "invalid_api_key")
    assert api.status_code == 200
    error_of(admin, 401, "invalid_api_key")
    assert with_token.status_code == 200 and len(with_token.json()["requests"]) == 1
    error_of(listing, 401, "invalid_api_key")


def rss_kib() -> int:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))


def use_and_end(server: MockServer) -> None:
    """A session that served a chat call, ended."""
    with server.session() as used, keyed(used.key, used.url) as http:
        assert http.post(CHAT, json=HELLO).status_code == 200


def states_alive() -> set[int]:
    """Every State the collector can see, by id (compiled, State takes no weak reference)."""
    gc.collect()
    return {id(o) for o in gc.get_objects() if type(o) is State}


def test_ten_thousand_sessions_made_and_ended_leave_memory_flat():
    with MockServer(seed=1) as server:
        already = states_alive()  # the server's, and any other test's in this process: alive, so no new one takes their ids
        for _ in range(1_000):  # warm-up: what is loaded once, the allocator's first arenas
            server.session().close()
        use_and_end(server)
        gc.collect()
        before = rss_kib()
        for _ in range(10_000):
            server.session().close()
        gc.collect()
        after = rss_kib()
        live = len(server.session_ids)
        alive = states_alive()

    assert alive <= already  # every ended session's state is freed, the used one too
    assert live == 0
    print(f"RSS before {before} KiB, after 10,000 sessions made and ended {after} KiB ({after - before:+d})")
    assert after - before < 8 * 1024  # flat: an idle session holds ~14 KB, so 10,000 kept would be +140 MB


# --- from Python --------------------------------------------------------------------------

def test_server_session_has_the_fixtures_surface(poeti):
    with poeti.session(seed=11, clock="2031-05-06T07:08:09Z", scenarios="retry-then-succeed") as session:
        client = openai.OpenAI(base_url=session.base_url, api_key=session.key, max_retries=2)
        stub = session.stub("晴，25°C", message="/天气/")
        weather = client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "天气?"}])
        retried = client.chat.completions.with_raw_response.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
        calls = session.assert_retried(backoff="any")  # the SDK waits as Retry-After says
        journal = session.journal
        assert session.requests == journal and session.last_request == journal[-1]
        assert session.traces[-1]["trace_id"] == retried.headers["X-Trace-ID"]
        session.use({"name": "inline", "rules": [{"match": {"model": "gpt-4o-mini"}, "respond": {"content": "inline"}}]})
        inline = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
        stub_calls, stub_requests = stub.calls, stub.requests
        stub.remove()
        session.reset(seed=12, clock="2032-01-01T00:00:00Z")
        after_reset = (session.journal, session.stubs, session.state.seed, session.state.playbook.names)
        assert not session.closed

    assert session.url == f"{poeti.url}/sessions/{session.id}" and session.base_url == session.url + "/v1"
    assert session.key == session.api_key == f"sk-poeti-{session.id}-session"
    assert weather.choices[0].message.content == "晴，25°C" and weather.created == 1935817689
    assert [len(call) for call in calls] == [1, 3]  # the stubbed call, then 429, 429, 200
    assert calls[1][1]["wait_s"] >= 0.9  # Retry-After: 1 honoured (measured from the answer's end)
    assert [entry["path"] for entry in journal] == [CHAT] * 4
    assert inline.choices[0].message.content == "inline"
    assert stub_calls == 1 and [e["trace_id"] for e in stub_requests] == [journal[0]["trace_id"]]
    assert after_reset == ([], [], 12, ["retry-then-succeed"])  # the session's start's scenarios
    assert session.closed
    error_of(httpx.get(session.url + "/__admin/health"), 404, "not_found")
    with pytest.raises(RuntimeError, match=f"session {session.id} has ended"):
        session.journal  # noqa: B018
    session.close()  # twice: nothing happens
    assert poeti.requests == [] and poeti.traces == []


def test_bad_python_options_raise_value_error(poeti):
    with pytest.raises(ValueError, match="seed"):
        poeti.session(seed=-3)
    with pytest.raises(ValueError, match="api_key"):
        poeti.session(api_key="two words")
    with pytest.raises(ValueError, match="soon"):
        poeti.session(clock="soon")
    with pytest.raises(TypeError, match="not both"):
        poeti.session(scenarios=["hang"], scenario=["hang"])


async def test_a_session_of_a_server_in_the_callers_loop():
    async with MockServer(seed=5) as server:
        session = server.session(seed=5)
        async with httpx.AsyncClient(base_url=session.base_url, headers={"Authorization": f"Bearer {session.key}"}) as http:
            stubbed = session.stub("in the loop")
            answered = await http.post("/chat/completions", json=HELLO)
            journal, calls = session.journal, stubbed.calls
            session.close()
            ended = await http.get("/models")

    assert answered.json()["choices"][0]["message"]["content"] == "in the loop"
    assert calls == 1
    assert [entry["trace_id"] for entry in journal] == [answered.headers["X-Trace-ID"]]
    assert ended.status_code == 404


def test_a_bug_of_ours_inside_a_session_fails_check_errors(poeti):
    session = poeti.session()

    class Burning(deque):
        def append(self, trace):
            raise RuntimeError("books on fire")

    session.state.traces = Burning()  # the finishing stage fails: a server bug, kept for the test
    with keyed(session.key, session.url) as http:
        refused = http.post(CHAT, json=HELLO)

    error_of(refused, 500, "internal_error")
    with pytest.raises(ServerError, match="books on fire"):
        poeti.check_errors()
    poeti.check_errors()  # taken: raised once


POETI_FIXTURE_SESSIONS = '''
import httpx

ENDED = []


def test_makes_sessions(poeti):
    handle = poeti.session()
    over_http = httpx.post(poeti.url + "/__admin/sessions").json()
    ENDED.extend([handle.url, over_http["root_url"]])
    assert len(poeti.session_ids) == 2


def test_they_ended_with_the_test(poeti):
    assert poeti.session_ids == frozenset()
    for url in ENDED:
        assert httpx.get(url + "/__admin/health").status_code == 404
'''


def test_the_poeti_fixture_ends_the_sessions_a_test_made(pytester: pytest.Pytester):
    from serving import PYTEST_OPTIONS

    pytester.makepyfile(test_fixture_sessions=POETI_FIXTURE_SESSIONS)
    result = pytester.runpytest_inprocess(*PYTEST_OPTIONS)

    result.assert_outcomes(passed=2)


# --- the README's examples, run as written ---------------------------------------------------

def test_two_tenants_at_once(poeti):
    with poeti.session(seed=1) as alice, poeti.session(seed=2, scenarios=["rate-limited"]) as bob:
        alice.stub("for alice")
        ok = openai.OpenAI(base_url=alice.base_url, api_key=alice.key).chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
        assert ok.choices[0].message.content == "for alice"
        assert bob.journal == [] and poeti.requests == []


def test_the_readme_shows_the_python_example_it_runs():
    assert f"```python\n{inspect.getsource(test_two_tenants_at_once)}```" in README


def test_the_readmes_curl_example_runs_as_written(poeti):
    block = README.split("The same in curl:\n\n```sh\n", 1)[1].split("```", 1)[0]

    done = subprocess.run(["bash", "-c", "set -e\n" + block], env={**os.environ, "POETI": poeti.url},
                          capture_output=True, text=True, timeout=60)

    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert out.startswith('{"error":{"code":"rate_limit_exceeded"')  # the session's scenario answered
    assert '{"id":1,"label":"stub#1"' in out and '"requests":[{"id":1,' in out and '"total_requests":1' in out
    assert '"ended":true}' in out and out.endswith('{"ended":0}')
    assert poeti.session_ids == frozenset() and poeti.requests == []  # the root saw none of it
