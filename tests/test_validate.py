"""`mockpoeti validate` and `mockpoeti schema`: every broken file is refused with
one `FILE:LINE: path.to.field: message` line per problem, never a traceback.

The corpus in tests/scenarios_broken/ holds one problem class per file; the
table below is the exact output each must produce, checked by hand against
the file (the line is the offending key's, the message names what was expected).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
BROKEN = "tests/scenarios_broken"
SHIPPED = ROOT / "scenarios"
TIMEOUT = 30

FAULT_KINDS = (
    "reset, empty, malformed, hang, stall, drip, disconnect, malformed_chunk, error_event, "
    "no_done, no_finish, split_utf8, duplicate_chunk, invalid_tool_arguments, schema_violation, unknown_tool, "
    "truncated_tool_call, refusal, duplicate_tool_call_ids"
)
ERROR_CODES = (
    "budget_exceeded, content_policy_violation, context_length_exceeded, internal_error, invalid_api_key, "
    "invalid_request, key_limit_exceeded, method_not_allowed, model_not_found, not_found, payload_too_large, permission_denied, "
    "rate_limit_exceeded, request_timeout, service_unavailable, session_limit_exceeded, upstream_error, upstream_timeout"
)
FAKER_PROVIDERS = (
    "name, first_name, last_name, user_name, email, phone_number, company, job, city, country, address, "
    "street_address, url, word, sentence, paragraph, text, date, time, iso8601, uuid4, color_name, "
    "catch_phrase, random_int, pyfloat"
)
MATCH_KEYS = "endpoint, method, path, model, stream, message, headers, body, key, last_role, tools, turn, after_tool"

# file -> the exact lines `mockpoeti validate FILE` prints (FILE is tests/scenarios_broken/<file>)
EXPECTED: dict[str, list[str]] = {
    # bad YAML syntax: a tab where indentation is expected
    "syntax-tab.yaml": [
        "5: not valid YAML: found character '\\t' that cannot start any token",
    ],
    # bad YAML syntax: `{` on line 4 is never closed; the parser notices on line 5,
    # so the message must say where the unclosed mapping starts
    "syntax-unclosed-bracket.yaml": [
        "5: not valid YAML: expected ',' or '}', but got ':' (while parsing a flow mapping that starts on line 4)",
    ],
    "empty.yaml": [
        "1: the file is empty; expected a scenario: {name, rules}",
    ],
    "top-level-list.yaml": [
        "1: a list is not a scenario: {name, description, seed, rules, chaos}",
    ],
    "unknown-top-key.yaml": [
        "3: rulez: unknown key; did you mean 'rules'? expected one of version, name, description, seed, rules, chaos",
        "1: rules: missing; expected at least one rule (or chaos)",
    ],
    "unknown-match-key.yaml": [
        f"5: rules[0].match.endpont: unknown key; did you mean 'endpoint'? expected one of {MATCH_KEYS}",
    ],
    "conversation-keys.yaml": [
        "5: rules[0].match.turn: 0 is out of range; expected an integer from 1 to 100000",
        f"8: rules[1].match.after_tools: unknown key; did you mean 'after_tool'? expected one of {MATCH_KEYS}",
        "13: rules[2].respond.fault.after_chunks: not a parameter of fault 'refusal'; expected one of message",
    ],
    "wrong-types.yaml": [
        "5: rules[0].match.stream: 'yes' is not true or false",
        "6: rules[0].match.model: 3 is not a string",
        "7: rules[0].times: '2' is not an integer from 1 to 1000000000",
    ],
    "bad-fault-kind.yaml": [
        f"7: rules[0].respond.fault.kind: 'explode' is not a fault kind; expected one of {FAULT_KINDS}",
    ],
    "bad-endpoint.yaml": [
        "5: rules[0].match.endpoint: 'chatt' is not an endpoint; did you mean 'chat'? "
        "expected one of chat, models, model, api_keys, api_key, usage, traces, trace, trace_stats",
    ],
    "bad-finish-reason.yaml": [
        "7: rules[0].respond.finish_reason: 'done' is not a finish reason; "
        "expected one of stop, length, tool_calls, content_filter",
    ],
    "negative-numbers.yaml": [
        # milliseconds read as a plain number, not 3.6e+06
        "6: rules[0].respond.latency_ms: -5 is out of range; expected a number from 0 to 3600000",
        "9: rules[0].respond.fault.after_chunks: -1 is out of range; expected an integer from 0 to 100000",
    ],
    "times-zero.yaml": [
        "5: rules[0].times: 0 is out of range; expected an integer from 1 to 1000000000",
    ],
    "unknown-error-code.yaml": [
        "6: rules[0].respond.error: 'rate_limt_exceeded' is not in the error catalog; "
        f"did you mean 'rate_limit_exceeded'? expected one of {ERROR_CODES}",
    ],
    "fault-param-not-taken.yaml": [
        "8: rules[0].respond.fault.after_chunks: not a parameter of fault 'reset'; expected one of after_ms",
    ],
    "bad-regex.yaml": [
        "6: rules[0].match.message: not a valid regular expression: "
        "missing ), unterminated subpattern at position 7; expected /regex/",
    ],
    "template-unknown-placeholder.yaml": [
        "6: rules[0].respond.content: '{{ os.system }}': unknown name 'os'; "
        "expected one of message, model, body, headers, query, key, last, faker",
    ],
    "template-faker-provider.yaml": [
        "6: rules[0].respond.content: '{{ faker.credit_card_number }}': 'credit_card_number' "
        f"is not an allowed Faker provider; expected one of {FAKER_PROVIDERS}",
    ],
    "duplicate-key.yaml": [
        "6: not valid YAML: duplicate key 'respond'",
    ],
    "python-tag.yaml": [
        "6: not valid YAML: could not determine a constructor for the tag "
        "'tag:yaml.org,2002:python/object/apply:os.system'",
    ],
    "timing-min-over-max.yaml": [
        "7: rules[0].respond.latency_ms: min (5) is greater than max (1)",
    ],
    "missing-name.yaml": [
        "1: name: missing; expected a string of at most 256 characters",
    ],
    "missing-respond.yaml": [
        "4: rules[0].respond: missing; expected a response or a list of responses",
    ],
}


def mockpoeti() -> str:
    found = shutil.which("mockpoeti", path=os.path.dirname(sys.executable)) or shutil.which("mockpoeti")
    assert found, "the `mockpoeti` console script is installed"
    return found


def run(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [mockpoeti(), *args], cwd=cwd, capture_output=True, text=True, encoding="utf-8", timeout=TIMEOUT
    )
    assert "Traceback" not in result.stdout + result.stderr, result.stdout + result.stderr
    return result


def expected_lines(name: str, shown_as: str | None = None) -> list[str]:
    return [f"{shown_as or f'{BROKEN}/{name}'}:{line}" for line in EXPECTED[name]]


def test_the_corpus_and_the_table_agree():
    on_disk = sorted(p.name for p in (ROOT / BROKEN).iterdir())
    assert on_disk == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_a_broken_file_is_refused_with_one_line_per_problem(name):
    result = run("validate", f"{BROKEN}/{name}")
    assert result.returncode == 1
    assert result.stdout.splitlines() == expected_lines(name)
    assert result.stderr == ""


def test_a_python_tag_is_refused_and_never_run(tmp_path):
    source = ROOT / BROKEN / "python-tag.yaml"
    result = run("validate", str(source), cwd=tmp_path)
    assert result.returncode == 1
    assert result.stdout.splitlines() == expected_lines("python-tag.yaml", shown_as=str(source))
    assert list(tmp_path.iterdir()) == []  # os.system("touch PWNED_BY_MOCKPOETI") never ran


def test_a_folder_reports_every_problem_of_every_file_at_once(tmp_path):
    (tmp_path / "nested").mkdir()
    copies = {
        "nested/unknown-top-key.yaml": "unknown-top-key.yaml",
        "wrong-types.yaml": "wrong-types.yaml",
        "times-zero.yml": "times-zero.yaml",  # .yml counts too
    }
    for copy, original in copies.items():
        shutil.copy(ROOT / BROKEN / original, tmp_path / copy)
    (tmp_path / "notes.txt").write_text("not a scenario: [", encoding="utf-8")

    result = run("validate", str(tmp_path))

    assert result.returncode == 1
    wanted = [line for copy, original in copies.items() for line in expected_lines(original, str(tmp_path / copy))]
    assert sorted(result.stdout.splitlines()) == sorted(wanted)
    assert len(result.stdout.splitlines()) == 6


def test_several_files_on_the_command_line_are_all_checked():
    names = ["empty.yaml", "bad-endpoint.yaml", "missing-respond.yaml"]
    result = run("validate", *(f"{BROKEN}/{n}" for n in names))
    assert result.returncode == 1
    assert result.stdout.splitlines() == [line for n in names for line in expected_lines(n)]


def test_one_broken_file_among_valid_ones_fails_the_run():
    result = run("validate", "scenarios/rate-limited.yaml", f"{BROKEN}/times-zero.yaml", "retry-then-succeed")
    assert result.returncode == 1
    assert result.stdout.splitlines() == expected_lines("times-zero.yaml")


def test_every_shipped_scenario_is_valid():
    count = len(list(SHIPPED.glob("*.yaml")))
    assert count > 0
    result = run("validate", "scenarios")
    assert result.returncode == 0, result.stdout
    assert result.stdout.splitlines() == [f"{count} scenario files valid"]


def test_a_shipped_scenario_validates_by_name():
    result = run("validate", "rate-limited")
    assert result.returncode == 0, result.stdout
    assert result.stdout.splitlines() == ["1 scenario file valid"]


def test_a_missing_file_is_a_problem_on_line_one():
    result = run("validate", f"{BROKEN}/does-not-exist.yaml")
    assert result.returncode == 1
    assert result.stdout.splitlines() == [f"{BROKEN}/does-not-exist.yaml:1: no such scenario file"]


def test_a_folder_without_scenarios_is_a_problem(tmp_path):
    result = run("validate", str(tmp_path))
    assert result.returncode == 1
    assert result.stdout.splitlines() == [f"{tmp_path}:1: no scenario files (*.yaml, *.yml) found"]


@pytest.mark.parametrize(
    "name", ["wrong-types.yaml", "syntax-tab.yaml", "python-tag.yaml", "unknown-error-code.yaml", "empty.yaml"]
)
def test_serve_refuses_to_start_with_a_broken_scenario(name):
    process = subprocess.Popen(
        [mockpoeti(), "serve", "--port", "0", "--scenario", f"{BROKEN}/{name}"],
        cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, encoding="utf-8",
    )
    try:
        stdout, stderr = process.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        stdout, stderr = process.communicate()
        pytest.fail(f"serve started with a broken scenario: {stdout}")
    assert process.returncode == 1
    assert stderr.splitlines() == expected_lines(name)
    assert "listening" not in stdout
    assert "Traceback" not in stdout + stderr


# --- the published JSON Schema ----------------------------------------------------

def committed_schema() -> dict:
    return json.loads((SHIPPED / "schema.json").read_text(encoding="utf-8"))


def test_schema_command_prints_the_committed_schema():
    result = run("schema")
    assert result.returncode == 0
    assert json.loads(result.stdout) == committed_schema()


_TYPES = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "null": lambda v: v is None,
}


def schema_problems(value, schema: dict, path: str = "$") -> list[str]:
    """A tiny checker: type, enum, properties, additionalProperties, required
    (plus items and anyOf, to reach the nested parts). Enough to catch drift."""
    if "anyOf" in schema:
        branches = [schema_problems(value, branch, path) for branch in schema["anyOf"]]
        if all(branches):
            return [f"{path}: matches no branch of anyOf: {branches}"]
    if "type" in schema and not _TYPES[schema["type"]](value):
        return [f"{path}: {value!r} is not of type {schema['type']}"]
    if "enum" in schema and value not in schema["enum"]:
        return [f"{path}: {value!r} is not in {schema['enum']}"]
    problems = []
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        extra = schema.get("additionalProperties", True)
        problems += [f"{path}.{key}: required" for key in schema.get("required", ()) if key not in value]
        for key, item in value.items():
            if key in properties:
                problems += schema_problems(item, properties[key], f"{path}.{key}")
            elif extra is False:
                problems.append(f"{path}.{key}: not in properties")
            elif isinstance(extra, dict):
                problems += schema_problems(item, extra, f"{path}.{key}")
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            problems += schema_problems(item, schema["items"], f"{path}[{i}]")
    return problems


@pytest.mark.parametrize("path", sorted(SHIPPED.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_shipped_scenario_satisfies_the_schema(path):
    schema = committed_schema()
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    assert set(schema["required"]) <= data.keys()
    assert data.keys() <= schema["properties"].keys()
    assert schema_problems(data, schema) == []


@pytest.mark.parametrize(
    "name, problem",
    [
        ("unknown-top-key.yaml", "$.rulez: not in properties"),
        ("unknown-match-key.yaml", "$.rules[0].match.endpont: not in properties"),
        ("missing-name.yaml", "$.name: required"),
        ("bad-finish-reason.yaml", "$.rules[0].respond.finish_reason: 'done' is not in"),
        ("wrong-types.yaml", "$.rules[0].match.stream: 'yes' is not of type boolean"),
    ],
)
def test_the_schema_checker_catches_broken_files(name, problem):
    data = yaml.safe_load((ROOT / BROKEN / name).read_text(encoding="utf-8"))
    found = schema_problems(data, committed_schema())
    assert any(problem in p for p in found), found
