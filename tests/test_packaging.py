"""Packaging stays honest: the wheel built from this tree, installed into a fresh
venv and run from a folder outside the checkout, finds its fixtures, its shipped
scenarios and its pytest plugin.

The suite itself imports the checkout (editable install), so this is the one test
that sees what a user's `pip install mockpoeti` gets.

How: `pip wheel` (the build backend, hatchling, comes from the package index in
pip's isolated build environment, as for any user), then a venv that inherits
nothing (no `--system-site-packages`) and the wheel installed into it with
`--no-deps`. Its dependencies are the ones this interpreter runs with: a `.pth`
file in the venv names this interpreter's own site-packages folders (`site`,
`sysconfig`), so it works the same whether the suite runs in a venv (the README's
way) or in a system interpreter. A clean venv would fetch aiohttp, Faker and the
rest from the index on every run (9 to 13 s measured, against ~1 s), and what it
would prove, that the wheel declares its dependencies, is checked below from the
wheel's own METADATA. Those folders may hold the checkout's editable install too;
a `.pth` line adds a folder without running the `.pth` files in it, so the
editable hook stays off, and every check asserts that what ran was imported from
the venv.

The sdist carries mockpoeti/, fixtures/, scenarios/, tests/, README.md and
pyproject.toml, and the suite runs from an unpacked sdist: the tests that
need a checkout skip there (test_benchmark_smoke.py needs benchmarks/,
test_readme.py's CI check needs .ci/run).
"""

from __future__ import annotations

import email
import json
import os
import re
import shutil
import site
import subprocess
import sys
import sysconfig
import tomllib
import venv
import zipfile
from importlib.machinery import EXTENSION_SUFFIXES
from pathlib import Path

import httpx
import pytest
from serving import PYTEST_OPTIONS, Served

ROOT = Path(__file__).resolve().parents[1]
BUILD_TIMEOUT_S = 300
RUN_TIMEOUT_S = 120


def shipped(folder: str) -> set[str]:
    return {p.name for p in (ROOT / folder).iterdir() if p.is_file()}


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without what would point a child at the checkout."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    return {**env, **extra}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    if not (ROOT / "pyproject.toml").is_file():
        pytest.skip("no pyproject.toml here: nothing to build")
    out = tmp_path_factory.mktemp("wheel")
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(out), str(ROOT)],
                          capture_output=True, text=True, timeout=BUILD_TIMEOUT_S, env=clean_env(), check=False)
    assert done.returncode == 0, f"pip wheel failed:\n{done.stdout}\n{done.stderr}"
    [built] = out.glob("mockpoeti-*.whl")
    return built


def running_site_folders() -> list[str]:
    """Where this interpreter's packages are: its site-packages (a venv's, or the system's), the
    user's when it reads them, sysconfig's purelib and platlib, and PYTHONPATH (which clean_env
    takes from the children), but never the checkout itself (a venv inside it, as the README's
    `.venv`, is fine: its site-packages holds no mockpoeti source)."""
    folders = [*site.getsitepackages(), *([site.getusersitepackages()] if site.ENABLE_USER_SITE else [])]
    folders += [sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]]
    folders += os.environ.get("PYTHONPATH", "").split(os.pathsep)
    return [f for f in dict.fromkeys(folders) if f and os.path.isdir(f) and Path(f).resolve() not in (ROOT, ROOT / "tests")]


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory) -> Path:
    """A venv holding the wheel (dependencies: this interpreter's, through a .pth); its bin/ folder."""
    home = tmp_path_factory.mktemp("venv")
    venv.EnvBuilder(system_site_packages=False, with_pip=False).create(home)
    python = home / "bin" / "python"
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, timeout=RUN_TIMEOUT_S, env=clean_env(), check=True).stdout.strip()
    Path(purelib, "_running_interpreter.pth").write_text("\n".join(running_site_folders()) + "\n", encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet", "--no-deps", "--force-reinstall",
         "--no-index", str(wheel)],
        capture_output=True, text=True, timeout=BUILD_TIMEOUT_S, env=clean_env(), check=False,
    )
    assert done.returncode == 0, f"installing the wheel failed:\n{done.stdout}\n{done.stderr}"
    return home / "bin"


def test_the_wheel_carries_fixtures_scenarios_the_plugin_and_its_dependencies(wheel):
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        [metadata] = [n for n in names if n.endswith(".dist-info/METADATA")]
        [entry_points] = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
        declared = email.message_from_bytes(archive.read(metadata)).get_all("Requires-Dist") or []
        entries = archive.read(entry_points).decode()

    assert {Path(n).name for n in names if n.startswith("mockpoeti/fixtures/")} == shipped("fixtures")
    assert {Path(n).name for n in names if n.startswith("mockpoeti/scenarios/")} == shipped("scenarios")
    assert {"mockpoeti/pytest_plugin.py", "mockpoeti/http/openapi.yaml", "mockpoeti/cli.py"} <= set(names)
    assert not [n for n in names if n.startswith(("tests/", "benchmarks/", "fixtures/", "scenarios/"))]
    assert re.search(r"^\[pytest11\]\nmockpoeti = mockpoeti\.pytest_plugin$", entries, re.MULTILINE), entries
    assert re.search(r"^\[console_scripts\]\nmockpoeti = mockpoeti\.cli:main$", entries, re.MULTILINE), entries
    wanted = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["dependencies"]
    unconditional = sorted(d.replace(" ", "") for d in declared if "extra ==" not in d)
    assert unconditional == sorted(d.replace(" ", "") for d in wanted)


# what the build hook needs to compile the hot path (hatch_build.py): a C compiler and the headers
COMPILER = bool(shutil.which("cc") or shutil.which("gcc")) and Path(sysconfig.get_paths()["include"], "Python.h").exists()


def test_the_wheel_carries_the_compiled_hot_path_where_a_compiler_is(wheel):
    with zipfile.ZipFile(wheel) as archive:
        compiled = sorted(n for n in archive.namelist() if n.endswith(".so"))
    if COMPILER:
        assert "mockpoeti/answers/generate" + EXTENSION_SUFFIXES[0] in compiled, compiled
        assert any(n.startswith("mockpoeti__mypyc.") for n in compiled), compiled
        assert "-none-any" not in wheel.name  # a platform wheel
    else:
        assert compiled == [] and wheel.name.endswith("-py3-none-any.whl")


WHERE_FROM = """
import json, sys
import aiohttp, mockpoeti, mockpoeti.server, mockpoeti.answers.generate
from mockpoeti.base.catalog import shipped_dir
print(json.dumps({"mockpoeti": [mockpoeti.__file__, mockpoeti.server.__file__, mockpoeti.answers.generate.__file__],
                  "native": mockpoeti._native.state, "aiohttp": aiohttp.__file__,
                  "fixtures": str(shipped_dir("fixtures")), "scenarios": str(shipped_dir("scenarios")), "path": sys.path,
                  "venv": sys.prefix != sys.base_prefix}))
"""


def test_the_venv_imports_mockpoeti_from_the_wheel_and_only_its_dependencies_from_here(installed, tmp_path):
    home = installed.parent
    done = subprocess.run([str(installed / "python"), "-c", WHERE_FROM], cwd=tmp_path, capture_output=True, text=True,
                          timeout=RUN_TIMEOUT_S, env=clean_env(), check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    where = json.loads(done.stdout)

    assert where["venv"] and all(Path(f).is_relative_to(home) for f in where["mockpoeti"]), where["mockpoeti"]
    assert Path(where["fixtures"]).is_relative_to(home) and Path(where["scenarios"]).is_relative_to(home)
    assert not Path(where["aiohttp"]).is_relative_to(home)  # a dependency: this interpreter's, through the .pth
    assert any(Path(where["aiohttp"]).is_relative_to(folder) for folder in running_site_folders())
    assert str(ROOT) not in where["path"]  # the checkout's editable hook did not run
    assert where["native"] == ("compiled" if COMPILER else "pure")
    assert where["mockpoeti"][2].endswith(EXTENSION_SUFFIXES[0] if COMPILER else ".py")


def test_the_installed_script_serves_a_shipped_scenario_from_outside_the_checkout(installed, tmp_path):
    with Served(argv=[str(installed / "mockpoeti"), "serve", "--port", "0", "--scenario", "retry-then-succeed"],
                env=clean_env(), cwd=tmp_path) as server:
        with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {server.api_key}"}) as http:
            body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}
            statuses = [http.post("/v1/chat/completions", json=body).status_code for _ in range(3)]
            active = http.get("/__admin/scenarios").json()["active"]
            models = http.get("/v1/models").json()["data"]

    assert statuses == [429, 429, 200]  # the shipped scenario's two rate limits, then answers
    assert [s["name"] for s in active] == ["retry-then-succeed"]
    assert {m["id"] for m in models} >= {"gpt-4o", "claude-3-5-sonnet-20241022"}  # the shipped fixtures


PLUGIN_USER = '''
import pathlib

import httpx
import pytest

import mockpoeti


def test_imported_from_the_venv():
    assert pathlib.Path(mockpoeti.__file__).is_relative_to({home!r}), mockpoeti.__file__


@pytest.mark.poeti_scenario("retry-then-succeed")
def test_the_fixture_and_a_shipped_scenario(poeti):
    headers = {{"Authorization": "Bearer " + poeti.api_key}}
    body = {{"model": "gpt-4o", "messages": [{{"role": "user", "content": "hi"}}]}}
    statuses = [httpx.post(poeti.url + "/v1/chat/completions", json=body, headers=headers).status_code for _ in range(3)]
    assert statuses == [429, 429, 200]
'''


def test_the_installed_pytest_plugin_runs_outside_the_checkout(installed, tmp_path):
    home = str(installed.parent)
    (tmp_path / "test_user.py").write_text(PLUGIN_USER.format(home=home), encoding="utf-8")
    # the user's own pytest.ini, so this checkout's pyproject.toml is not the one found
    (tmp_path / "pytest.ini").write_text("[pytest]\n", encoding="utf-8")
    done = subprocess.run(
        [str(installed / "python"), "-m", "pytest", *PYTEST_OPTIONS, "-p", "no:xdist", "-q", "test_user.py"],
        cwd=tmp_path, capture_output=True, text=True, timeout=RUN_TIMEOUT_S, env=clean_env(), check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "2 passed" in done.stdout
    where = subprocess.run(
        [str(installed / "python"), "-c", "import importlib.metadata as m; d = m.distribution('mockpoeti');"
         " print(d.locate_file('')); print(sorted(e.value for e in d.entry_points if e.group == 'pytest11'))"],
        cwd=tmp_path, capture_output=True, text=True, timeout=RUN_TIMEOUT_S, env=clean_env(), check=True,
    ).stdout.splitlines()
    assert Path(where[0]).is_relative_to(home), where  # the distribution pytest found is the wheel's
    assert where[1] == "['mockpoeti.pytest_plugin']"


def test_the_sdist_include_list_holds_what_the_tests_read():
    """What tests/ opens from the repository's root is in [tool.hatch.build.targets.sdist] include,
    but for what only a checkout has: benchmarks/ and .ci/, whose tests skip without them."""
    include = set(tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
                  ["tool"]["hatch"]["build"]["targets"]["sdist"]["include"])
    read = set()
    for test in (ROOT / "tests").glob("*.py"):
        text = test.read_text(encoding="utf-8")
        read |= set(re.findall(r'(?:ROOT|parents\[1\]|parent\.parent)\s*/\s*"([\w.-]+)"', text))
    read -= {"pyproject.toml"}  # always in an sdist
    assert read - include <= {"benchmarks", ".ci"}, f"tests read {sorted(read - include)} from the root; the sdist lacks them"
