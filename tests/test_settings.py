"""The same limits everywhere: `Settings` holds every bound once, and `MockServer(...)`, the CLI's
flags and the plugin's options refuse the same values with the same one-line message
(`max_traces: 0 is out of range; expected 1 to 1000000000`), before anything starts."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest
from serving import PYTEST_OPTIONS

from mockpoeti import MockServer, Settings
from mockpoeti.base.settings import MAX_BODY_BYTES, MAX_SEED
from mockpoeti.cli import main, make_parser

pytest_plugins = ["pytester"]

WHOLE = "is out of range; expected 1 to 1000000000"
SECONDS = "is out of range; expected more than 0 and at most 86400 seconds"
KEY = "an API key is visible ASCII without spaces, as `Authorization: Bearer KEY` carries it"

# (setting, its CLI flag, the value in Python, the same on the command line, what both say)
REFUSED = [
    ("max_traces", "--max-traces", 0, "0", f"0 {WHOLE}"),
    ("max_traces", "--max-traces", 1_000_000_001, "1000000001", f"1000000001 {WHOLE}"),
    ("max_journal", "--max-journal", -1, "-1", f"-1 {WHOLE}"),
    ("max_keys_per_account", "--max-keys", 10_001, "10001", "10001 is out of range; expected 1 to 10000"),
    ("header_timeout_s", "--header-timeout", 0, "0", f"0 {SECONDS}"),
    ("body_timeout_s", "--body-timeout", 86_400.5, "86400.5", f"86400.5 {SECONDS}"),
    ("keepalive_timeout_s", "--keepalive-timeout", float("nan"), "nan", f"nan {SECONDS}"),
    ("keepalive_timeout_s", "--keepalive-timeout", -0.5, "-0.5", f"-0.5 {SECONDS}"),
    ("seed", "--seed", -1, "-1", "-1 is out of range; expected 0 to 18446744073709551615"),
    ("seed", "--seed", MAX_SEED + 1, str(MAX_SEED + 1), f"{MAX_SEED + 1} is out of range; expected 0 to {MAX_SEED}"),
    ("admin_token", "--admin-token", "", "", "must not be empty"),
    ("admin_token", "--admin-token", "x" * 4097, "x" * 4097, "4097 characters is more than 4096"),
    ("api_keys", "--api-key", ["sk poeti"], "sk poeti", KEY),
    ("api_keys", "--api-key", ["ключ"], "ключ", KEY),
    ("api_keys", "--api-key", ["k" * 257], "k" * 257, "257 characters is more than 256"),
    ("scenarios", "--scenario", [" "], " ", "must not be empty"),
    ("fixtures", "--fixtures", "", "", "must not be empty"),
    ("port", "--port", 65_536, "65536", "65536 is out of range; expected 0 to 65535"),
    ("clock", "--clock", "next tuesday", "next tuesday",
     "'next tuesday' is not a time; expected ISO 8601 (2026-04-09T14:23:18Z) or Unix seconds"),
    ("clock", "--clock", "9999-06-01", "9999-06-01", "'9999-06-01' is not a time between 1970 and 9899"),
]
# what only Python can spell (types), or only the command line (text that is not a number)
PYTHON_ONLY = [
    ("max_traces", True, "'True' is not a whole number"),
    ("max_traces", 2.5, "'2.5' is not a whole number"),
    ("header_timeout_s", "15", "'15' is not a number of seconds"),
    ("admin_token", 42, "expected a token (a string), got int"),
    ("history", 1, "expected true or false, got '1'"),
    ("max_body_bytes", 0, "0 is out of range; expected 1 to 67108864"),
    ("max_body_bytes", MAX_BODY_BYTES + 1, "67108865 is out of range; expected 1 to 67108864"),
    ("routing_strategy", "", "must not be empty"),
    ("scenario_dirs", [""], "must not be empty"),
    ("port", 80.0, "'80.0' is not a whole number"),
]
CLI_ONLY = [
    ("--max-traces", "many", "'many' is not a whole number"),
    ("--header-timeout", "soon", "'soon' is not a number of seconds"),
]
ACCEPTED = [  # the edges of each bound
    ("max_traces", [1, 1_000_000_000]),
    ("max_keys_per_account", [1, 10_000]),
    ("header_timeout_s", [0.001, 86_400]),
    ("seed", [0, MAX_SEED]),
    ("max_body_bytes", [1, MAX_BODY_BYTES]),
    ("admin_token", ["x" * 4096]),
    ("api_keys", [["sk-poeti-my-ci-key", "k" * 256]]),
]


def refusal(name: str, value: object) -> str:
    """What MockServer(name=value) says: one line naming the setting. It refuses before starting anything."""
    with pytest.raises(ValueError) as refused:
        MockServer(**{name: value})
    message = str(refused.value)
    assert "\n" not in message and message.startswith(f"{name}: "), message
    return message.removeprefix(f"{name}: ")


@pytest.mark.parametrize(("name", "value", "message"), [(r[0], r[2], r[4]) for r in REFUSED] + PYTHON_ONLY)
def test_mockserver_refuses_a_value_outside_its_bound_in_one_line(name, value, message):
    assert refusal(name, value) == message


@pytest.mark.parametrize(("flag", "text", "message"), [(r[1], r[3], r[4]) for r in REFUSED] + CLI_ONLY)
def test_the_cli_refuses_the_same_values_with_the_same_line(flag, text, message, capsys):
    with pytest.raises(SystemExit) as stopped:
        main(["serve", "--port", "0", flag, text])

    assert stopped.value.code == 2
    assert capsys.readouterr().err == f"mockpoeti serve: error: argument {flag}: {message}\n"


def test_the_installed_command_refuses_max_traces_0_too():
    """MockServer(max_traces=0) used to start, then answer every chat call with a 500 that check_errors() never saw."""
    done = subprocess.run([sys.executable, "-m", "mockpoeti", "serve", "--port", "0", "--max-traces", "0"],
                          capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 2
    assert done.stderr == f"mockpoeti serve: error: argument --max-traces: 0 {WHOLE}\n"


@pytest.mark.parametrize(("name", "values"), ACCEPTED, ids=[a[0] for a in ACCEPTED])
def test_the_edges_of_each_bound_are_accepted(name, values):
    for value in values:
        expected = tuple(value) if isinstance(value, list) else value
        assert getattr(MockServer(**{name: value}).settings, name) == expected


def test_the_cli_takes_its_defaults_from_settings():
    args = make_parser().parse_args(["serve"])
    defaults = Settings()
    flag_of = {"max_traces": "max_traces", "max_journal": "max_journal", "max_keys_per_account": "max_keys",
               "header_timeout_s": "header_timeout", "body_timeout_s": "body_timeout",
               "keepalive_timeout_s": "keepalive_timeout", "seed": "seed", "clock": "clock", "admin_token": "admin_token",
               "fixtures": "fixtures", "history": "history", "max_sessions": "max_sessions", "session_ttl_s": "session_ttl"}
    offered = set(flag_of) | {"scenarios", "api_keys"}
    assert {f.name for f in dataclasses.fields(Settings)} - offered == {"max_body_bytes", "routing_strategy", "scenario_dirs"}
    assert {f: getattr(args, a) for f, a in flag_of.items()} == {f: getattr(defaults, f) for f in flag_of}


@pytest.mark.parametrize(("option", "value", "message"), [
    ("poeti_seed", "abc", "'abc' is not a whole number"),
    *[(f"poeti_{r[0]}", r[3], r[4]) for r in REFUSED if r[0] in ("seed", "clock")][::2],
])
def test_the_plugin_refuses_the_same_values_in_one_line(pytester: pytest.Pytester, option, value, message):
    pytester.makeini(f"[pytest]\n{option} = {value}\n")
    pytester.makepyfile("def test_never_runs(poeti):\n    raise AssertionError('ran')\n")

    result = pytester.runpytest_subprocess(*PYTEST_OPTIONS, "-p", "no:xdist")

    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert [line for line in result.stderr.lines if line.startswith("ERROR")] == [f"ERROR: {option}: {message}"]
    assert "ran" not in result.stdout.str()
