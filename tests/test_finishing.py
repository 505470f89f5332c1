"""The last stage (trace, books, journal) runs under the same guard as the others:
a failure there is kept for the test that caused it and answered in the one format."""

from __future__ import annotations

import copy
from collections import deque

import httpx
import pytest

from mockpoeti import MockServer
from mockpoeti.base.settings import Settings
from mockpoeti.books.state import State

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
FAILURE = "a failure while finishing"


class _Failing(deque):
    """A deque of the books that refuses what it is given."""

    def append(self, item: object) -> None:
        raise RuntimeError(FAILURE)


class _Unroutable(Settings):
    __slots__ = ()

    @property
    def routing_strategy(self) -> str:  # read by the trace, and only there
        raise RuntimeError(FAILURE)


def _unroutable(settings: Settings) -> Settings:
    broken = copy.copy(settings)
    object.__setattr__(broken, "__class__", _Unroutable)
    return broken


# Each stage broken through the state's own data, not a patched function: compiled (README:
# Performance), the modules' functions and State's methods cannot be replaced.
BREAK = {
    "trace": lambda state: ("settings", _unroutable(state.settings)),
    "books": lambda state: ("traces", _Failing(state.traces)),
    "journal": lambda state: ("journal", _Failing(state.journal, state.journal.maxlen)),
}


@pytest.mark.parametrize("stage", list(BREAK))
def test_a_failure_while_finishing_reaches_check_errors_and_the_server_keeps_serving(stage, monkeypatch):
    with MockServer(seed=1) as server:
        auth = {"Authorization": f"Bearer {server.api_key}"}
        state: State = server.state
        monkeypatch.setattr(state, *BREAK[stage](state))
        broken = httpx.post(server.base_url + "/chat/completions", json=CHAT, headers=auth)
        assert broken.status_code == 500
        assert broken.json() == {"error": {"code": "internal_error", "message": broken.json()["error"]["message"], "status": 500}}
        assert broken.headers["X-Trace-ID"].startswith("trace-poeti-")
        with pytest.raises(AssertionError, match=FAILURE):
            server.check_errors()
        monkeypatch.undo()
        assert httpx.post(server.base_url + "/chat/completions", json=CHAT, headers=auth).status_code == 200
        server.check_errors()  # nothing new
