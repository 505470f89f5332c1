"""The pytest plugin (entry point `pytest11`): fixture `poeti`, marker `poeti_scenario`.

One server per session (per xdist worker), started on first use on a free
port; every test gets it reset to fresh state (no stubs, its markers' scenarios). Kept import-light: pytest loads
this module in every session once mockpoeti is installed, so mockpoeti itself
(and aiohttp) is imported only when a test asks for the fixture.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from mockpoeti.base.settings import parse_setting, setting_type


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("mockpoeti")
    group.addoption("--poeti-seed", type=setting_type("seed"), default=None, help="seed for the poeti fixture's server")
    group.addoption("--poeti-clock", default=None, help="freeze the poeti fixture's clock at this time (ISO 8601)")
    group.addoption("--poeti-fixtures", default=None, help="folder replacing mockpoeti's fixtures/*.yaml")
    group.addoption("--poeti-scenario-dir", action="append", default=[], help="folder where poeti_scenario names are looked up")
    group.addoption(
        "--poeti-strict", action="store_true", default=None,
        help="fail tests that sent requests no stub or scenario rule answered",
    )
    parser.addini("poeti_seed", "seed for the poeti fixture's server", default="")
    parser.addini("poeti_clock", "freeze the poeti fixture's clock at this time (ISO 8601)", default="")
    parser.addini("poeti_fixtures", "folder replacing mockpoeti's fixtures/*.yaml", default="")
    parser.addini("poeti_scenario_dirs", "folders where poeti_scenario names are looked up", type="paths", default=[])
    parser.addini("poeti_strict", "fail tests that sent requests no stub or scenario rule answered", type="bool", default=False)


def pytest_configure(config: pytest.Config) -> None:
    """A value the server would refuse stops the session at once, with the line `MockServer` would raise."""
    _setting(config, "poeti_seed", "seed")
    _setting(config, "poeti_clock", "clock")
    config.addinivalue_line("markers", "poeti_scenario(*names): activate mockpoeti scenarios (names or paths) for this test")
    config.addinivalue_line("markers", "poeti_strict: fail this test if a request was not answered by a stub or scenario rule")


def _setting(config: pytest.Config, option: str, name: str) -> object:
    """An option's value (the command line's, else the ini's) read and checked as Settings does; a bad
    one is a usage error naming the option: `poeti_seed: 'abc' is not a whole number`."""
    text = config.getoption(option)
    if text is None or text == "":
        text = config.getini(option)
    if text is None or text == "":
        return None
    if not isinstance(text, str):
        return text  # --poeti-seed: already read and checked by its type
    try:
        return parse_setting(name, text)
    except ValueError as e:
        raise pytest.UsageError(f"{option}: {e}") from None


# --- configuration fixtures: override any of them in a conftest.py -------------------

@pytest.fixture(scope="session")
def poeti_seed(pytestconfig: pytest.Config) -> int | None:
    seed = _setting(pytestconfig, "poeti_seed", "seed")
    assert seed is None or isinstance(seed, int)
    return seed


@pytest.fixture(scope="session")
def poeti_clock(pytestconfig: pytest.Config) -> str | None:
    """Where each test's clock is frozen (None: the wall clock). With a seed, it makes bodies byte-identical."""
    return pytestconfig.getoption("poeti_clock") or pytestconfig.getini("poeti_clock") or None


@pytest.fixture(scope="session")
def poeti_fixtures_dir(pytestconfig: pytest.Config) -> str | None:
    option = pytestconfig.getoption("poeti_fixtures")
    if option:
        return option
    ini = pytestconfig.getini("poeti_fixtures")
    if not ini:
        return None
    # like every path in an ini file, relative to that file
    base = pytestconfig.inipath.parent if pytestconfig.inipath else pytestconfig.rootpath
    return str(base / ini)


@pytest.fixture(scope="session")
def poeti_scenario_dirs(pytestconfig: pytest.Config) -> list[Path]:
    return [Path(p) for p in pytestconfig.getoption("poeti_scenario_dir")] + list(pytestconfig.getini("poeti_scenario_dirs"))


@pytest.fixture(scope="session")
def poeti_strict(pytestconfig: pytest.Config) -> bool:
    option = pytestconfig.getoption("poeti_strict")
    return bool(option) if option is not None else bool(pytestconfig.getini("poeti_strict"))


# --- the servers ---------------------------------------------------------------

@pytest.fixture(scope="session")
def poeti_server(poeti_seed: int | None, poeti_fixtures_dir: str | None, poeti_scenario_dirs: list[Path]):
    """The session's server (one per xdist worker). Prefer `poeti`, which resets it."""
    from mockpoeti.server import MockServer

    folders = tuple(str(folder) for folder in poeti_scenario_dirs)  # the admin API may load files from them
    with MockServer(seed=poeti_seed, fixtures=poeti_fixtures_dir, scenario_dirs=folders) as server:
        yield server


@pytest.fixture
def poeti(request: pytest.FixtureRequest, poeti_server, poeti_seed, poeti_clock, poeti_scenario_dirs, poeti_strict):
    """A running mockpoeti with fresh state: keys, traces, usage, journal, clock, RNG, no stubs.
    Sessions the test makes (`poeti.session()`, or over HTTP) end with it."""
    names = [name for marker in request.node.iter_markers("poeti_scenario") for name in marker.args]
    scenarios = [_locate(n, poeti_scenario_dirs) for n in names]
    poeti_server.reset(seed=poeti_seed, scenarios=scenarios, clock=poeti_clock)
    poeti_server.strict = poeti_strict or request.node.get_closest_marker("poeti_strict") is not None
    before = poeti_server.session_ids
    yield poeti_server
    poeti_server.end_sessions(keep=before)


def _locate(name: str, folders: list[Path]) -> str:
    for folder in folders:
        for candidate in (folder / name, folder / f"{name}.yaml", folder / f"{name}.yml"):
            if candidate.is_file():
                return str(candidate)
    return name


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item):
    """After the test body: the server's own failures, and strict mode, fail *this* test
    (with the server-side traceback or the unanswered requests, not our frames)."""
    result = yield
    server = getattr(item, "funcargs", {}).get("poeti")
    problem = None
    if server is not None:
        try:
            server.check_errors()
            if server.strict:
                _check_all_answered(server)
        except AssertionError as e:
            problem = str(e)
    if problem:
        pytest.fail(problem, pytrace=False)
    return result


def _check_all_answered(server) -> None:
    """Strict mode: every request answered by a stub or scenario rule, and no parameter
    OpenAI does not define (a typo such as `max_token` would otherwise pass unnoticed)."""
    entries = server.requests
    unknown = [e for e in entries if e.get("unknown_fields")]
    if unknown:
        lines = [f"strict mode: {len(unknown)} request(s) sent parameters OpenAI does not define:"]
        lines += [f"  #{e['id']} {e['method']} {e['path']}: {', '.join(e['unknown_fields'])}" for e in unknown[:5]]
        raise AssertionError("\n".join(lines))
    unanswered = [e for e in entries if not e.get("rule")]
    if unanswered:
        lines = [f"strict mode: {len(unanswered)} request(s) were not answered by a scenario rule:"]
        for entry in unanswered[:5]:
            misses = entry.get("near_misses") or []
            closest = f" (closest: {misses[0]['rule']}: {'; '.join(misses[0]['differences'])})" if misses else ""
            lines.append(f"  #{entry['id']} {entry['method']} {entry['path']}{closest}")
        raise AssertionError("\n".join(lines))
