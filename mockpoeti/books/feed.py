"""The journal as it grows, for whoever watches it live (the request-log page's event stream).

A State keeps a set of `Listener`s and hands each new journal entry to them as it is
logged; with nobody listening, logging a request costs one look at an empty set. Each
listener holds a bounded backlog: one that falls `LISTENER_BACKLOG` entries behind (a
page that stopped reading) is dropped, and its stream ends so the page can start over
from the journal. Pure asyncio, no HTTP.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from typing import Any

LISTENER_BACKLOG = 1000  # entries a listener may fall behind before it is dropped
MAX_LISTENERS = 32  # live feeds one State serves at once (each an open connection and a backlog)
CLEARED = "cleared"  # what listeners get when the journal is emptied (DELETE /__admin/requests, reset)


class Listener:
    """One live feed's backlog: journal entries (and `CLEARED`) not yet sent."""

    __slots__ = ("_wake", "backlog", "closed", "lagging")

    def __init__(self) -> None:
        self.backlog: deque[Any] = deque()
        self.closed = False  # the server is stopping, or the session ended
        self.lagging = False  # fell too far behind: dropped
        self._wake = asyncio.Event()

    def push(self, item: Any) -> bool:
        """Queue an item; False (and dropped) when the backlog is full."""
        if len(self.backlog) >= LISTENER_BACKLOG:
            self.lagging = True
            self.backlog.clear()
            self._wake.set()
            return False
        self.backlog.append(item)
        self._wake.set()
        return True

    def close(self) -> None:
        self.closed = True
        self._wake.set()

    @property
    def over(self) -> bool:
        return self.closed or self.lagging

    async def next(self, timeout: float) -> list[Any]:
        """What arrived since the last call, waiting up to `timeout` seconds for something
        (an empty list when nothing did, or when the listener is over)."""
        if not self.backlog and not self.over:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._wake.wait()
        self._wake.clear()
        if self.over:
            return []
        items = list(self.backlog)
        self.backlog.clear()
        return items
