"""What a scenario is, once loaded: frozen dataclasses, and the names of
endpoints and faults. The rest of mockpoeti sees only these, never a raw dict
from a file; reading and validating files is `scenario_file`'s job, loaded
only when there are files to read.
"""

from __future__ import annotations

import math
import random
import re
from dataclasses import dataclass
from typing import Any

ENDPOINTS = ("chat", "models", "model", "api_keys", "api_key", "usage", "traces", "trace", "trace_stats")
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
FINISH_REASONS = ("stop", "length", "tool_calls", "content_filter")
CHUNKINGS = ("token", "word", "char")

# Each fault kind and the parameters it takes.
FAULTS: dict[str, tuple[str, ...]] = {
    "reset": ("after_ms",),
    "empty": (),
    "malformed": (),
    "hang": ("duration_ms",),
    "stall": ("after_chunks", "duration_ms"),
    "drip": ("bytes", "interval_ms"),
    "disconnect": ("after_chunks",),
    "malformed_chunk": ("after_chunks",),
    "error_event": ("after_chunks", "error", "message"),
    "no_done": (),
    "no_finish": (),
    "split_utf8": ("after_chunks",),
    "duplicate_chunk": ("after_chunks",),
}
STREAM_ONLY_FAULTS = frozenset({"malformed_chunk", "error_event", "no_done", "no_finish", "split_utf8", "duplicate_chunk"})


@dataclass(frozen=True, slots=True)
class Timing:
    fixed_ms: float | None = None
    median_ms: float | None = None
    sigma: float = 0.0
    min_ms: float | None = None
    max_ms: float | None = None

    def draw(self, rnd: random.Random) -> float:
        """Seconds: fixed, lognormal around the median, or uniform in [min, max]."""
        if self.fixed_ms is not None:
            ms = self.fixed_ms
        elif self.median_ms is not None:
            ms = self.median_ms * math.exp(self.sigma * rnd.gauss(0, 1)) if self.sigma else self.median_ms
        else:
            ms = rnd.uniform(self.min_ms or 0, self.max_ms or 0)
        if self.min_ms is not None:
            ms = max(ms, self.min_ms)
        if self.max_ms is not None:
            ms = min(ms, self.max_ms)
        return ms / 1000


@dataclass(frozen=True, slots=True)
class Pacing:
    chunk: str | int = "token"
    first_chunk: Timing | None = None
    interval: Timing | None = None
    jitter_ms: float = 0.0


@dataclass(frozen=True, slots=True)
class Fault:
    kind: str
    after_chunks: int | None = None
    after_ms: float = 0.0
    duration_ms: float | None = None
    bytes: int = 1
    interval_ms: float = 50.0
    error: str = "internal_error"
    message: str | None = None

    @property
    def stream_only(self) -> bool:
        return self.kind in STREAM_ONLY_FAULTS


@dataclass(frozen=True, slots=True)
class ScriptedCall:
    name: str
    arguments: str  # JSON text
    id: str | None = None


@dataclass(frozen=True, slots=True)
class Respond:
    line: int = 1
    content: str | None = None
    tool_calls: tuple[ScriptedCall, ...] = ()
    finish_reason: str | None = None
    usage: tuple[int | None, int | None] | None = None  # prompt, completion
    status: int | None = None
    headers: tuple[tuple[str, str], ...] = ()
    body: Any = None
    has_body: bool = False
    error: str | None = None
    message: str | None = None
    latency: Timing | None = None
    pacing: Pacing | None = None
    fault: Fault | None = None

    @property
    def replaces_answer(self) -> bool:
        """True when this response is not a (modified) default answer of the endpoint."""
        return self.error is not None or self.has_body or (self.status is not None and self.status >= 400)


@dataclass(frozen=True, slots=True)
class Match:
    endpoint: str | None = None
    method: str | None = None
    path: str | None = None
    model: str | None = None
    stream: bool | None = None
    message: str | re.Pattern | None = None
    headers: tuple[tuple[str, str], ...] = ()
    body: Any = None
    key: str | None = None
    last_role: str | None = None
    tools: bool | frozenset[str] | None = None  # any tool, none, or exactly these function names


@dataclass(frozen=True, slots=True)
class Rule:
    scenario: str
    index: int
    line: int
    name: str
    match: Match
    responses: tuple[Respond, ...]
    times: int | None = None
    stub_id: int | None = None  # a stub (a rule added at run time) rather than a scenario file's rule

    @property
    def label(self) -> str:
        """How the journal names the rule that answered: `retry/rules[0] (name)`, `stub#3`."""
        where = f"stub#{self.stub_id}" if self.stub_id is not None else f"{self.scenario}/rules[{self.index}]"
        return where + (f" ({self.name})" if self.name else "")


@dataclass(frozen=True, slots=True)
class Chaos:
    rate: float
    responses: tuple[Respond, ...]
    seed: int | None = None
    match: Match = Match(endpoint="chat")


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    description: str
    source: str
    seed: int | None
    rules: tuple[Rule, ...]
    chaos: Chaos | None = None
