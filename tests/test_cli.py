"""`mockpoeti serve` as a real process: ready line, keys, clean shutdown on signals."""

from __future__ import annotations

import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import openai
import pytest

READY_TIMEOUT = 20.0
STOP_TIMEOUT = 5.0
CLI_KEY = "sk-poeti-cli-key"
URL = re.compile(r"http://127\.0\.0\.1:(\d+)")


def console_script() -> list[str]:
    found = shutil.which("mockpoeti", path=os.path.dirname(sys.executable)) or shutil.which("mockpoeti")
    assert found, "the `mockpoeti` console script is installed"
    return [found]


class Process:
    """A running `mockpoeti serve`: its stdout read line by line in a thread."""

    def __init__(self, argv: list[str]):
        self.popen = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, encoding="utf-8",
            # the ready line must be flushed by the server itself, not by the environment
            env={k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"},
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.stderr = ""
        self.reader = threading.Thread(target=self._pump, daemon=True)
        self.reader.start()

    def _pump(self) -> None:
        for line in self.popen.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def wait_ready(self) -> tuple[str, str]:
        """The first stdout line that carries the root URL, and that URL."""
        while True:
            try:
                line = self.lines.get(timeout=READY_TIMEOUT)
            except queue.Empty:
                pytest.fail(f"no ready line within {READY_TIMEOUT}s")
            if line is None:
                self.popen.wait(timeout=STOP_TIMEOUT)
                pytest.fail(f"exited with {self.popen.returncode} before it was ready: {self.popen.stderr.read()}")
            match = URL.search(line)
            if match:
                return line, match.group(0)

    def stop(self, sig: signal.Signals) -> int:
        self.popen.send_signal(sig)
        code = self.popen.wait(timeout=STOP_TIMEOUT)
        self.stderr = self.popen.stderr.read()
        return code


@contextmanager
def serve(*args: str) -> Iterator[Process]:
    process = Process([*console_script(), "serve", "--port", "0", *args])
    try:
        yield process
    finally:
        if process.popen.poll() is None:
            process.popen.kill()
            process.popen.wait()
        process.reader.join(timeout=STOP_TIMEOUT)
        for stream in (process.popen.stdout, process.popen.stderr):
            stream.close()


def test_serve_prints_a_ready_line_accepts_its_key_and_stops_on_sigterm():
    with serve("--seed", "3", "--api-key", CLI_KEY) as process:
        line, url = process.wait_ready()
        port = int(URL.search(line).group(1))
        assert port > 0

        with openai.OpenAI(base_url=url + "/v1", api_key=CLI_KEY, max_retries=0) as client:
            model_ids = [m.id for m in client.models.list()]
            reply = client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
        assert "gpt-4o" in model_ids
        assert reply.choices[0].message.content

        with httpx.Client(base_url=url) as http:
            refused = http.get("/v1/models", headers={"Authorization": "Bearer sk-poeti-not-this-one"})
            health = http.get("/__admin/health").json()
        assert refused.status_code == 401
        assert refused.json()["error"]["code"] == "invalid_api_key"
        assert health["seed"] == 3

        assert process.stop(signal.SIGTERM) == 0
        assert "Traceback" not in process.stderr
        with pytest.raises(httpx.ConnectError):
            httpx.get(url + "/__admin/health")


def test_serve_stops_cleanly_on_sigint():
    with serve("--api-key", CLI_KEY) as process:
        _, url = process.wait_ready()
        assert httpx.get(url + "/v1/models", headers={"Authorization": f"Bearer {CLI_KEY}"}).status_code == 200
        assert process.stop(signal.SIGINT) == 0
        assert "Traceback" not in process.stderr
        assert "KeyboardInterrupt" not in process.stderr


def test_the_same_seed_gives_the_same_answer_in_two_processes():
    answers = []
    for _ in range(2):
        with serve("--seed", "3", "--api-key", CLI_KEY, "--clock", "2026-04-09T14:23:18Z") as process:
            _, url = process.wait_ready()
            response = httpx.post(
                url + "/v1/chat/completions",
                json={"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]},
                headers={"Authorization": f"Bearer {CLI_KEY}"},
            )
            answers.append((response.headers["X-Trace-ID"], response.content))
            assert process.stop(signal.SIGTERM) == 0
    assert answers[0] == answers[1]


@pytest.mark.parametrize("argv", [[sys.executable, "-m", "mockpoeti"], console_script()], ids=["python -m", "script"])
def test_help_exits_zero_and_names_serve(argv):
    result = subprocess.run([*argv, "--help"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert "serve" in result.stdout


def test_serve_help_lists_the_fixed_options():
    result = subprocess.run([sys.executable, "-m", "mockpoeti", "serve", "--help"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    for option in ("--host", "--port", "--scenario", "--api-key", "--seed"):
        assert option in result.stdout
