"""The README's examples are real.

Every Python, JavaScript and YAML block in the README is marked, just above its fence, either
`<!-- example: KIND -->` (a whole file) or `<!-- sketch -->` (a piece of the reader's own code,
such as `my_client.ask(...)`). Each example is copied into an empty folder outside the checkout
and run there with nothing but what is installed: `python` (`python served`: against
`mockpoeti serve`, whose default URL in the text is replaced by a server's on a free port),
`pytest`, `node served`, or `mockpoeti validate` for a `scenario`. And the README's test
command is the line `.ci/run` runs.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from serving import PYTEST_OPTIONS, serve

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
NODE_MODULES = ROOT / "tests" / "node" / "node_modules"
DEFAULT_URL = "http://127.0.0.1:8080"
RUN_TIMEOUT_S = 120
LANGUAGES = {"python": "python", "pytest": "python", "node": "js", "scenario": "yaml"}
MARKER = re.compile(r"<!-- (?:example: (?P<kind>\w+)(?P<served> served)?|sketch(?::[^>]*)?) -->")


@dataclass(frozen=True)
class Block:
    line: int  # of the opening fence
    lang: str
    marker: str  # the line above the fence
    body: str

    @property
    def kind(self) -> str | None:
        found = MARKER.fullmatch(self.marker)
        return found["kind"] if found else None

    @property
    def served(self) -> bool:
        found = MARKER.fullmatch(self.marker)
        return bool(found and found["served"])

    @property
    def id(self) -> str:
        return f"{self.kind}{'-served' if self.served else ''}-line{self.line}"


def blocks(text: str) -> list[Block]:
    lines = text.splitlines()
    found, i = [], 0
    while i < len(lines):
        opening = re.fullmatch(r"```(\w*)", lines[i])
        if opening:
            end = lines.index("```", i + 1)
            found.append(Block(i + 1, opening[1], lines[i - 1] if i else "", "\n".join(lines[i + 1:end]) + "\n"))
            i = end
        i += 1
    return found


BLOCKS = blocks(README.read_text(encoding="utf-8"))
EXAMPLES = [b for b in BLOCKS if b.kind]


def child_env() -> dict[str, str]:
    """This environment, without what would point a child at the checkout."""
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}


def run(argv: list[str], folder: Path) -> subprocess.CompletedProcess:
    done = subprocess.run(argv, cwd=folder, env=child_env(), capture_output=True, text=True, encoding="utf-8",
                          timeout=RUN_TIMEOUT_S, check=False)
    assert done.returncode == 0, f"{argv[-1]} failed in {folder}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


def test_every_code_block_is_an_example_or_a_sketch():
    code = [b for b in BLOCKS if b.lang in ("python", "js", "yaml")]
    unmarked = [f"README.md:{b.line}" for b in code if not MARKER.fullmatch(b.marker)]
    assert not unmarked, f"mark each block `<!-- example: KIND -->` (a whole file) or `<!-- sketch -->`: {unmarked}"
    assert all(LANGUAGES.get(b.kind) == b.lang for b in EXAMPLES), [(b.line, b.kind, b.lang) for b in EXAMPLES]
    kinds = sorted({b.id.rsplit("-line", 1)[0] for b in EXAMPLES})
    assert kinds == ["node-served", "pytest", "python", "python-served", "scenario"]


def test_readme_quotes_the_example_test_file_verbatim():
    example = (ROOT / "tests" / "test_readme_example.py").read_text(encoding="utf-8")
    assert any(b.kind == "pytest" and b.body == example for b in EXAMPLES)


@pytest.mark.parametrize("example", EXAMPLES, ids=[b.id for b in EXAMPLES])
def test_each_example_runs_from_an_empty_folder(example: Block, tmp_path: Path):
    assert not tmp_path.resolve().is_relative_to(ROOT)
    if example.kind == "scenario":
        (tmp_path / "example.yaml").write_text(example.body, encoding="utf-8")
        assert "1 scenario file valid" in run([sys.executable, "-m", "mockpoeti", "validate", "example.yaml"], tmp_path).stdout
    elif example.kind == "pytest":
        (tmp_path / "test_example.py").write_text(example.body, encoding="utf-8")
        (tmp_path / "pytest.ini").write_text("[pytest]\n", encoding="utf-8")  # pytest's defaults: no asyncio_mode, no conftest
        done = run([sys.executable, "-m", "pytest", *PYTEST_OPTIONS, "-p", "no:xdist", "-q", "test_example.py"], tmp_path)
        tests = len(re.findall(r"^(?:async )?def test_", example.body, re.MULTILINE))
        assert re.search(rf"^{tests} passed", done.stdout, re.MULTILINE), done.stdout[-2000:]
    elif example.kind == "python" and not example.served:
        (tmp_path / "example.py").write_text(example.body, encoding="utf-8")
        assert run([sys.executable, "example.py"], tmp_path).stdout.strip()
    else:
        assert DEFAULT_URL in example.body
        with serve() as server:
            body = example.body.replace(DEFAULT_URL, server.url)
            if example.kind == "node":
                assert NODE_MODULES.is_dir(), "the openai npm package is missing: run `npm install --prefix tests/node`"
                (tmp_path / "node_modules").symlink_to(NODE_MODULES)  # the installed npm package, as `npm install openai` gives
                (tmp_path / "example.mjs").write_text(body, encoding="utf-8")
                done = run(["node", "example.mjs"], tmp_path)
            else:
                (tmp_path / "example.py").write_text(body, encoding="utf-8")
                done = run([sys.executable, "example.py"], tmp_path)
            chats = server.stdout  # nothing: the server prints only its ready line
        assert done.stdout.strip() and "Traceback" not in done.stderr
        assert chats.count("\n") == 1


@pytest.mark.skipif(not (ROOT / ".ci" / "run").is_file(), reason="the CI script is in a checkout, not in the sdist")
def test_ci_runs_the_readme_test_command_verbatim():
    [block] = [b for b in BLOCKS if b.marker == "<!-- test-command -->"]
    [command] = block.body.splitlines()
    printed = subprocess.run(["bash", str(ROOT / ".ci" / "run"), "--print-command"], capture_output=True, text=True,
                             timeout=60, check=True).stdout

    assert printed == command + "\n"
    steps = [step.strip() for step in command.split("&&")]
    assert steps[0] == 'pip install -q -e ".[test]"' and steps[-1] == "pytest -n 2"
    assert steps[2:5] == ["ruff check .", "mypy", "lint-imports"] and steps[1].startswith("npm install ")
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "python3 -m venv" in ci and "--system-site-packages" not in ci
    assert ci.strip().splitlines()[-1] == 'bash -euo pipefail -c "$command"'  # what it prints is what it runs, last
