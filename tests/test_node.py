"""The official openai npm package against `mockpoeti serve`, as a Node app would use it."""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
from pathlib import Path

import httpx
import pytest
from serving import serve

NODE_DIR = Path(__file__).parent / "node"
CJK = re.compile(r"[\u4e00-\u9fff]")


@pytest.fixture
def served():
    """`mockpoeti serve --port 0 --seed 1` in a process of its own; (url, key)."""
    with serve("--seed", "1") as process:
        yield process.url, process.api_key
        code, _ = process.stop(signal.SIGTERM)
        assert code == 0, f"mockpoeti serve did not stop cleanly on SIGTERM: {process.stderr}"


def run_node(url: str, key: str, script: str = "chat.mjs") -> dict:
    node = shutil.which("node")
    assert node, "node is not installed (Node 20+ is needed for tests/test_node.py)"
    assert (NODE_DIR / "node_modules" / "openai").is_dir(), (
        "the openai npm package is missing: run `npm install --prefix tests/node`"
    )
    done = subprocess.run(
        [node, str(NODE_DIR / script), url, key], capture_output=True, text=True, encoding="utf-8", timeout=60
    )
    assert done.returncode == 0, f"{script} failed:\n{done.stderr}"
    return json.loads(done.stdout)


def test_openai_npm_package_chats_streams_and_lists_models(served):
    url, key = served

    summary = run_node(url, key)

    chat = summary["chat"]
    assert chat["id"].startswith("chatcmpl-poeti-")
    assert (chat["object"], chat["model"], chat["finish_reason"]) == ("chat.completion", "gpt-4o", "stop")
    assert CJK.search(chat["content"])
    usage = chat["usage"]
    assert usage["completion_tokens"] > 0
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]

    stream = summary["stream"]
    assert len(stream["ids"]) == 1 and stream["ids"][0].startswith("chatcmpl-poeti-")
    assert stream["objects"] == ["chat.completion.chunk"]
    assert stream["first_role"] == "assistant"
    assert CJK.search(stream["text"])
    assert stream["finish_reason"] == "stop"
    assert stream["last_choices"] == 0
    assert stream["usage"]["completion_tokens"] == stream["content_chunks"]
    assert stream["usage"]["prompt_tokens"] == usage["prompt_tokens"]

    owners = {m["id"]: m["owned_by"] for m in summary["models"]}
    assert owners["gpt-4o"] == "openai"
    assert owners["claude-3-5-sonnet-20241022"] == "anthropic"

    trace = httpx.get(f"{url}/api/v1/request-traces/{chat['trace_id']}", headers={"Authorization": f"Bearer {key}"})
    assert trace.status_code == 200
    assert trace.json()["data"]["completion_tokens"] == usage["completion_tokens"]


def test_stubs_over_http_answer_the_openai_npm_package(served):
    url, key = served

    summary = run_node(url, key, "stubs.mjs")

    created = summary["created"]
    assert created["status"] == 201
    assert created["body"]["match"] == {"endpoint": "chat", "model": "gpt-4o-mini", "message": "/天气/"}
    assert summary["stubbed"] == "上海今天晴，25°C。"
    assert summary["other"] != summary["stubbed"]  # another model: the generated answer
    assert summary["after_retry"] == "after a retry"  # the SDK retried the stubbed 429 by itself
    assert summary["listed"] == [{"id": summary["retried_id"], "calls": 2}, {"id": created["body"]["id"], "calls": 1}]
    assert summary["removed"] == 200
    assert summary["gone"]["status"] == 404 and summary["gone"]["body"]["error"]["code"] == "not_found"
    assert summary["unstubbed"] != summary["stubbed"]
