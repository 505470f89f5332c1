"""The compiled hot path (hatch_build.py, mockpoeti/_native.py): used where it is built and
current, never when a source changed since, and answering byte for byte as the Python does.

The suite itself runs on whatever this checkout's install built: compiled where a C compiler
is (the README's test command compiles it), so every other test file tests the compiled build;
`test_the_compiled_and_the_python_builds_answer_alike` holds the Python build to the same bytes.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import sysconfig
from importlib.machinery import EXTENSION_SUFFIXES
from pathlib import Path

import httpx
from serving import Served, console_script

import mockpoeti
import mockpoeti.answers.generate
from mockpoeti import _native

# what the build hook needs to compile: a C compiler and this interpreter's headers
COMPILER = bool(shutil.which("cc") or shutil.which("gcc")) and Path(sysconfig.get_paths()["include"], "Python.h").exists()


def built_manifest() -> dict[str, tuple[int, int, str]] | None:
    try:
        return _native.read_manifest()[0]
    except FileNotFoundError:
        return None


def test_this_checkout_runs_its_compiled_build_while_its_sources_are_the_ones_built():
    built = built_manifest()
    generate = mockpoeti.answers.generate.__file__
    beside = os.path.join(_native.PACKAGE, "answers", "generate" + EXTENSION_SUFFIXES[0])
    if os.environ.get("MOCKPOETI_PURE"):
        assert _native.state.startswith("pure") and generate.endswith(".py")
    elif os.path.exists(beside):  # a wheel's install
        assert _native.state == "compiled" and generate == beside
    elif built is None:  # an editable install that compiled nothing: only where no compiler is
        assert not COMPILER, "the editable install compiled nothing: `pip install -e . -v` shows why"
        assert _native.state == "pure" and generate.endswith(".py")
    elif _native.stale(built) is None:
        assert _native.state == "compiled"
        assert generate == os.path.join(_native.NATIVE_HOME, "mockpoeti", "answers", "generate" + EXTENSION_SUFFIXES[0])
    else:  # edited since `pip install -e .`: the Python runs, and says why
        assert _native.state == f"pure ({_native.stale_build})" and "pip install -e ." in _native.state
        assert generate.endswith(".py")


def _built(root: Path) -> dict[str, tuple[int, int, str]]:
    """What a build of the package under `root` lists of its sources (hatch_build.source_lines)."""
    out = {}
    for name in _native.sources(str(root)):
        data, stat = (root / name).read_bytes(), (root / name).stat()
        out[name] = (stat.st_size, stat.st_mtime_ns, hashlib.sha256(data).hexdigest())
    return out


def _tree(root: Path) -> dict[str, tuple[int, int, str]]:
    """A package of two sources under `root`, and what a build of it lists."""
    for name, text in {"mockpoeti/__init__.py": "", "mockpoeti/answers/generate.py": "X = 1\n"}.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return _built(root)


def test_a_build_is_stale_once_any_source_changes_and_fresh_while_only_times_do(tmp_path):
    built = _tree(tmp_path)
    source = tmp_path / "mockpoeti" / "answers" / "generate.py"
    assert _native.stale(built, str(tmp_path)) is None

    os.utime(source, ns=(1, 1))  # a checkout that wrote the same text again
    assert _native.stale(built, str(tmp_path)) is None

    source.write_text("X = 2\n")
    assert _native.stale(built, str(tmp_path)) == "mockpoeti/answers/generate.py changed since the build"

    source.write_text("X = 1\n")
    (tmp_path / "mockpoeti" / "new.py").write_text("")
    assert _native.stale(built, str(tmp_path)) == "a source was added or removed since the build"


# What the two builds are held to: every kind of answer the compiled modules make or refuse.
CALLS = [
    ("POST", "/v1/chat/completions", {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "What is 2+2?"}]}),
    ("POST", "/v1/chat/completions", {"model": "gpt-4o", "messages": [{"role": "system", "content": "Be brief."},
                                                                       {"role": "user", "content": "中文 and 😀, quoted \"x\""}],
                                      "n": 2, "logprobs": True, "top_logprobs": 2, "max_tokens": 12}),
    ("POST", "/v1/chat/completions", {"model": "gpt-4o-mini", "stream": True, "stream_options": {"include_usage": True},
                                      "messages": [{"role": "user", "content": "Stream a short answer"}]}),
    ("POST", "/v1/chat/completions", {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Weather in Paris?"}],
                                      "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {
                                          "type": "object", "properties": {"city": {"type": "string"}},
                                          "required": ["city"]}}}]}),
    ("POST", "/v1/chat/completions", {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "A city"}],
                                      "response_format": {"type": "json_schema", "json_schema": {"name": "c", "schema": {
                                          "type": "object", "properties": {"name": {"type": "string"}},
                                          "required": ["name"]}}}}),
    ("POST", "/v1/chat/completions", {"model": "gpt-4o-mini", "messages": [{"role": "wizard", "content": "hi"}]}),
    ("POST", "/v1/chat/completions", {"model": "no-such-model", "messages": [{"role": "user", "content": "hi"}]}),
    ("POST", "/v1/chat/completions", {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "refund please"}]}),
    ("GET", "/v1/models", None),
    ("GET", "/api/v1/usage", None),
]


def _answers(env: dict[str, str]) -> list:
    argv = [console_script(), "serve", "--port", "0", "--seed", "7", "--clock", "2031-01-02T03:04:05Z",
            "--scenario", "retry-then-succeed"]
    with Served(argv=argv, env=env) as server, \
            httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {server.api_key}"}) as http:
        out: list = [http.request(method, path, json=body) for method, path, body in CALLS]
        out = [(r.status_code, r.headers.get("content-type"), r.content) for r in out]
        journal = http.get("/__admin/requests").json()["requests"]
        out.append([(e["status"], e.get("rule"), e.get("near_misses")) for e in journal])
        stats = http.get("/api/v1/request-traces/stats").json()
        out.append({k: v for k, v in stats.items() if "latency" not in k})
    return out


def test_the_compiled_and_the_python_builds_answer_alike():
    compiled, pure = _answers(dict(os.environ)), _answers({**os.environ, "MOCKPOETI_PURE": "1"})
    assert len(compiled) == len(CALLS) + 2
    for i, (one, other) in enumerate(zip(compiled, pure, strict=True)):
        assert one == other, f"call {i}: {CALLS[i] if i < len(CALLS) else 'the books'}"
    assert [status for status, _, _ in compiled[: len(CALLS)]] == [429, 429, 200, 200, 200, 400, 404, 200, 200, 200]


def test_the_python_build_is_what_runs_under_mockpoeti_pure():
    """(The same bytes above would prove nothing if both runs were the compiled build.)"""
    code = "import mockpoeti, mockpoeti.answers.generate as g; print(mockpoeti._native.state, g.__file__)"
    done = subprocess.run([sys.executable, "-c", code], env={**os.environ, "MOCKPOETI_PURE": "1"}, capture_output=True,
                          text=True, check=True)
    assert done.stdout.startswith("pure (MOCKPOETI_PURE is set)") and done.stdout.strip().endswith("generate.py")


SERVE_FROM = "import sys; sys.path.insert(0, sys.argv[1]); from mockpoeti.cli import main; sys.exit(main(sys.argv[2:]))"


def test_serve_says_so_when_an_edited_checkout_runs_as_python(tmp_path):
    """A copy of the package with a build manifest, one source edited after it: `serve` runs
    the Python and says why on stderr (no compiled module is needed to show it)."""
    shutil.copytree(Path(mockpoeti.__path__[0]), tmp_path / "mockpoeti", ignore=shutil.ignore_patterns("__pycache__"))
    for data in ("fixtures", "scenarios"):
        shutil.copytree(Path(mockpoeti.__path__[0]).parent / data, tmp_path / data)
    home = Path(str(tmp_path), os.path.relpath(_native.NATIVE_HOME, _native.ROOT))
    home.mkdir(parents=True)
    lines = [f"source {name} {size} {mtime_ns} {sha256}" for name, (size, mtime_ns, sha256) in _built(tmp_path).items()]
    (home / _native.MANIFEST).write_text("\n".join([*lines, "module mockpoeti/answers/generate" + EXTENSION_SUFFIXES[0]]))
    with (tmp_path / "mockpoeti" / "base" / "clock.py").open("a") as f:
        f.write("# edited\n")
    argv = [sys.executable, "-c", SERVE_FROM, str(tmp_path), "serve", "--port", "0"]
    with Served(argv=argv, env={k: v for k, v in os.environ.items() if k != "MOCKPOETI_PURE"}) as server:
        assert httpx.get(server.url + "/v1/models", headers={"Authorization": f"Bearer {server.api_key}"}).status_code == 200
        said = server.stderr
    assert "mockpoeti: running as plain Python: mockpoeti/base/clock.py changed since the build; " \
           "`pip install -e .` compiles it again" in said, said
