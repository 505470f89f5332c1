"""What `server.stub(...)` hands back: a handle on one stub of a running server.

The stub itself (`matching.Stub`) lives in the server's state and is only
touched on the server's loop; the handle reads it through `server.call`, so it
works the same whether the server runs in a thread or in the test's loop.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .matching import Stub, Stubs
    from .server import MockServer


class StubHandle:
    def __init__(self, server: MockServer, stub: Stub, registry: Stubs):
        self._server, self._stub, self._registry = server, stub, registry

    @property
    def id(self) -> int:
        return self._stub.id

    @property
    def label(self) -> str:
        """How the journal's `rule` field names this stub (`stub#3`)."""
        return self._stub.rule.label

    @property
    def calls(self) -> int:
        """How many requests it answered."""
        return self._server.call(lambda: self._stub.calls)

    @property
    def requests(self) -> list[dict]:
        """The journal entries of the requests it answered, oldest first."""
        if not self._server.call(self._current):
            return []  # the server was reset since: that journal is gone, and ids start again
        return [entry for entry in self._server.requests if entry.get("rule") == self.label]

    def remove(self) -> None:
        """Take the stub away (a no-op once it is gone, e.g. after a reset)."""

        def remove() -> None:
            if self._current() and self._registry.get(self.id) is self._stub:
                self._registry.remove(self.id)

        self._server.call(remove)

    def _current(self) -> bool:
        return self._server.state.playbook.stubs is self._registry

    def __repr__(self) -> str:
        return f"<stub {self.label}: {self._stub.spec}>"
