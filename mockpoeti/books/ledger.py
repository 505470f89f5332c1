"""What the books are made of: API keys, traces and running sums.

Pure data with their own small rules (a key admits a call or refuses it; a
trace prices itself). A module of its own so that the state, the seeded
history and the journal can all use them without importing each other.
"""

from __future__ import annotations

import hashlib
import math
from collections import deque
from dataclasses import dataclass, field
from typing import Final

from mockpoeti.base.catalog import Model
from mockpoeti.base.clock import iso
from mockpoeti.base.errors import ApiError
from mockpoeti.base.secrets import key_prefix

NANOS: Final = 1_000_000_000
KEY_ALPHABET: Final = "abcdefghijklmnopqrstuvwxyz0123456789"


MAX_STORED_TEXT: Final = 256  # characters of a client's string (an unknown model name) a trace keeps


def clip(text: str, limit: int = MAX_STORED_TEXT) -> str:
    """A string as stored: what a client sent may be megabytes, what the books keep is not."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def usd(nanos: int) -> float:
    return round(nanos / NANOS, 9)


def digest(secret: str) -> bytes:
    # Keys are found by their hash, so lookup time says nothing about a key's characters.
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).digest()


@dataclass(slots=True, eq=False)
class ApiKey:
    id: int
    account: str
    name: str
    secret: str
    created_at: float
    monthly_budget: float | None = None
    rate_limit: int | None = None
    is_active: bool = True
    total_requests: int = 0
    total_cost_nanos: int = 0
    spent_nanos: dict[str, int] = field(default_factory=dict)  # by month, "YYYY-MM"
    window: deque = field(default_factory=deque)  # monotonic times of admitted calls, last minute
    prefix: str = field(init=False, default="")  # what is shown of it: worked out once, read by every trace

    def __post_init__(self) -> None:
        self.prefix = key_prefix(self.secret)

    def to_json(self, reveal: bool = False) -> dict:
        out = {
            "id": self.id,
            "name": self.name,
            "key_prefix": self.prefix,
            "is_active": self.is_active,
            "monthly_budget": self.monthly_budget,
            "rate_limit": self.rate_limit,
            "total_requests": self.total_requests,
            "total_cost": usd(self.total_cost_nanos),
            "created_at": iso(self.created_at),
        }
        if reveal:
            rest = {k: v for k, v in out.items() if k not in ("id", "name")}
            out = {"id": self.id, "name": self.name, "key": self.secret, **rest}
        return out

    def admit(self, monotonic_now: float, month: str) -> dict[str, str]:
        """Let one call through, or raise `rate_limit_exceeded` / `budget_exceeded`.

        Returns the rate-limit headers OpenAI clients read (`x-ratelimit-*`).
        """
        if self.monthly_budget is not None and self.spent_nanos.get(month, 0) >= round(self.monthly_budget * NANOS):
            raise ApiError(
                "budget_exceeded",
                f"API key '{self.prefix}' has used its monthly budget of ${self.monthly_budget:g}.",
            )
        if self.rate_limit is None:
            return {}
        window = self.window
        while window and window[0] <= monotonic_now - 60:
            window.popleft()
        if len(window) >= self.rate_limit:
            wait = max(1, math.ceil(window[0] + 60 - monotonic_now))
            raise ApiError(
                "rate_limit_exceeded",
                f"Rate limit of {self.rate_limit} requests per minute exceeded for API key "
                f"'{self.prefix}'. Retry after {wait} seconds.",
                headers={
                    "Retry-After": str(wait),
                    "x-ratelimit-limit-requests": str(self.rate_limit),
                    "x-ratelimit-remaining-requests": "0",
                    "x-ratelimit-reset-requests": f"{wait}s",
                },
            )
        window.append(monotonic_now)
        return {
            "x-ratelimit-limit-requests": str(self.rate_limit),
            "x-ratelimit-remaining-requests": str(self.rate_limit - len(window)),
            "x-ratelimit-reset-requests": f"{max(0.0, window[0] + 60 - monotonic_now):.0f}s",
        }


def costs(model: Model | None, prompt_tokens: int, completion_tokens: int) -> tuple[int, int]:
    """What a call's prompt and completion cost at the model's prices, in nano-dollars (0 for
    a model the catalog does not know)."""
    if model is None:
        return 0, 0
    return model.cost_nanos(prompt_tokens, 0), model.cost_nanos(0, completion_tokens)


@dataclass(slots=True, init=False)
class Trace:
    """One chat call as the books keep it. Made on every chat call: its `__init__` is written out,
    which mypyc compiles (the one `dataclass` writes runs interpreted, ~8x slower);
    tests/test_records.py keeps its parameters and the fields the same."""

    trace_id: str
    account: str
    key_id: int
    key_prefix: str
    created_at: float
    routing_strategy: str
    model: str | None = None
    provider: str | None = None
    status: str = "success"
    http_status: int = 200
    stream: bool = False
    prompt_tokens: int = 0
    completion_tokens: int = 0
    prompt_cost_nanos: int = 0
    completion_cost_nanos: int = 0
    cost_nanos: int = 0
    latency_ms: int = 0
    error_code: str | None = None
    error_message: str | None = None
    completion_id: str | None = None
    interrupted: bool = False

    def __init__(
        self, trace_id: str, account: str, key_id: int, key_prefix: str, created_at: float, routing_strategy: str,
        model: str | None = None, provider: str | None = None, status: str = "success", http_status: int = 200,
        stream: bool = False, prompt_tokens: int = 0, completion_tokens: int = 0, prompt_cost_nanos: int = 0,
        completion_cost_nanos: int = 0, cost_nanos: int = 0, latency_ms: int = 0, error_code: str | None = None,
        error_message: str | None = None, completion_id: str | None = None, interrupted: bool = False,
    ) -> None:
        self.trace_id, self.account, self.key_id, self.key_prefix = trace_id, account, key_id, key_prefix
        self.created_at, self.routing_strategy, self.model, self.provider = created_at, routing_strategy, model, provider
        self.status, self.http_status, self.stream = status, http_status, stream
        self.prompt_tokens, self.completion_tokens = prompt_tokens, completion_tokens
        self.prompt_cost_nanos, self.completion_cost_nanos, self.cost_nanos = prompt_cost_nanos, completion_cost_nanos, cost_nanos
        self.latency_ms, self.error_code, self.error_message = latency_ms, error_code, error_message
        self.completion_id, self.interrupted = completion_id, interrupted

    def price(self, model: Model | None) -> None:
        self.prompt_cost_nanos, self.completion_cost_nanos = costs(model, self.prompt_tokens, self.completion_tokens)
        self.cost_nanos = self.prompt_cost_nanos + self.completion_cost_nanos  # worked out once, read by every sum

    def to_json(self) -> dict:
        return {
            "trace_id": self.trace_id,
            "model": self.model,
            "provider": self.provider,
            "status": self.status,
            "http_status": self.http_status,
            "error_code": self.error_code,
            "error_message": self.error_message,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
            "cost_usd": usd(self.cost_nanos),
            "prompt_cost_usd": usd(self.prompt_cost_nanos),
            "completion_cost_usd": usd(self.completion_cost_nanos),
            "latency_ms": self.latency_ms,
            "routing_strategy": self.routing_strategy,
            "stream": self.stream,
            "interrupted": self.interrupted,
            "api_key_id": self.key_id,
            "key_prefix": self.key_prefix,
            "request_id": self.completion_id,
            "created_at": iso(self.created_at),
        }


@dataclass(slots=True)
class Sums:
    requests: int = 0
    successes: int = 0
    errors: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_nanos: int = 0
    latency_ms: int = 0

    def add(self, other: Sums) -> None:
        self.requests += other.requests
        self.successes += other.successes
        self.errors += other.errors
        self.prompt_tokens += other.prompt_tokens
        self.completion_tokens += other.completion_tokens
        self.cost_nanos += other.cost_nanos
        self.latency_ms += other.latency_ms

    def add_trace(self, trace: Trace) -> None:
        self.requests += 1
        if trace.status == "success":
            self.successes += 1
        else:
            self.errors += 1
        self.prompt_tokens += trace.prompt_tokens
        self.completion_tokens += trace.completion_tokens
        self.cost_nanos += trace.cost_nanos
        self.latency_ms += trace.latency_ms

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens
