"""The OpenAPI document is true: schema-driven fuzzing finds no 5xx, no response
outside the document, and no error outside the unified format.

A bounded schemathesis run (positive and negative data) against a real server.
"""

from __future__ import annotations

import json
import subprocess
import sys

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from mockpoeti import MockServer

EXAMPLES_PER_OPERATION = 60
SEEN: dict[int, int] = {}  # status -> how many fuzz cases got it
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]


@pytest.fixture(scope="module")
def server():
    with MockServer(seed=1, max_body_bytes=256 * 1024) as s:
        yield s


@pytest.fixture(scope="module")
def api(server):
    loaded = schemathesis.openapi.from_url(server.url + "/openapi.json")
    loaded.config.generation.update(modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
    return loaded


schema = schemathesis.pytest.from_fixture("api")


@schema.parametrize()
@settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, suppress_health_check=list(HealthCheck))
def test_every_operation_answers_as_documented(case, server):
    response = case.call_and_validate(headers={"Authorization": f"Bearer {server.api_key}"}, checks=CHECKS)
    SEEN[response.status_code] = SEEN.get(response.status_code, 0) + 1
    if response.status_code >= 400:
        error = response.json()["error"]
        assert error["status"] == response.status_code
    assert "x-trace-id" in {name.lower() for name in response.headers} or case.path == "/openapi.json"


def test_the_document_is_served_and_printed_the_same(server):
    served = httpx.get(server.url + "/openapi.json").json()
    printed = json.loads(subprocess.run(
        [sys.executable, "-m", "mockpoeti", "openapi"], capture_output=True, text=True, check=True
    ).stdout)
    assert served == printed
    assert served["openapi"].startswith("3.1")
    documented = {path for path in served["paths"]}
    for path in ("/v1/chat/completions", "/v1/models", "/api/v1/api-keys", "/api/v1/usage",
                 "/api/v1/request-traces", "/api/v1/request-traces/stats", "/api/v1/request-traces/{trace_id}",
                 "/api/v1/api-keys/{key_id}"):
        assert path in documented


def test_the_server_never_crashed_while_fuzzed(server):
    """Run after the fuzzing above (same module server): no bug of ours was hit,
    and the fuzzing reached both valid and invalid requests."""
    server.check_errors()
    cases = sum(SEEN.values())
    print(f"fuzz cases run: {cases}; statuses: {dict(sorted(SEEN.items()))}")
    assert cases >= 200
    assert SEEN.get(200, 0) > 0 and SEEN.get(400, 0) > 0
    assert not any(status >= 500 for status in SEEN)
