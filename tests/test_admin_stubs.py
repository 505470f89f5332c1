"""The admin API from httpx, as a client in any language uses it: stubs over HTTP
(`/__admin/stubs`), and what the scenario switch and the clock refuse."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest

from mockpoeti import MockServer

CHAT = "/v1/chat/completions"


def chat(http: httpx.Client, text: str = "hello", model: str = "gpt-4o", **extra) -> httpx.Response:
    return http.post(CHAT, json={"model": model, "messages": [{"role": "user", "content": text}], **extra})


def content(response: httpx.Response) -> str:
    assert response.status_code == 200, response.text
    return response.json()["choices"][0]["message"]["content"]


def error_of(response: httpx.Response, status: int, code: str = "invalid_request") -> str:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert (error["code"], error["status"]) == (code, status)
    return error["message"]


# --- stubs over HTTP -------------------------------------------------------------------------

def test_create_use_list_and_delete_a_stub(poeti, http):
    created = http.post("/__admin/stubs", json={"match": {"model": "gpt-4o-mini"}, "respond": {"content": "桩"}, "times": 2})
    stub = created.json()
    answers = [content(chat(http, model="gpt-4o-mini")) for _ in range(3)]
    listed = http.get("/__admin/stubs").json()
    one = http.get(f"/__admin/stubs/{stub['id']}").json()
    journal = [entry["rule"] for entry in http.get("/__admin/requests").json()["requests"]]
    deleted = http.delete(f"/__admin/stubs/{stub['id']}")
    again = http.delete(f"/__admin/stubs/{stub['id']}")

    assert created.status_code == 201
    assert created.headers["Location"] == f"/__admin/stubs/{stub['id']}"
    assert stub == {"id": 1, "label": "stub#1", "match": {"endpoint": "chat", "model": "gpt-4o-mini"},
                    "respond": {"content": "桩"}, "times": 2, "calls": 0}
    assert answers[:2] == ["桩", "桩"] and answers[2] != "桩"  # used up after 2
    assert listed["meta"] == {"total": 1} and listed["stubs"][0]["calls"] == 2
    assert one == listed["stubs"][0]
    assert journal == ["stub#1", "stub#1", None]
    assert deleted.status_code == 200 and deleted.json()["id"] == 1
    assert "No stub with id '1'" in error_of(again, 404, "not_found")
    assert poeti.stubs == []


def test_stubs_over_http_and_from_python_are_one_list(poeti, http):
    python = poeti.stub("from python")
    over_http = http.post("/__admin/stubs", json={"respond": ["from http", {"error": "rate_limit_exceeded"}],
                                                  "name": "seq"}).json()

    first, second = chat(http), chat(http)
    listed = [s["label"] for s in http.get("/__admin/stubs").json()["stubs"]]
    cleared = http.delete("/__admin/stubs").json()

    assert content(first) == "from http"  # the newest stub wins
    assert second.status_code == 429 and second.headers["Retry-After"] == "1"
    assert over_http["label"] == "stub#2 (seq)"
    assert listed == ["stub#2 (seq)", "stub#1"]
    assert cleared == {"deleted": 2}
    assert content(chat(http)) != "from python" and python.calls == 0


def test_a_string_respond_and_other_endpoints(http):
    http.post("/__admin/stubs", json={"respond": "plain"}).raise_for_status()
    http.post("/__admin/stubs", json={"match": {"path": "/v1/embeddings"}, "respond": {"status": 200, "body": {"data": []}}})

    assert content(chat(http)) == "plain"
    assert http.post("/v1/embeddings", json={"input": "x"}).json() == {"data": []}


@pytest.mark.parametrize(("body", "wanted"), [
    ({"match": {"modle": "gpt-4o"}, "respond": "x"}, "match.modle: unknown key; did you mean 'model'?"),
    ({"repsond": "x"}, "repsond: unknown key; did you mean 'respond'?"),
    ({"match": {}}, "respond: missing; expected a response or a list of responses"),
    ({"respond": {"error": "rate_limit_exceded"}}, "did you mean 'rate_limit_exceeded'?"),
    ({"respond": "x", "times": 0}, "times: 0 is out of range"),
    ({"respond": "x", "match": {"tools": "yes"}}, "match.tools: 'yes' is not true, false or a list of tool names"),
    (["respond", "x"], "a list is not a stub"),
])
def test_a_bad_stub_is_a_400_with_the_validators_message(poeti, http, body, wanted):
    answer = http.post("/__admin/stubs", json=body)

    message = error_of(answer, 400)
    assert message.startswith("Invalid stub: ") and wanted in message
    assert poeti.stubs == []


@pytest.mark.parametrize("stub_id", ["7", "abc", "-1", "1.0", "٣", "9" * 40])
def test_an_unknown_stub_id_is_a_404(http, stub_id):
    http.post("/__admin/stubs", json={"respond": "x"}).raise_for_status()

    for method in ("GET", "DELETE"):
        error_of(http.request(method, f"/__admin/stubs/{stub_id}"), 404, "not_found")


def test_the_admin_token_guards_the_stubs():
    with MockServer(admin_token="s3cret") as server, httpx.Client(base_url=server.url) as http:
        refused = http.post("/__admin/stubs", json={"respond": "x"})
        listed = http.get("/__admin/stubs")
        allowed = http.post("/__admin/stubs", json={"respond": "x"}, headers={"X-Admin-Token": "s3cret"})

    error_of(refused, 401, "invalid_api_key")
    error_of(listed, 401, "invalid_api_key")
    assert allowed.status_code == 201


def test_reset_removes_stubs(poeti, http):
    http.post("/__admin/stubs", json={"respond": "x"}).raise_for_status()
    http.post("/__admin/reset").raise_for_status()
    assert http.get("/__admin/stubs").json() == {"stubs": [], "meta": {"total": 0}}


# --- scenario names the admin API refuses ------------------------------------------------------

@pytest.mark.parametrize("name", ["rate\x00limited", "a" * 5000, "x.yaml\x00", "", "\n"],
                         ids=["nul", "5000-chars", "nul-yaml", "empty", "newline"])
def test_an_unusable_scenario_name_is_a_400(http, name):
    message = error_of(http.put("/__admin/scenarios/active", json={"names": ["rate-limited", name]}), 400)

    assert "names[1]" in message and "printable characters" in message
    assert len(message) < 300


def outside_files(tmp_path: Path) -> dict[str, str]:
    """Paths outside the server's folders: missing, unreadable, invalid, a link to a secret, a folder."""
    away = tmp_path / "away"
    away.mkdir()
    (away / "invalid.yaml").write_text("name: [unclosed\n", encoding="utf-8")
    (away / "valid.yaml").write_text("name: valid\nrules:\n  - respond: {content: x}\n", encoding="utf-8")
    unreadable = away / "unreadable.yaml"
    unreadable.write_text("name: u\n", encoding="utf-8")
    unreadable.chmod(0)
    (away / "passwd.yaml").symlink_to("/etc/passwd")
    (away / "dir.yaml").mkdir()
    names = {p.stem: str(p) for p in away.iterdir()}
    names["missing"] = str(away / "missing.yaml")
    names["relative"] = os.path.relpath(away / "valid.yaml")
    return names


def test_paths_outside_the_servers_folders_all_get_one_answer(tmp_path):
    allowed = tmp_path / "mine"
    allowed.mkdir()
    scenario = allowed / "mine.yaml"
    scenario.write_text("name: mine\nrules:\n  - respond: {content: mine}\n", encoding="utf-8")
    (allowed / "link.yaml").symlink_to("/etc/passwd")  # inside the folder, but it leads out of it
    (allowed / "up.yaml").symlink_to(tmp_path / "away" / "valid.yaml")
    outside = outside_files(tmp_path)

    with MockServer(scenarios=[str(scenario)]) as server, httpx.Client(base_url=server.url) as http:
        answers = {name: http.put("/__admin/scenarios/active", json={"names": [path]}) for name, path in outside.items()}
        links = [http.put("/__admin/scenarios/active", json={"names": [str(allowed / n)]}) for n in ("link.yaml", "up.yaml")]
        inside = http.put("/__admin/scenarios/active", json={"names": [str(allowed / "mine.yaml")]})
        missing_inside = http.put("/__admin/scenarios/active", json={"names": [str(allowed / "gone.yaml")]})
        shipped = http.put("/__admin/scenarios/active", json={"names": ["rate-limited"]})
        inline = http.put("/__admin/scenarios/active", json={"name": "inline", "rules": [{"respond": {"content": "i"}}]})

    messages = {name: error_of(answer, 400).replace(outside[name], "PATH") for name, answer in answers.items()}
    assert len(set(messages.values())) == 1, messages  # nothing tells missing, unreadable, invalid or secret apart
    (message,) = set(messages.values())
    assert message == ("Invalid value for 'names[0]': expected a shipped scenario name or the path of a .yaml or .yml "
                       "file in a folder the server was started with; 'PATH' is not in one.")
    for link in links:
        assert error_of(link, 400).endswith("' is not in one.") and "root:" not in link.text
    assert inside.status_code == 200 and inside.json()["active"][0]["name"] == "mine"
    assert "no such scenario file" in error_of(missing_inside, 400)  # inside its folders, the server may say so
    assert shipped.status_code == 200 and inline.status_code == 200


# --- the admin clock stays before the year 9899 --------------------------------------------------

@pytest.mark.parametrize(("body", "field"), [
    ({"time": "9899-06-01T00:00:00Z"}, "time"),
    ({"time": 10**400}, "time"),
    ({"time": "9850-01-01T00:00:00Z", "advance": 100 * 365 * 86400}, "advance"),
])
def test_the_clock_cannot_pass_the_year_9899(http, body, field):
    before = http.get("/__admin/clock").json()

    message = error_of(http.put("/__admin/clock", json=body), 400)

    assert f"'{field}'" in message and "9899" in message and "9999" not in message
    assert http.get("/__admin/clock").json()["frozen"] == before["frozen"]


def test_advancing_a_late_clock_past_the_limit_is_refused_and_changes_nothing(http):
    http.put("/__admin/clock", json={"time": "9898-01-01T00:00:00Z"}).raise_for_status()

    refused = http.put("/__admin/clock", json={"advance": 366 * 86400})
    allowed = http.put("/__admin/clock", json={"advance": 86400})

    message = error_of(refused, 400)
    assert "before 9898-10-17T00:00:00Z" in message and "from 9898-01-01T00:00:00Z" in message
    assert allowed.json()["now"] == "9898-01-02T00:00:00Z"
