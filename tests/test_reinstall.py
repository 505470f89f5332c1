"""A running server keeps answering while mockpoeti is reinstalled under it.

`pip install` (`-e .` or not) removes the package's files and writes them again. A server
that imported part of its code only on first use (structured answers, the scenario loader)
answered every request with `tools` or `response_format` 500 until it was restarted. So
whatever serving may import is imported before the server says it is ready
(`mockpoeti.server.IMPORTED_BEFORE_READY`), and these tests hold that: one finds every
function-level import in the package and checks a fresh server has loaded it; the other
runs a server from a copy of the package, deletes the copy's code, and uses every feature.
"""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
from serving import DEFAULT_KEY, Served

from mockpoeti.server import IMPORTED_BEFORE_READY

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "mockpoeti"
ENTRY_POINTS = {"cli.py", "pytest_plugin.py", "__main__.py"}  # they run before a server starts
# Dependencies that reinstalling mockpoeti does not touch, loaded on first use because start-up
# would pay for them: Faker costs ~100 ms with its three locales (half of the start-up), for tool
# arguments and templates; prometheus_client only writes /metrics, which most runs never ask for;
# google-re2 (7 ms) and regex (24 ms) come with the first regular expression a user wrote;
# PyYAML (~10 ms) with the first YAML file that is not a shipped one (those are read from a
# parsed copy: mockpoeti/base/yamlfiles.py), a scenario file or a user's fixtures; and two
# modules of the standard library for rare paths: decimal (~2 ms) with a schema's float
# `multipleOf`, difflib with the first "did you mean".
LAZY_BY_CHOICE = {"faker", "prometheus_client", "re2", "regex", "yaml", "decimal", "difflib"}


def lazy_imports() -> dict[str, str]:
    """Every module imported inside a function (not under TYPE_CHECKING), outside the entry points:
    module name -> where."""
    found: dict[str, str] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name in ENTRY_POINTS:
            continue
        where = str(path.relative_to(ROOT))
        for node in _function_level(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found.update({alias.name: f"{where}:{node.lineno}" for alias in node.names})
            elif node.module and node.level == 0:
                found[node.module] = f"{where}:{node.lineno}"
                for alias in node.names:  # `from mockpoeti.scripting import loader`: a module too
                    candidate = f"{node.module}.{alias.name}"
                    if (ROOT / (candidate.replace(".", "/") + ".py")).is_file():
                        found[candidate] = f"{where}:{node.lineno}"
    return found


def _function_level(tree: ast.AST):
    def walk(node: ast.AST, inside: bool):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and isinstance(child.test, ast.Name) and child.test.id == "TYPE_CHECKING":
                continue
            if isinstance(child, (ast.Import, ast.ImportFrom)) and inside:
                yield child
            yield from walk(child, inside or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)))

    yield from walk(tree, False)


READY_MODULES = """
import json, sys
from mockpoeti import MockServer
with MockServer():
    print(json.dumps(sorted(sys.modules)))
"""


def test_whatever_serving_imports_later_is_loaded_before_the_server_is_ready():
    lazy = lazy_imports()
    assert "mockpoeti.answers.structured" in lazy and "faker" in lazy  # the scan sees what it must
    done = subprocess.run([sys.executable, "-c", READY_MODULES], capture_output=True, text=True, timeout=60,
                          cwd=ROOT, check=True)
    loaded = set(json.loads(done.stdout.splitlines()[-1]))

    missing = {name: where for name, where in lazy.items() if name not in loaded and name.split(".")[0] not in LAZY_BY_CHOICE}
    assert not missing, f"imported on first use, after the server is ready (add to IMPORTED_BEFORE_READY): {missing}"
    assert set(IMPORTED_BEFORE_READY) <= set(lazy), "IMPORTED_BEFORE_READY names a module nothing imports later"
    assert not {name for name in loaded if name.split(".")[0] in LAZY_BY_CHOICE}  # faker is still lazy: start-up pays nothing


PROBE = """name: reinstall-probe
rules:
  - match: {endpoint: chat, message: probe}
    respond: {content: served from the copy}
"""
SCHEMA = {"type": "object", "properties": {"code": {"type": "string", "pattern": "^[A-Z]{3}-[0-9]{2}$"},
                                           "amount": {"anyOf": [{"type": "number"}, {"type": "string"}]}},
          "required": ["code", "amount"], "additionalProperties": False}
WEATHER = {"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}


def chat(http: httpx.Client, text: str, **fields) -> httpx.Response:
    return http.post("/v1/chat/completions", json={"model": "gpt-4o", "messages": [{"role": "user", "content": text}], **fields})


def test_a_server_keeps_answering_when_its_code_is_removed_under_it(tmp_path):
    site = tmp_path / "site"
    shutil.copytree(PACKAGE, site / "mockpoeti", ignore=shutil.ignore_patterns("__pycache__"))
    for data in ("fixtures", "scenarios"):  # laid out as in the wheel
        shutil.copytree(ROOT / data, site / "mockpoeti" / data, dirs_exist_ok=True)
    (site / "mockpoeti" / "scenarios" / "reinstall-probe.yaml").write_text(PROBE, encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(site)}
    argv = [sys.executable, "-m", "mockpoeti", "serve", "--port", "0", "--scenario", "reinstall-probe"]

    with Served(argv=argv, env=env, cwd=tmp_path) as server:
        # what pip's uninstall does before it writes the new version: the code is gone
        code = [p for p in (site / "mockpoeti").rglob("*") if p.suffix in (".py", ".pyc")]
        for path in code:
            path.unlink()
        with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {DEFAULT_KEY}"}, timeout=30) as http:
            probe = chat(http, "probe")
            structured = chat(http, "a code", response_format={"type": "json_schema", "json_schema": {
                "name": "c", "strict": True, "schema": SCHEMA}})
            tools = chat(http, "weather in Paris?", tools=[WEATHER])
            json_mode = chat(http, "json please", response_format={"type": "json_object"})
            stream = chat(http, "stream", stream=True, stream_options={"include_usage": True})
            stub = http.post("/__admin/stubs", json={"match": {"message": "template"}, "respond": "hi {{ faker.name }}"})
            templated = chat(http, "template")
            switched = http.put("/__admin/scenarios/active", json={"names": ["rate-limited"]})
            limited = chat(http, "now limited")
            reset = http.post("/__admin/reset")
            document = http.get("/openapi.json")
        server.stop()

    assert len(code) > 50 and not [p for p in site.rglob("*") if p.suffix in (".py", ".pyc")]  # really gone
    assert probe.json()["choices"][0]["message"]["content"] == "served from the copy"  # the server ran the copy
    answers = [structured, tools, json_mode, stream, stub, templated, switched, reset, document]
    assert [r.status_code for r in answers] == [200, 200, 200, 200, 201, 200, 200, 200, 200], [r.text[:300] for r in answers]
    value = json.loads(structured.json()["choices"][0]["message"]["content"])
    assert value["code"][3] == "-" and isinstance(value["amount"], (int, float))
    assert tools.json()["choices"][0]["message"]["tool_calls"][0]["function"]["name"] == "get_weather"
    assert stream.text.rstrip().endswith("data: [DONE]")
    assert templated.json()["choices"][0]["message"]["content"].startswith("hi ")
    assert limited.status_code == 429
    assert "Traceback" not in server.stderr, server.stderr[-3000:]
