"""Sessions of one `mockpoeti serve`, driven at once, see only themselves: the official
Python SDK in threads (through `RemoteSession`), the official Node SDK with two sessions
in flight together, and the README's node:test files run side by side, each test with a
session of its own. Whatever each does (stubs, scenarios, clocks, seeds, keys), its
answers, traces, usage, key counters and journal are its own, and the root sees none.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import threading
from datetime import datetime
from pathlib import Path

import httpx
import openai
import pytest
from serving import DEFAULT_KEY, all_traces, serve
from test_node import NODE_DIR, run_node

from mockpoeti.sessions import RemoteSession

ROOT = Path(__file__).resolve().parent.parent
CHAT = "/v1/chat/completions"
CLOCK_A, CLOCK_B = "2026-01-15T10:00:00Z", "2026-06-15T10:00:00Z"
B_RULES = {"name": "b-rules", "rules": [{"match": {"model": "gpt-4o-mini"}, "respond": {"content": "B: scripted"}}]}


def stamp(moment: str) -> int:
    return int(datetime.fromisoformat(moment.replace("Z", "+00:00")).timestamp())


@pytest.fixture(scope="module")
def served():
    with serve("--seed", "5") as process:
        yield process


def keyed(key: str, url: str) -> httpx.Client:
    return httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"})


def drive(session: RemoteSession, label: str, start: threading.Barrier | None = None) -> dict:
    """What a test does with its session: stubbed and generated calls, a scripted one, a
    key of its own and calls with it. Returns what the SDK saw."""
    seen: dict = {"answers": [], "created": [], "trace_ids": [], "bodies": [], "tokens": 0}

    def ask(client: openai.OpenAI, model: str, text: str) -> None:
        raw = client.chat.completions.with_raw_response.create(model=model, messages=[{"role": "user", "content": text}])
        answer = raw.parse()
        seen["answers"].append(answer.choices[0].message.content)
        seen["created"].append(answer.created)
        seen["trace_ids"].append(raw.headers["X-Trace-ID"])
        seen["bodies"].append(raw.text)
        seen["tokens"] += answer.usage.total_tokens

    session.stub({"content": f"{label}: weather"}, message="/weather/")
    client = openai.OpenAI(base_url=session.base_url, api_key=session.key, max_retries=2)
    if start is not None:
        start.wait(timeout=30)
    for i in range(10):
        ask(client, "gpt-4o", f"weather in city {i}?")
    ask(client, "gpt-4o", "hello")
    ask(client, "gpt-4o-mini", "hello")
    with keyed(session.key, session.url) as http:
        seen["key"] = http.post("/api/v1/api-keys", json={"name": "made here"}).json()["data"]["key"]
    second = openai.OpenAI(base_url=session.base_url, api_key=seen["key"], max_retries=0)
    for i in range(3):
        ask(second, "gpt-4o", f"weather again {i}")
    return seen


def books(session: RemoteSession) -> dict:
    with keyed(session.key, session.url) as http:
        return {
            "traces": [t["trace_id"] for t in all_traces(http)],
            "usage": http.get("/api/v1/usage").json()["data"],
            "keys": {k["name"]: k["total_requests"] for k in http.get("/api/v1/api-keys").json()["data"]},
            "stub_calls": [stub["calls"] for stub in session.stubs],
            "journal": session.journal,
        }


def test_two_sessions_driven_at_once_by_the_python_sdk_see_only_themselves(served):
    a = RemoteSession(served.url, seed=1, clock=CLOCK_A, scenarios=["retry-then-succeed"])
    b = RemoteSession(served.url, seed=2, clock=CLOCK_B, scenarios=[B_RULES])
    start = threading.Barrier(2)
    seen: dict = {}
    threads = [threading.Thread(target=lambda s=s, label=label: seen.__setitem__(label, drive(s, label, start)))
               for s, label in ((a, "A"), (b, "B"))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    books_of = {"A": books(a), "B": books(b)}
    retried = a.assert_retried(backoff="any")  # the SDK honoured the 429s' Retry-After
    with keyed(DEFAULT_KEY, served.url) as root:
        root_seen = (root.get("/__admin/requests").json()["requests"], root.get("/api/v1/usage").json()["data"])
    foreign = {}
    for owner, label, other in ((a, "A", b), (b, "B", a)):
        for key in (owner.key, seen[label]["key"]):
            for url in (other.url, served.url):
                with keyed(key, url) as http:
                    foreign[key, url] = http.get("/v1/models").json()["error"]["code"]

    # a third session, made as A was and asked what A was asked, alone: A's answers, byte for byte
    replay = RemoteSession(served.url, seed=1, clock=CLOCK_A, scenarios=["retry-then-succeed"])
    alone = drive(replay, "A")
    for session in (a, b, replay):
        session.close()

    assert sorted(seen) == ["A", "B"]
    assert seen["A"]["answers"][11] not in ("A: weather", "B: scripted")  # generated: B's scenario is B's
    assert seen["B"]["answers"][11] == "B: scripted"
    for label, clock, hello in (("A", CLOCK_A, 3), ("B", CLOCK_B, 1)):
        mine, book = seen[label], books_of[label]
        other = books_of["B" if label == "A" else "A"]
        assert mine["answers"][:10] == [f"{label}: weather"] * 10 and mine["answers"][-3:] == [f"{label}: weather"] * 3
        assert mine["answers"][10] != f"{label}: weather"  # generated (after two 429s in A)
        assert set(mine["created"]) == {stamp(clock)}
        calls = 10 + hello + 1 + 3  # A's "hello" took three attempts: 429, 429, 200
        assert len(book["traces"]) == calls and set(mine["trace_ids"]) <= set(book["traces"])
        assert not set(book["traces"]) & set(other["traces"])
        assert book["usage"]["total_requests"] == calls
        assert book["usage"]["total_tokens"] == mine["tokens"]  # the 429s cost nothing
        assert book["keys"] == {"默认 Key": 0, "session": 10 + hello + 1, "made here": 3}
        assert book["stub_calls"] == [13]
        chats = [entry for entry in book["journal"] if entry["path"] == CHAT]
        assert sorted(entry["trace_id"] for entry in chats) == sorted(book["traces"])
        assert all(not entry["path"].startswith("/sessions/") for entry in book["journal"])
    assert [[attempt["status"] for attempt in call] for call in retried[10:11]] == [[429, 429, 200]]
    assert set(foreign.values()) == {"invalid_api_key"} and len(foreign) == 8
    assert root_seen == ([], {**root_seen[1], "total_requests": 0})
    assert alone["bodies"] == seen["A"]["bodies"]  # B's traffic drew nothing from A's seed


def test_two_sessions_driven_at_once_by_the_node_sdk_see_only_themselves(served):
    httpx.post(served.url + "/__admin/reset")  # the root as it started: whatever ran before is forgotten

    summary = run_node(served.url, served.api_key, "sessions.mjs")

    a, b = summary["a"], summary["b"]
    for mine, other, clock, hello in ((a, b, CLOCK_A, 3), (b, a, CLOCK_B, 1)):
        weather = "A: sunny" if mine is a else "B: rainy"
        seen, book = mine["seen"], mine["books"]
        assert seen["answers"][:10] == [weather] * 10 and seen["answers"][-3:] == [weather] * 3
        assert set(seen["created"]) == {stamp(clock)}
        calls = 10 + hello + 1 + 3
        assert len(book["traces"]) == calls and set(seen["trace_ids"]) <= set(book["traces"])
        assert not set(book["traces"]) & set(other["books"]["traces"])
        assert book["usage"]["total_requests"] == calls and book["usage"]["total_tokens"] == seen["tokens"]
        assert book["keys"] == [["默认 Key", 0], ["session", 10 + hello + 1], [f"made in {'a' if mine is a else 'b'}", 3]]
        assert book["stub_calls"] == [13]
        assert sorted(t for path, _, t in book["journal"] if path == CHAT) == sorted(book["traces"])
    assert a["seen"]["answers"][11] != "B: scripted" and b["seen"]["answers"][11] == "B: scripted"
    assert [status for path, status, _ in a["books"]["journal"] if path == CHAT][10:13] == [429, 429, 200]
    assert all(found == [401, "invalid_api_key", 401, "invalid_api_key"] for found in summary["foreign"].values())
    assert len(summary["foreign"]) == 4
    assert summary["root"] == {"journal": 0, "usage": 0}
    assert summary["ended"] == [200, 200, 404]


def test_the_readmes_node_test_files_run_side_by_side_each_test_in_a_session_of_its_own(served):
    node = shutil.which("node")
    assert node, "node is not installed (Node 20+ is needed)"
    assert (NODE_DIR / "node_modules" / "openai").is_dir(), "run `npm install --prefix tests/node`"
    files = sorted(str(path) for path in (NODE_DIR / "sessions").glob("*.test.mjs"))
    before = httpx.get(served.url + "/__admin/requests").json()["requests"]

    done = subprocess.run([node, "--test", "--test-concurrency=3", *files], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "MOCKPOETI_URL": served.url}, cwd=ROOT)

    assert done.returncode == 0, done.stdout + done.stderr
    assert len(files) == 3
    assert re.search(r"^# pass 6$", done.stdout, re.M) and re.search(r"^# fail 0$", done.stdout, re.M), done.stdout
    assert httpx.get(served.url + "/__admin/sessions").json()["sessions"] == []  # every afterEach ended its session
    assert httpx.get(served.url + "/__admin/requests").json()["requests"] == before  # the root saw none of it


def test_the_readme_shows_the_node_test_file_it_runs():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    example = (NODE_DIR / "sessions" / "weather.test.mjs").read_text(encoding="utf-8")

    assert f"```js\n{example}```" in readme


# --- RemoteSession, the handle on a session over HTTP ------------------------------------------

def test_a_remote_session_has_the_fixtures_surface(served):
    with RemoteSession(served.url, seed=9, clock="2027-03-04T05:06:07Z") as session:
        client = openai.OpenAI(base_url=session.base_url, api_key=session.api_key, max_retries=0)
        stub = session.stub("stubbed", times=1, model="gpt-4o-mini")
        first = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
        second = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
        calls, answered_by_stub = stub.calls, stub.requests
        session.use("rate-limited")
        with pytest.raises(openai.RateLimitError):
            client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
        journal = session.journal
        matched = session.assert_requested(2, model="gpt-4o-mini")
        session.reset(clock="2028-01-01T00:00:00Z")
        after_reset = (session.journal, session.stubs, httpx.get(session.url + "/__admin/clock").json()["now"])
        stub.remove()  # gone with the reset: nothing happens
        url = session.url

    assert session.seed == 9 and url == f"{served.url}/sessions/{session.id}"
    assert first.choices[0].message.content == "stubbed" and second.choices[0].message.content != "stubbed"
    assert first.created == stamp("2027-03-04T05:06:07Z")
    assert calls == 1 and [e["trace_id"] for e in answered_by_stub] == [journal[0]["trace_id"]]
    assert [entry["status"] for entry in journal] == [200, 200, 429]
    assert len(matched) == 2
    assert after_reset == ([], [], "2028-01-01T00:00:00Z")
    assert session.closed
    assert httpx.get(url + "/__admin/health").status_code == 404
    session.close()  # twice: nothing happens


def test_a_remote_session_says_what_the_server_refused(served):
    with pytest.raises(ValueError, match="seed"):
        RemoteSession(served.url, seed=-1)
    with pytest.raises(ValueError, match="scenario"):
        RemoteSession(served.url, scenarios=["/etc/passwd.yaml"])
    with RemoteSession(served.url) as session, pytest.raises(ValueError, match="one inline scenario"):
        session.use(B_RULES, "hang")


def test_a_remote_session_with_the_admin_token_and_at_the_cap():
    with serve("--admin-token", "s3cret", "--max-sessions", "1") as process:
        with pytest.raises(RuntimeError, match="401 invalid_api_key"):
            RemoteSession(process.url)
        with RemoteSession(process.url, admin_token="s3cret") as session:
            assert session.journal == []
            with pytest.raises(RuntimeError, match="429 session_limit_exceeded"):
                RemoteSession(process.url, admin_token="s3cret")
        again = RemoteSession(process.url, admin_token="s3cret")  # the one slot is free again
        again.close()
        assert json.loads(httpx.get(process.url + "/__admin/sessions",
                                    headers={"X-Admin-Token": "s3cret"}).text)["sessions"] == []
