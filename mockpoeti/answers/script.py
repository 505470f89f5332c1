"""What a rule asks an answer to be: content, tool calls, usage, status, an error,
latency, stream pacing, a fault. Frozen dataclasses made by the scenario loader
(`scripting.loader`) and read by whoever builds the answer.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any, Final

FINISH_REASONS: Final[tuple[str, ...]] = ("stop", "length", "tool_calls", "content_filter")
CHUNKINGS: Final[tuple[str, ...]] = ("token", "word", "char")

# Each fault kind and the parameters it takes.
FAULTS: Final[dict[str, tuple[str, ...]]] = {
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
    # the model's misbehaviour: the answer is well formed on the wire, and wrong (`answers.misbehaviour`)
    "invalid_tool_arguments": (),
    "schema_violation": (),
    "unknown_tool": (),
    "truncated_tool_call": (),
    "refusal": ("message",),
    "duplicate_tool_call_ids": (),
}
STREAM_ONLY_FAULTS: Final = frozenset({"malformed_chunk", "error_event", "no_done", "no_finish", "split_utf8", "duplicate_chunk"})
MODEL_FAULTS: Final = frozenset({
    "invalid_tool_arguments", "schema_violation", "unknown_tool", "truncated_tool_call", "refusal", "duplicate_tool_call_ids",
})


@dataclass(frozen=True, slots=True)
class Timing:
    """A delay: fixed, lognormal around a median, or uniform between bounds (milliseconds)."""

    fixed_ms: float | None = None
    median_ms: float | None = None
    sigma: float = 0.0
    min_ms: float | None = None
    max_ms: float | None = None

    def draw(self, rnd: random.Random | None) -> float:
        """Seconds: fixed, lognormal around the median, or uniform in [min, max] (`rnd`: None for a fixed one)."""
        if self.fixed_ms is not None:
            ms = self.fixed_ms
        elif rnd is None:
            raise ValueError("a timing that is drawn needs a random generator")
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
    """How a stream is cut (per token, word, sentence or N characters) and spaced in time."""

    chunk: str | int = "token"
    first_chunk: Timing | None = None
    interval: Timing | None = None
    jitter_ms: float = 0.0

    @property
    def paces(self) -> bool:
        """Does it time the chunks (rather than only say how the text is cut)?"""
        return self.first_chunk is not None or self.interval is not None

    @property
    def drawn(self) -> bool:
        """Are its deadlines drawn at random (a jitter, or a timing not fixed)?"""
        return bool(self.jitter_ms) or any(t is not None and t.fixed_ms is None for t in (self.first_chunk, self.interval))


@dataclass(frozen=True, slots=True)
class Fault:
    """A failure of the transport (reset, hang, malformed chunk...) or of the model's answer."""

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

    @property
    def of_the_model(self) -> bool:
        """A fault in what the model answers (a chat completion's content), not in how it travels."""
        return self.kind in MODEL_FAULTS


@dataclass(frozen=True, slots=True)
class ScriptedCall:
    """A tool call a response makes, as scripted."""

    name: str
    arguments: str  # JSON text
    id: str | None = None


@dataclass(frozen=True, slots=True)
class Respond:
    """What a rule answers: content or tool calls, an error or a raw body, timing, pacing, a fault."""

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
