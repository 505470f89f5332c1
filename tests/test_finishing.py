"""The last stage (trace, books, journal) runs under the same guard as the others:
a failure there is kept for the test that caused it and answered in the one format."""

from __future__ import annotations

import httpx
import pytest

from mockpoeti import MockServer
from mockpoeti.books.state import State
from mockpoeti.http import pipeline

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


def _boom(*args: object) -> None:
    raise RuntimeError("a failure while finishing")


@pytest.mark.parametrize(
    "target",
    [(pipeline, "trace_of"), (State, "record"), (State, "log_request")],
    ids=["trace", "books", "journal"],
)
def test_a_failure_while_finishing_reaches_check_errors_and_the_server_keeps_serving(target, monkeypatch):
    with MockServer(seed=1) as server:
        auth = {"Authorization": f"Bearer {server.api_key}"}
        monkeypatch.setattr(*target, _boom)
        broken = httpx.post(server.base_url + "/chat/completions", json=CHAT, headers=auth)
        assert broken.status_code == 500
        assert broken.json() == {"error": {"code": "internal_error", "message": broken.json()["error"]["message"], "status": 500}}
        assert broken.headers["X-Trace-ID"].startswith("trace-poeti-")
        with pytest.raises(AssertionError, match="a failure while finishing"):
            server.check_errors()
        monkeypatch.undo()
        assert httpx.post(server.base_url + "/chat/completions", json=CHAT, headers=auth).status_code == 200
        server.check_errors()  # nothing new
