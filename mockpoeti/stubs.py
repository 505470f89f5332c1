"""What `server.stub(...)` hands back: a handle on one stub of a running server.

The stub itself (`matching.Stub`) lives in the server's state and is only
touched on the server's loop; the handle reaches it through `on_loop` (the
server's `call`), so it works the same whether the server runs in a thread or
in the test's loop. It holds functions, not the server: the server sits above it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mockpoeti.scripting.matching import Stub, Stubs



class StubHandle:
    def __init__(
        self,
        stub: Stub,
        registry: Stubs,
        *,
        on_loop: Callable[[Callable[[], Any]], Any],
        current: Callable[[], Stubs],
        journal: Callable[[], list[dict]],
    ):
        self._stub, self._registry = stub, registry
        self._on_loop, self._current_registry, self._journal = on_loop, current, journal

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
        return self._on_loop(lambda: self._stub.calls)

    @property
    def requests(self) -> list[dict]:
        """The journal entries of the requests it answered, oldest first."""
        if not self._on_loop(self._current):
            return []  # the server was reset since: that journal is gone, and ids start again
        return [entry for entry in self._journal() if entry.get("rule") == self.label]

    def remove(self) -> None:
        """Take the stub away (a no-op once it is gone, e.g. after a reset)."""

        def remove() -> None:
            if self._current() and self._registry.get(self.id) is self._stub:
                self._registry.remove(self.id)

        self._on_loop(remove)

    def _current(self) -> bool:
        return self._current_registry() is self._registry

    def __repr__(self) -> str:
        return f"<stub {self.label}: {self._stub.spec}>"
