"""The API reference's curl examples, run as written with the real curl binary.

Only the base URL changes; the key comes from $POETI_API_KEY exactly as in the
reference. The server's clock is frozen inside April 2026, the month the
reference's usage example asks about.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess

import pytest

from mockpoeti import MockServer

REFERENCE_URL = "https://api.poeti.ai"
CJK = re.compile(r"[\u4e00-\u9fff]")

CHAT = """\
curl https://api.poeti.ai/v1/chat/completions \\
-H "Content-Type: application/json" \\
-H "Authorization: Bearer $POETI_API_KEY" \\
-d '{
"model": "gpt-4o",
"messages": [
{"role": "system", "content": "You are a helpful assistant."},
{"role": "user", "content": "解释量子纠缠"}
],
"temperature": 0.7,
"max_tokens": 1024
}'"""

MODELS = """\
curl https://api.poeti.ai/v1/models \\
-H "Authorization: Bearer $POETI_API_KEY\""""

LIST_KEYS = """\
curl https://api.poeti.ai/api/v1/api-keys \\
-H "Authorization: Bearer $POETI_API_KEY\""""

CREATE_KEY = """\
curl -X POST https://api.poeti.ai/api/v1/api-keys \\
-H "Authorization: Bearer $POETI_API_KEY" \\
-H "Content-Type: application/json" \\
-d '{
"name": "我的应用",
"monthly_budget": 50.0,
"rate_limit": 100
}'"""

USAGE = """\
curl "https://api.poeti.ai/api/v1/usage?date_from=2026-04-01&date_to=2026-04-30" \\
-H "Authorization: Bearer $POETI_API_KEY\""""

FAILED_TRACES = """\
curl "https://api.poeti.ai/api/v1/request-traces?status=error&page_size=20" \\
-H "Authorization: Bearer $POETI_API_KEY\""""


@pytest.fixture
def server():
    with MockServer(clock="2026-04-09T14:23:18Z") as server:
        yield server


def run(example: str, server: MockServer, tmp_path, key: str | None = None) -> tuple[int, dict, dict]:
    """Run a reference example in bash; return (status, headers, JSON body)."""
    assert shutil.which("curl"), "curl is not installed"
    headers_file = tmp_path / "headers.txt"
    command = example.replace(REFERENCE_URL, server.url).replace(
        "curl ", f"curl -sS -D {headers_file} -w '\\n%{{http_code}}' ", 1
    )
    env = {**os.environ, "POETI_API_KEY": key or server.api_key}
    done = subprocess.run(["bash", "-c", command], env=env, capture_output=True, timeout=30)
    assert done.returncode == 0, done.stderr.decode()
    body, _, status = done.stdout.decode("utf-8").rpartition("\n")
    lines = headers_file.read_text().splitlines()[1:]
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines if ":" in line)}
    return int(status), headers, json.loads(body)


@pytest.mark.parametrize("example", [CHAT, MODELS, LIST_KEYS, CREATE_KEY, USAGE, FAILED_TRACES])
def test_every_example_answers_200_with_a_trace_id(server, tmp_path, example):
    status, headers, _ = run(example, server, tmp_path)

    assert status == 200
    assert headers["x-trace-id"].startswith("trace-poeti-")
    assert headers["content-type"].startswith("application/json")


def test_chat_example(server, tmp_path):
    _, _headers, body = run(CHAT, server, tmp_path)

    assert body["id"].startswith("chatcmpl-poeti-")
    assert body["object"] == "chat.completion"
    assert body["model"] == "gpt-4o"
    assert body["created"] == 1775744598  # 2026-04-09T14:23:18Z, the frozen clock
    [choice] = body["choices"]
    assert choice["index"] == 0
    assert choice["message"]["role"] == "assistant"
    assert CJK.search(choice["message"]["content"])
    assert choice["finish_reason"] == "stop"
    usage = body["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert 0 < usage["completion_tokens"] <= 1024


def test_models_example(server, tmp_path):
    _, _, body = run(MODELS, server, tmp_path)

    assert body["object"] == "list"
    models = {m["id"]: m for m in body["data"]}
    assert models["gpt-4o"]["owned_by"] == "openai"
    assert models["claude-3-5-sonnet-20241022"]["owned_by"] == "anthropic"
    for model in body["data"]:
        assert model["object"] == "model"
        assert isinstance(model["created"], int)


def test_list_keys_example_shows_prefixes_only(server, tmp_path):
    _, _, body = run(LIST_KEYS, server, tmp_path)

    assert body["code"] == 200
    [key] = body["data"]
    assert {"id", "name", "key_prefix", "is_active", "total_requests", "total_cost", "created_at"} <= set(key)
    assert "key" not in key
    assert server.api_key.startswith(key["key_prefix"].removesuffix("..."))
    assert key["key_prefix"] != server.api_key
    assert key["is_active"] is True
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", key["created_at"])


def test_create_key_example_returns_a_working_key(server, tmp_path):
    _, _, body = run(CREATE_KEY, server, tmp_path)

    assert body["code"] == 200
    key = body["data"]
    assert (key["name"], key["monthly_budget"], key["rate_limit"]) == ("我的应用", 50.0, 100)
    assert key["key"].startswith(key["key_prefix"].removesuffix("..."))
    assert key["is_active"] is True
    assert (key["total_requests"], key["total_cost"]) == (0, 0)

    status, _, models = run(MODELS, server, tmp_path, key=key["key"])
    assert status == 200 and models["data"]
    _, _, listing = run(LIST_KEYS, server, tmp_path)
    assert "我的应用" in [k["name"] for k in listing["data"]]


def test_usage_example_totals_the_month(server, tmp_path):
    _, _, chat = run(CHAT, server, tmp_path)
    run(CHAT, server, tmp_path)

    _, _, body = run(USAGE, server, tmp_path)

    assert body["code"] == 200
    usage = body["data"]
    assert usage["total_requests"] == 2
    assert usage["total_prompt_tokens"] == 2 * chat["usage"]["prompt_tokens"]
    assert usage["total_tokens"] == usage["total_prompt_tokens"] + usage["total_completion_tokens"]
    [row] = usage["by_model"]
    assert (row["model"], row["requests"], row["tokens"]) == ("gpt-4o", 2, usage["total_tokens"])
    assert row["cost_usd"] == pytest.approx(usage["total_cost_usd"])
    assert usage["total_cost_usd"] > 0


def test_failed_traces_example_lists_only_errors(server, tmp_path):
    run(CHAT, server, tmp_path)
    status, _, _ = run(CHAT.replace('"model": "gpt-4o"', '"model": "gpt-9-imaginary"'), server, tmp_path)
    assert status == 404

    _, _, body = run(FAILED_TRACES, server, tmp_path)

    assert body["code"] == 200
    page = body["data"]
    assert (page["total"], page["page"], page["page_size"]) == (1, 1, 20)
    [trace] = page["items"]
    assert trace["status"] == "error"
    assert trace["model"] == "gpt-9-imaginary"
    assert trace["trace_id"].startswith("trace-poeti-")
    assert trace["created_at"] == "2026-04-09T14:23:18Z"
    assert {"provider", "prompt_tokens", "completion_tokens", "cost_usd", "latency_ms", "routing_strategy"} <= set(trace)
