"""Security properties, each checked where it can fail: loopback by default and a
warning beyond it, the admin token, keys compared by digest (never as strings),
no full key in any listing, journal, log or error, accounts that cannot see each
other, YAML loaded safely, templates that cannot reach the file system or run
code, and an admin API that cannot be pointed at arbitrary files.

Existing tests cover neighbouring ground: test_admin.py (the admin token on every
admin call), test_keys.py (listings show prefixes, a foreign key id is a 404
like a missing one), test_validate.py (one `!!python` tag). This module adds
the rest, mostly against `mockpoeti serve` as a process.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from serving import DEFAULT_KEY, console_script, serve

from mockpoeti import MockServer
from mockpoeti.books.state import State

CHAT = "/v1/chat/completions"
KEYS = "/api/v1/api-keys"
HI = [{"role": "user", "content": "hi"}]
ACME_KEY = "sk-poeti-acme-production-0001"
RETIRED_KEY = "sk-poeti-acme-retired-0003"
CLI_KEY = "sk-poeti-cli-7f3a9c2e41d8b6a0c5e9"
ADMIN_TOKEN = "admin-0b1e2d3c4f5a6978"


def listening_addresses(port: int) -> set[str]:
    """The local IPv4 addresses of the sockets listening on `port` (from /proc/net/tcp)."""
    found = set()
    with open("/proc/net/tcp") as table:
        next(table)
        for line in table:
            local, state = line.split()[1], line.split()[3]
            address, _, hex_port = local.partition(":")
            if state == "0A" and int(hex_port, 16) == port:
                found.add(socket.inet_ntoa(bytes.fromhex(address)[::-1]))
    return found


def wait_for_text(read, needle: str, timeout: float = 5.0) -> str:
    deadline = time.monotonic() + timeout
    while needle not in (text := read()) and time.monotonic() < deadline:
        time.sleep(0.02)
    return text


# --- where it listens --------------------------------------------------------------------------

def test_serve_binds_to_loopback_by_default_and_does_not_warn():
    with serve("--api-key", CLI_KEY) as server:
        assert server.host == "127.0.0.1"
        assert listening_addresses(server.port) == {"127.0.0.1"}
        assert httpx.get(server.url + "/__admin/health").status_code == 200
        code, _ = server.stop()
    assert code == 0
    assert "warning" not in server.stderr.lower()
    assert MockServer().host == "127.0.0.1"


def test_binding_beyond_loopback_warns_on_stderr_and_the_admin_token_guards_admin():
    with serve("--host", "0.0.0.0", "--admin-token", ADMIN_TOKEN, "--api-key", CLI_KEY) as server:
        assert listening_addresses(server.port) == {"0.0.0.0"}
        stderr = wait_for_text(lambda: server.stderr, "warning")
        with httpx.Client(base_url=f"http://127.0.0.1:{server.port}") as http:
            missing = http.get("/__admin/health")
            wrong = http.get("/__admin/requests", headers={"X-Admin-Token": ADMIN_TOKEN[:-1] + "x"})
            right = http.get("/__admin/health", headers={"X-Admin-Token": ADMIN_TOKEN})
            as_bearer = http.post("/__admin/reset", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
            token_is_no_api_key = http.get("/v1/models", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
            api_still_works = http.get("/v1/models", headers={"Authorization": f"Bearer {CLI_KEY}"})
    assert "warning" in stderr and "0.0.0.0" in stderr and "beyond this machine" in stderr
    for refused in (missing, wrong):
        assert refused.status_code == 401
        assert refused.json()["error"]["code"] == "invalid_api_key"
        assert refused.headers["X-Trace-ID"]
    assert right.status_code == 200 and right.json()["status"] == "ok"
    assert as_bearer.status_code == 200
    assert token_is_no_api_key.status_code == 401
    assert api_still_works.status_code == 200


# --- how keys are compared ----------------------------------------------------------------------

class Untouchable(str):
    """A key that may be encoded (to be hashed) but never compared or hashed as a string."""

    def __eq__(self, other):
        raise AssertionError("a key was compared as a string")

    def __ne__(self, other):
        raise AssertionError("a key was compared as a string")

    def __hash__(self):
        raise AssertionError("a key was looked up as a string")


def test_keys_are_found_by_their_sha256_digest_never_compared_as_strings():
    with MockServer(api_keys=[CLI_KEY]) as server:
        state: State = server.state
        stored = server.call(lambda: dict(state.keys))
        assert stored and all(isinstance(d, bytes) and len(d) == 32 for d in stored)
        assert {hashlib.sha256(k.secret.encode()).digest() for k in stored.values()} == set(stored)

        found = server.call(lambda: state.find_key(Untouchable(CLI_KEY)))
        assert found is not None and found.name == "--api-key"
        assert server.call(lambda: state.find_key(Untouchable(CLI_KEY[:-1] + "x"))) is None


def test_the_api_finds_keys_in_the_digest_table_alone():
    """A secret the table holds by its digest is let in, one it does not hold is refused,
    whatever keys the state made: the table is what authentication reads."""
    other = "sk-poeti-" + "z" * 32
    with MockServer(api_keys=[CLI_KEY]) as server:
        state: State = server.state

        def only_other() -> None:
            key = state.find_key(CLI_KEY)
            state.keys = {hashlib.sha256(other.encode()).digest(): key}
            state.keys_by_authorization.clear()

        server.call(only_other)
        let_in = httpx.get(server.url + "/v1/models", headers={"Authorization": f"Bearer {other}"})
        refused = httpx.get(server.url + "/v1/models", headers={"Authorization": f"Bearer {CLI_KEY}"})
    assert (let_in.status_code, refused.status_code) == (200, 401)


def test_the_admin_token_is_compared_in_constant_time(monkeypatch):
    calls = []
    real = hmac.compare_digest

    def spy(a, b):
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    with MockServer(admin_token=ADMIN_TOKEN) as server:
        right = httpx.get(server.url + "/__admin/health", headers={"X-Admin-Token": ADMIN_TOKEN})
        wrong = httpx.get(server.url + "/__admin/health", headers={"X-Admin-Token": "guess"})
    assert (right.status_code, wrong.status_code) == (200, 401)
    assert calls == [(ADMIN_TOKEN.encode(), ADMIN_TOKEN.encode()), (b"guess", ADMIN_TOKEN.encode())]


# --- no full key anywhere but where it is handed out ----------------------------------------------

def plausible(secret: str) -> str:
    """The same key with its last character changed: what a typo or a guess looks like."""
    return secret[:-1] + ("x" if secret[-1] != "x" else "y")


def raw_exchange(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return data


def test_no_full_key_in_any_listing_journal_log_or_error():
    with serve("--api-key", CLI_KEY) as server:
        seen: list[str] = []  # everything the server said, but the one answer that hands out a new key

        def keep(response: httpx.Response) -> httpx.Response:
            seen.append(f"{response.status_code} {dict(response.headers)} {response.text}")
            return response

        with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {CLI_KEY}"}) as http:
            created = http.post(KEYS, json={"name": "leak check"}).json()["data"]
            secret = created["key"]
            secrets = [CLI_KEY, secret, plausible(CLI_KEY), plausible(secret), RETIRED_KEY, DEFAULT_KEY, ACME_KEY]
            body = {"model": "gpt-4o", "messages": HI}
            keep(http.post(CHAT, json=body, headers={"Authorization": f"Bearer {secret}"}))
            keep(http.delete(f"{KEYS}/{created['id']}"))
            for key in (secret, plausible(CLI_KEY), plausible(secret), RETIRED_KEY):  # revoked, or wrong but plausible
                keep(http.post(CHAT, json=body, headers={"Authorization": f"Bearer {key}"}))
                keep(http.get("/v1/models", headers={"Authorization": f"Bearer {key}"}))
            for headers in ({"Authorization": f"bearer {plausible(CLI_KEY)}"}, {"Authorization": plausible(CLI_KEY)},
                            {"Authorization": f"Bearer {CLI_KEY} {CLI_KEY}"}, {"X-Api-Key": CLI_KEY, "Authorization": ""},
                            {"api-key": CLI_KEY, "Authorization": ""}):
                keep(http.get("/v1/models", headers=headers))
            # a header aiohttp's parser refuses: it used to quote the line, key and all, in the answer and the log
            seen.append(raw_exchange(server.port, f"GET /v1/models HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
                                                  f"{CLI_KEY}\x01\r\n\r\n".encode()).decode("latin-1"))
            seen.append(raw_exchange(server.port, b"GET /v1/models HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer\r\n "
                                                  + CLI_KEY.encode() + b"\r\n\r\n").decode("latin-1"))
            for path in (KEYS, f"{KEYS}/{created['id']}", "/api/v1/request-traces?page_size=100", "/api/v1/usage",
                         "/api/v1/request-traces/stats", "/__admin/requests", "/__admin/health", "/__admin/scenarios"):
                assert keep(http.get(path)).status_code == 200, path
            trace_ids = [t["trace_id"] for t in http.get("/api/v1/request-traces").json()["data"]["items"]]
            for trace_id in trace_ids:
                keep(http.get(f"/api/v1/request-traces/{trace_id}"))
            journal = http.get("/__admin/requests").text
        code, _ = server.stop()
        stdout = server.stdout.replace(server.ready_line, "")  # the ready line names the key you started it with
        stderr = server.stderr

    assert code == 0
    assert len(trace_ids) == 2  # the created key's call, and its call once revoked: the search is over real records
    assert "sk-poeti-cli-" in journal and "Bearer sk-poeti-cli-..." in journal  # the journal shows prefixes
    everything = "\n".join([*seen, stdout, stderr])
    for key in secrets:
        assert key not in everything, key
        assert key[len(key) // 2 :] not in everything, f"the second half of {key}"


def test_no_full_key_in_the_logs_at_any_level(caplog):
    caplog.set_level(logging.DEBUG)
    with MockServer(api_keys=[CLI_KEY]) as server:
        for line in (f"Authorization: Bearer {CLI_KEY}\x00", f"Authorization: Bearer {CLI_KEY}\r\n X"):
            answer = raw_exchange(server.port, f"GET /v1/models HTTP/1.1\r\nHost: x\r\n{line}\r\n\r\n".encode())
            assert answer.startswith(b"HTTP/1.") and b" 400 " in answer.split(b"\r\n")[0]
            assert b"X-Trace-ID" in answer and CLI_KEY.encode() not in answer
    assert any("malformed request" in r.getMessage() for r in caplog.records)  # the log was listening
    assert CLI_KEY not in caplog.text
    assert CLI_KEY[len(CLI_KEY) // 2 :] not in caplog.text


# --- accounts ------------------------------------------------------------------------------------

def normalized(response: httpx.Response, token: str) -> tuple[int, str, dict]:
    per_response = {"x-trace-id", "x-request-id", "date"}
    headers = {k: v for k, v in response.headers.items() if k not in per_response}
    return response.status_code, re.sub(rf"\b{re.escape(token)}\b", "ID", response.text), headers


def test_a_foreign_id_answers_exactly_like_a_missing_one_everywhere():
    with MockServer(seed=4) as server, \
            httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {DEFAULT_KEY}"}) as mine, \
            httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {ACME_KEY}"}) as theirs:
        their_call = theirs.post(CHAT, json={"model": "gpt-4o", "messages": HI})
        assert their_call.status_code == 200
        foreign_trace = their_call.headers["X-Trace-ID"]
        missing_trace = "trace-poeti-" + format(int(foreign_trace[-16:], 16) ^ 0xFFFF, "016x")
        their_keys = [k["id"] for k in theirs.get(KEYS).json()["data"]]
        taken = set(their_keys) | {k["id"] for k in mine.get(KEYS).json()["data"]}
        foreign_key = their_keys[0]
        missing_key = next(i for i in range(10 ** (len(str(foreign_key)) - 1), 10 ** len(str(foreign_key))) if i not in taken)
        before = {"keys": theirs.get(KEYS).json(), "usage": theirs.get("/api/v1/usage").json(),
                  "traces": theirs.get("/api/v1/request-traces").json()}

        pairs = {
            "trace by id": (f"/api/v1/request-traces/{foreign_trace}", f"/api/v1/request-traces/{missing_trace}",
                            foreign_trace, missing_trace),
            "key by id": (f"{KEYS}/{foreign_key}", f"{KEYS}/{missing_key}", str(foreign_key), str(missing_key)),
            "traces of a key": (f"/api/v1/request-traces?key_id={foreign_key}",
                                f"/api/v1/request-traces?key_id={missing_key}", str(foreign_key), str(missing_key)),
            "usage of a key": (f"/api/v1/usage?key_id={foreign_key}", f"/api/v1/usage?key_id={missing_key}",
                               str(foreign_key), str(missing_key)),
            "stats of a key": (f"/api/v1/request-traces/stats?key_id={foreign_key}",
                               f"/api/v1/request-traces/stats?key_id={missing_key}", str(foreign_key), str(missing_key)),
        }
        for what, (foreign, missing, foreign_id, missing_id) in pairs.items():
            a, b = mine.get(foreign), mine.get(missing)
            assert normalized(a, foreign_id) == normalized(b, missing_id), what
            assert a.status_code in (200, 404), what
            assert foreign_trace not in a.text or what == "trace by id", what
        revoke_foreign, revoke_missing = mine.delete(f"{KEYS}/{foreign_key}"), mine.delete(f"{KEYS}/{missing_key}")
        assert normalized(revoke_foreign, str(foreign_key)) == normalized(revoke_missing, str(missing_key))
        assert revoke_foreign.status_code == 404

        assert {"keys": theirs.get(KEYS).json(), "usage": theirs.get("/api/v1/usage").json(),
                "traces": theirs.get("/api/v1/request-traces").json()} == before  # nothing of theirs changed
        assert theirs.post(CHAT, json={"model": "gpt-4o", "messages": HI}).status_code == 200
        assert mine.get("/api/v1/request-traces").json()["data"]["total"] == 0  # and nothing of theirs shows


# --- YAML is data, never code --------------------------------------------------------------------

PYTHON_TAGS = {
    "object-apply-os-system": '!!python/object/apply:os.system ["touch {marker}"]',
    "object-new-os-system": '!!python/object/new:os.system ["touch {marker}"]',
    "object-apply-subprocess": '!!python/object/apply:subprocess.check_call [["touch", "{marker}"]]',
    "name-os-system": "!!python/name:os.system",
    "module-os": "!!python/module:os",
    "object-of-a-class": "!!python/object:argparse.Namespace {{}}",
}


def tagged_scenario(tmp_path: Path, name: str, tag: str, marker: Path) -> tuple[Path, int]:
    lines = ["version: 1", f"name: {name}", "rules:", "  - match: {endpoint: chat}", "    respond:",
             f"      content: {tag.format(marker=marker)}"]
    path = tmp_path / f"{name}.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path, len(lines)


def test_python_yaml_tags_are_refused_with_file_and_line_and_never_run(tmp_path):
    marker = tmp_path / "PWNED"
    files = {name: tagged_scenario(tmp_path, name, tag, marker) for name, tag in PYTHON_TAGS.items()}
    laughs = tmp_path / "billion-laughs.yaml"
    laughs.write_text("version: 1\nname: laughs\na: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n"
                      + "".join(f"{c}: &{c} [{', '.join([f'*{p}'] * 9)}]\n" for p, c in zip("abcdefgh", "bcdefghi", strict=False))
                      + "rules: *i\n", encoding="utf-8")

    started = time.monotonic()
    result = subprocess.run([console_script(), "validate", *[str(p) for p, _ in files.values()], str(laughs)],
                            capture_output=True, text=True, timeout=60, cwd=tmp_path)
    took = time.monotonic() - started

    assert result.returncode == 1
    assert "Traceback" not in result.stdout + result.stderr
    for name, (path, line) in files.items():
        problems = [p for p in result.stdout.splitlines() if p.startswith(f"{path}:")]
        assert len(problems) == 1, (name, result.stdout)
        assert problems[0].startswith(f"{path}:{line}: ") and "python" in problems[0], problems[0]
    assert any(p.startswith(f"{laughs}:") for p in result.stdout.splitlines())
    assert took < 30  # the alias bomb was not expanded a billion times
    assert not marker.exists()

    path, _ = files["object-apply-os-system"]
    refused = subprocess.run([console_script(), "serve", "--port", "0", "--scenario", str(path)],
                             capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert refused.returncode == 1 and f"{path}:" in refused.stderr
    with MockServer(scenario_dirs=(str(tmp_path),)) as server:  # a folder the admin API may read
        over_http = httpx.put(server.url + "/__admin/scenarios/active", json={"names": [str(path)]})
    assert over_http.status_code == 400 and f"{path}:" in over_http.json()["error"]["message"]
    assert not marker.exists()


# --- templates are data, never code ----------------------------------------------------------------

CODE_IN_TEMPLATES = {
    "import": "{{ __import__('os').system('touch PWNED') }}",
    "open": "{{ open('/etc/passwd').read() }}",
    "string-class": "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "item-access": "{{ body['messages'] }}",
    "filter": "{{ message|attr('__class__') }}",
    "faker-internals": "{{ faker.__init__ }}",
    "faker-unlisted-provider": "{{ faker.file_path }}",
    "unknown-root": "{{ config }}",
    "globals": "{{ self.__init__.__globals__ }}",
}


@pytest.mark.parametrize("template", CODE_IN_TEMPLATES.values(), ids=CODE_IN_TEMPLATES.keys())
def test_a_template_with_code_is_refused_when_the_scenario_is_loaded(tmp_path, template):
    inline = {"name": "evil", "rules": [{"match": {"endpoint": "chat"}, "respond": {"content": template}}]}
    path = tmp_path / "evil.yaml"
    path.write_text(json.dumps(inline), encoding="utf-8")  # JSON is YAML

    result = subprocess.run([console_script(), "validate", str(path)], capture_output=True, text=True, timeout=60,
                            cwd=tmp_path)
    with MockServer() as server:
        over_http = httpx.put(server.url + "/__admin/scenarios/active", json=inline)

    assert result.returncode == 1
    assert re.fullmatch(rf"{re.escape(str(path))}:1: rules\[0\]\.respond\.content: .+", result.stdout.strip())
    assert over_http.status_code == 400
    assert "rules[0].respond.content" in over_http.json()["error"]["message"]
    assert list(tmp_path.iterdir()) == [path]  # nothing was written


def test_dotted_names_render_data_only_and_a_message_is_never_rendered_again(tmp_path):
    content = ("[{{ message.__class__ }}][{{ body.__class__.__init__.__globals__ }}][{{ key.__dict__ }}]"
               "[{{ model.upper }}][{{ headers.__len__ }}][{{ query.__doc__ }}][{{ body.messages.0.role }}]"
               "[{{ message }}]")
    path = tmp_path / "dotted.yaml"
    path.write_text(json.dumps({"name": "dotted", "rules": [{"match": {"endpoint": "chat"},
                                                             "respond": {"content": content}}]}), encoding="utf-8")
    message = "{{ faker.name }} {{ __import__('os').system('touch PWNED') }} {{ body }}"

    with MockServer(scenarios=[str(path)]) as server:
        answer = httpx.post(server.url + CHAT, json={"model": "gpt-4o", "messages": [{"role": "user", "content": message}]},
                            headers={"Authorization": f"Bearer {server.api_key}"})

    assert answer.status_code == 200
    assert answer.json()["choices"][0]["message"]["content"] == f"[][][][][][][user][{message}]"
    assert list(tmp_path.iterdir()) == [path]


# --- the admin API and the file system -------------------------------------------------------------

def test_the_admin_api_loads_scenario_files_but_reads_nothing_else(tmp_path, monkeypatch):
    secret = tmp_path / "notes.txt"
    secret.write_text("root:x:0:0:hunter2-very-secret:/root:/bin/bash\n", encoding="utf-8")
    folder = tmp_path / "folder.yaml"
    folder.mkdir()
    (folder / "inner.yaml").write_text("name: inner\nrules: []\n", encoding="utf-8")
    good = tmp_path / "good.yaml"
    good.write_text("name: good\nrules:\n  - match: {endpoint: chat}\n    respond: {content: fine}\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)  # a bare name that is a file here must still not be read
    refused_names = [str(secret), "notes.txt", "/etc/passwd", "/etc", str(folder), "/dev/zero", "/proc/self/environ",
                     "../../../../../../etc/passwd"]

    with MockServer(scenario_dirs=(str(tmp_path),)) as server, httpx.Client(base_url=server.url, timeout=10) as admin:
        answers = {}
        for name in refused_names:
            started = time.monotonic()
            answers[name] = (admin.put("/__admin/scenarios/active", json={"names": [name]}), time.monotonic() - started)
        accepted = admin.put("/__admin/scenarios/active", json={"names": [str(good)]})
        shipped = admin.put("/__admin/scenarios/active", json={"names": ["rate-limited"]})

    for name, (answer, took) in answers.items():
        assert answer.status_code == 400, name
        error = answer.json()["error"]
        assert error["code"] == "invalid_request" and "names[0]" in error["message"], (name, error)
        assert "hunter2" not in answer.text and "root:" not in answer.text, name
        assert took < 2.0, name
    assert accepted.status_code == 200 and [s["name"] for s in accepted.json()["active"]] == ["good"]
    assert shipped.status_code == 200
