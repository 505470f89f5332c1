"""The server's clock: wall time, or frozen at a set instant for byte-identical runs.

Timestamps (`created`, `created_at`, the usage month) come from `now()`.
Rate-limit windows use `monotonic()`, which `advance()` moves too, so a test
can skip a minute instead of sleeping through it.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from functools import lru_cache


class Clock:
    def __init__(self, frozen_at: float | None = None):
        self._initial = frozen_at
        self.reset()

    def reset(self, frozen_at: float | None = None) -> None:
        """Back to the start: frozen where it started (or at `frozen_at`), nothing advanced."""
        self._frozen_at = self._initial if frozen_at is None else frozen_at
        self._wall_offset = 0.0
        self._mono_offset = 0.0

    @property
    def frozen(self) -> bool:
        return self._frozen_at is not None

    def now(self) -> float:
        return self._frozen_at if self._frozen_at is not None else time.time() + self._wall_offset

    def monotonic(self) -> float:
        return time.monotonic() + self._mono_offset

    def advance(self, seconds: float) -> None:
        self._mono_offset += seconds
        self._wall_offset += seconds
        if self._frozen_at is not None:
            self._frozen_at += seconds

    def set(self, moment: float, frozen: bool = True) -> None:
        if frozen:
            self._frozen_at = moment
        else:
            self._frozen_at = None
            self._wall_offset = moment - time.time()


def iso(ts: float) -> str:
    return _iso_second(int(ts))


def day_of(ts: float) -> str:
    return _day(int(ts) // 86400)


# Formatting a datetime costs more than the rest of a trace; the same second
# and the same day come back thousands of times in a row.
@lru_cache(maxsize=1024)
def _iso_second(second: int) -> str:
    return datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@lru_cache(maxsize=1024)
def _day(day: int) -> str:
    return datetime.fromtimestamp(day * 86400, UTC).strftime("%Y-%m-%d")
