"""Round 3 of the limits: what the second round added (stubs, templates, near misses, the
recorder, the admin API's loads) gets the bounds the core already has. Each test is one
attack from issue 19, run against a real `mockpoeti serve` (or `mockpoeti record`), with a
probe on another connection that must stay answered and, where memory is the point, the
server's RSS."""

from __future__ import annotations

import json
import random
import subprocess
import time

import httpx
import pytest
from serving import console_script, serve
from test_limits import AUTH, Probe, error_of

from mockpoeti import MockServer


def chat(content: str, model: str = "gpt-4o", **extra) -> dict:
    return {"model": model, "messages": [{"role": "user", "content": content}], **extra}


class Watch(Probe):
    """`test_limits.Probe` that has been answered once before the attack starts and once after
    it ends, however short the attack."""

    def __enter__(self) -> Watch:
        super().__enter__()
        while self.calls < 1:
            time.sleep(0.005)
        return self

    def __exit__(self, *exc: object) -> None:
        calls = self.calls
        while self.calls <= calls and self._thread.is_alive():
            time.sleep(0.005)
        super().__exit__(*exc)


def timed(http: httpx.Client, method: str, path: str, **kwargs) -> tuple[httpx.Response, float]:
    started = time.perf_counter()
    answer = http.request(method, path, **kwargs)
    return answer, time.perf_counter() - started


# --- 1. regular expressions run in bounded time --------------------------------------------

def test_a_backtracking_message_regex_answers_at_once_and_holds_nobody_up():
    """`/^(a|a)+b/` on 24 a's held the loop 3.15 s with Python's `re`; `/error.*timeout/` on a
    120k prompt 1.5 s. On RE2 both are linear: a few milliseconds."""
    with serve() as server, httpx.Client(base_url=server.url, headers=AUTH, timeout=30) as http:
        for pattern in ("/^(a|a)+b/", "/error.*timeout/"):
            assert http.post("/__admin/stubs", json={"match": {"message": pattern}, "respond": "matched"}).status_code == 201
        with Watch(server.url):
            for prompt in ("a" * 24, "a" * 30 + "c", "error " * 20_000):
                answer, took = timed(http, "POST", "/v1/chat/completions", json=chat(prompt))
                assert answer.status_code == 200 and answer.json()["choices"][0]["message"]["content"] != "matched"
                assert took < 0.5, f"{took:.2f} s"
            answer = http.post("/v1/chat/completions", json=chat("error " * 20_000 + "timeout"))
            assert answer.json()["choices"][0]["message"]["content"] == "matched"
        entry = http.get("/__admin/requests", params={"limit": 1000}).json()["requests"][2]
    assert entry["near_misses"] and entry["rule"] is None


def test_a_long_prompt_against_costly_regexes_is_searched_off_the_loop():
    """RE2 is linear but not free: ~5 ns per byte and instruction when its DFA thrashes
    (`a[ab]{60}c` over 2 MiB of random a/b: ~1 s). Such a search runs in a worker thread:
    the request waits for it, nobody else does."""
    rnd = random.Random(7)
    prompt = "".join(rnd.choice("ab") for _ in range(2 * 1024 * 1024))
    with serve() as server, httpx.Client(base_url=server.url, headers=AUTH, timeout=60) as http:
        for n in (40, 50, 60):
            assert http.post("/__admin/stubs", json={"match": {"message": f"/a[ab]{{{n}}}c/"}, "respond": "x"}).status_code == 201
        with Watch(server.url) as probe:
            answer, took = timed(http, "POST", "/v1/chat/completions", json=chat(prompt, model="gpt-4.1"))
    print(f"\n3 costly regexes, a 2 MiB prompt: the request took {took:.2f} s, the probe waited at most {probe.slowest:.3f} s")
    assert answer.status_code == 200 and answer.json()["choices"][0]["message"]["content"] != "x"


@pytest.mark.parametrize("pattern", ["(?!x)abc", "(a)\\1", "a{2000}"])
def test_a_regex_re2_cannot_run_is_refused_when_it_is_loaded_naming_it(tmp_path, pattern):
    with MockServer() as server:
        with pytest.raises(ValueError, match=r"match\.message: /.*/ is not supported") as refused:
            server.stub("x", message=f"/{pattern}/")
        assert pattern[:5] in str(refused.value)
        answer = httpx.post(server.url + "/__admin/stubs", json={"match": {"message": f"/{pattern}/"}, "respond": "x"})
        assert error_of(answer) == (400, "invalid_request") and "is not supported" in answer.json()["error"]["message"]
    path = tmp_path / "lookaround.yaml"
    path.write_text(f"name: lookaround\nrules:\n  - match:\n      message: '/{pattern}/'\n    respond: {{content: x}}\n")
    done = subprocess.run([console_script(), "validate", str(path)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and done.stdout.startswith(f"{path}:4: rules[0].match.message: /")
    assert "Traceback" not in done.stdout + done.stderr and len(done.stdout.splitlines()) == 1


SLOW_PATTERN = "^(?!(a|a)+b)a{26}$"  # 23 characters: Python's `re` took 4.2 s to check a 26-a string


@pytest.mark.parametrize("where", ["response_format", "tool parameters", "enum"])
def test_a_schema_pattern_that_backtracks_is_refused_in_milliseconds_naming_the_path(where):
    schema = {"type": "string", "pattern": SLOW_PATTERN}
    if where == "enum":
        schema["enum"] = ["a" * 26]
    body = chat("x")
    if where == "tool parameters":
        body["tools"] = [{"type": "function", "function": {"name": "f", "parameters": {
            "type": "object", "properties": {"s": schema}, "required": ["s"]}}}]
        body["tool_choice"] = "required"
        path = "tools[0].function.parameters.properties.s.pattern"
    else:
        body["response_format"] = {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}
        path = "response_format.json_schema.schema.pattern"
    with serve() as server, httpx.Client(base_url=server.url, headers=AUTH, timeout=30) as http, Watch(server.url):
        answer, took = timed(http, "POST", "/v1/chat/completions", json=body)
    assert error_of(answer) == (400, "invalid_request")
    message = answer.json()["error"]["message"]
    assert f"'{path}" in message and "MAX_PATTERN_SECONDS" in message, message
    assert took < 0.5, f"{took:.2f} s"


def test_schema_patterns_with_lookarounds_still_generate(poeti, client):
    """1.6 % of SchemaStore's patterns have lookarounds (a password rule, `^(?!@@)...`): they
    run on `regex`, within the answer's time budget."""
    schema = {"type": "object", "properties": {
        "password": {"type": "string", "pattern": "^(?=.*\\d)(?=.*[A-Z])[A-Za-z\\d]{8,}$"},
        "handle": {"type": "string", "pattern": "^(?!@@)[@a-zA-Z0-9_-]+$"},
        "cjk": {"type": "string", "pattern": "^[\\u4e00-\\u9fa5]{2,4}$"},
    }, "required": ["password", "handle", "cjk"], "additionalProperties": False}
    for i in range(5):
        reply = client.chat.completions.create(**chat(f"account {i}"), response_format={
            "type": "json_schema", "json_schema": {"name": "account", "schema": schema}})
        value = json.loads(reply.choices[0].message.content)
        assert any(c.isdigit() for c in value["password"]) and any(c.isupper() for c in value["password"])
        assert not value["handle"].startswith("@@")
        assert all("\u4e00" <= c <= "\u9fa5" for c in value["cjk"]) and 2 <= len(value["cjk"]) <= 4
