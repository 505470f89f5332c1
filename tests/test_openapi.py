"""The OpenAPI document is true: schema-driven fuzzing finds no 5xx, no response
outside the document, and no error outside the unified format.

A bounded schemathesis run (positive and negative data) against a real server,
derandomised: Hypothesis draws the same cases on every run, so a failure found
once is found again (and the server is seeded with its clock frozen).
"""

from __future__ import annotations

import json
import subprocess
import sys

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from mockpoeti import MockServer

EXAMPLES_PER_MODE = 60  # per operation, valid and invalid data each
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]


@pytest.fixture(scope="module")
def server():
    with MockServer(seed=1, clock="2026-04-09T14:23:18Z", max_body_bytes=256 * 1024) as s:
        yield s


def fuzz(server: MockServer, operation, mode: GenerationMode, seen: dict[int, int], examples: int = EXAMPLES_PER_MODE) -> list:
    """Hypothesis drives one operation with valid or invalid data; every answer is checked.
    Returns what was sent, in order."""
    sent = []

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck), database=None,
              derandomize=True)
    def check(case):
        sent.append((case.method, case.formatted_path, case.query, case.headers, case.body))
        response = case.call_and_validate(headers={"Authorization": f"Bearer {server.api_key}"}, checks=CHECKS)
        seen[response.status_code] = seen.get(response.status_code, 0) + 1
        if response.status_code >= 400:
            assert response.json()["error"]["status"] == response.status_code
        assert "x-trace-id" in {name.lower() for name in response.headers} or case.path == "/openapi.json"

    try:
        check()
    except Unsatisfiable:
        assert mode is GenerationMode.NEGATIVE, f"{operation.label}: no valid request can be made"
        # an operation with no parameters and no body: there is nothing to get wrong
    return sent


# Documented, but never ending by itself: a fuzzer would wait for ever (tests/test_ui.py drives it).
ENDLESS = {"/__admin/requests/stream"}

# Each mode a test of its own (xdist runs them side by side); the status each must see at least once.
MODES = {GenerationMode.POSITIVE: 200, GenerationMode.NEGATIVE: 400}


@pytest.mark.parametrize("mode", MODES, ids=[mode.value for mode in MODES])
def test_every_operation_answers_as_documented(server, mode):
    """Drives schemathesis from a plain test (not its pytest plugin, which breaks
    with new pytest releases): every operation, with valid or with invalid data."""
    api = schemathesis.openapi.from_url(server.url + "/openapi.json")
    seen: dict[int, int] = {}
    operations = [result.ok() for result in api.get_all_operations() if result.ok().path not in ENDLESS]
    for operation in operations:
        fuzz(server, operation, mode, seen)
    server.check_errors()  # no bug of ours was hit
    cases = sum(seen.values())
    print(f"{mode.value} fuzz cases run: {cases} over {len(operations)} operations; statuses: {dict(sorted(seen.items()))}")
    assert len(operations) >= 12
    assert cases >= 100
    assert seen.get(MODES[mode], 0) > 0
    assert not any(status >= 500 for status in seen)


def test_the_fuzzing_draws_the_same_cases_every_run(server):
    api = schemathesis.openapi.from_url(server.url + "/openapi.json")
    [chat] = [r.ok() for r in api.get_all_operations() if r.ok().path == "/v1/chat/completions"]

    first = fuzz(server, chat, GenerationMode.NEGATIVE, {}, examples=20)
    again = fuzz(server, chat, GenerationMode.NEGATIVE, {}, examples=20)

    assert len(first) >= 20
    assert repr(again) == repr(first)


def test_the_document_is_served_and_printed_the_same(server):
    served = httpx.get(server.url + "/openapi.json").json()
    printed = json.loads(subprocess.run(
        [sys.executable, "-m", "mockpoeti", "openapi"], capture_output=True, text=True, check=True
    ).stdout)
    assert served == printed
    assert served["openapi"].startswith("3.1")
    documented = set(served["paths"])
    for path in ("/v1/chat/completions", "/v1/models", "/api/v1/api-keys", "/api/v1/usage",
                 "/api/v1/request-traces", "/api/v1/request-traces/stats", "/api/v1/request-traces/{trace_id}",
                 "/api/v1/api-keys/{key_id}"):
        assert path in documented
