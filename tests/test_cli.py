"""`mockpoeti serve` as a real process: ready line, keys, clean shutdown on signals."""

from __future__ import annotations

import signal
import subprocess
import sys

import httpx
import openai
import pytest
from serving import console_script, serve

CLI_KEY = "sk-poeti-cli-key"


def test_serve_prints_a_ready_line_accepts_its_key_and_stops_on_sigterm():
    with serve("--seed", "3", "--api-key", CLI_KEY) as process:
        url = process.url
        assert process.ready_line.startswith(f"mockpoeti listening on http://127.0.0.1:{process.port} ")
        assert process.port > 0
        assert process.api_key == CLI_KEY

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

        assert process.stop(signal.SIGTERM)[0] == 0
        assert "Traceback" not in process.stderr
        with pytest.raises(httpx.ConnectError):
            httpx.get(url + "/__admin/health")


def test_serve_stops_cleanly_on_sigint():
    with serve("--api-key", CLI_KEY) as process:
        assert httpx.get(process.url + "/v1/models", headers={"Authorization": f"Bearer {CLI_KEY}"}).status_code == 200
        assert process.stop(signal.SIGINT)[0] == 0
        assert "Traceback" not in process.stderr
        assert "KeyboardInterrupt" not in process.stderr


def test_the_same_seed_gives_the_same_answer_in_two_processes():
    answers = []
    for _ in range(2):
        with serve("--seed", "3", "--api-key", CLI_KEY, "--clock", "2026-04-09T14:23:18Z") as process:
            response = httpx.post(
                process.url + "/v1/chat/completions",
                json={"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]},
                headers={"Authorization": f"Bearer {CLI_KEY}"},
            )
            answers.append((response.headers["X-Trace-ID"], response.content))
            assert process.stop(signal.SIGTERM)[0] == 0
    assert answers[0] == answers[1]


@pytest.mark.parametrize("argv", [[sys.executable, "-m", "mockpoeti"], [console_script()]], ids=["python -m", "script"])
def test_help_exits_zero_and_names_serve(argv):
    result = subprocess.run([*argv, "--help"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert "serve" in result.stdout


def test_serve_help_lists_the_fixed_options():
    result = subprocess.run([sys.executable, "-m", "mockpoeti", "serve", "--help"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    for option in ("--host", "--port", "--scenario", "--api-key", "--seed"):
        assert option in result.stdout
