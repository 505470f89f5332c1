"""The official openai npm package against `mockpoeti serve`, as a Node app would use it."""

from __future__ import annotations

import json
import os
import re
import selectors
import shutil
import subprocess
import sysconfig
import time
from pathlib import Path

import httpx
import pytest

NODE_DIR = Path(__file__).parent / "node"
READY = re.compile(r"(http://127\.0\.0\.1:\d+) \(API key: (\S+)\)")
CJK = re.compile(r"[\u4e00-\u9fff]")


def wait_for_ready_line(proc: subprocess.Popen, timeout: float = 10.0) -> re.Match:
    """Read the server's stdout until the line with its URL; no sleeping, no guessing."""
    deadline = time.monotonic() + timeout
    seen = []
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ)
        while (left := deadline - time.monotonic()) > 0:
            if not selector.select(left):
                break
            line = proc.stdout.readline().decode("utf-8", "replace")  # unbuffered: select sees every line
            if not line:  # the server exited before it was ready
                break
            seen.append(line)
            if match := READY.search(line):
                return match
    proc.kill()
    _, err = proc.communicate()
    pytest.fail(f"mockpoeti serve never printed its URL; stdout: {''.join(seen)!r}; stderr: {err.decode()!r}")


@pytest.fixture
def served():
    """`mockpoeti serve --port 0 --seed 1` in a process of its own; (url, key)."""
    command = [str(Path(sysconfig.get_path("scripts")) / "mockpoeti"), "serve", "--port", "0", "--seed", "1"]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}  # the ready line must be flushed by itself
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0, env=env)
    try:
        ready = wait_for_ready_line(proc)
        yield ready.group(1), ready.group(2)
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, f"mockpoeti serve did not stop cleanly on SIGTERM: {err.decode()}"


def run_node(url: str, key: str) -> dict:
    node = shutil.which("node")
    assert node, "node is not installed (Node 20+ is needed for tests/test_node.py)"
    assert (NODE_DIR / "node_modules" / "openai").is_dir(), (
        "the openai npm package is missing: run `npm install --prefix tests/node`"
    )
    done = subprocess.run(
        [node, str(NODE_DIR / "chat.mjs"), url, key], capture_output=True, text=True, encoding="utf-8", timeout=60
    )
    assert done.returncode == 0, f"chat.mjs failed:\n{done.stderr}"
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
