"""The request journal's entries: what GET /__admin/requests and `poeti.requests` show.

An entry keeps a bounded view of its request (the body's first bytes, the
headers up to a size), so a thousand entries stay a few megabytes whatever
clients send, and is made into JSON only when someone reads the journal: most
runs never do, and formatting every call's entry up front costs throughput.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .clock import iso
from .errors import ApiError
from .records import ApiKey, clip, key_prefix
from .wire import parse_json

if TYPE_CHECKING:
    from .call import Call
    from .matching import Playbook

JOURNAL_BODY_BYTES = 32 * 1024  # of a request body the journal keeps
JOURNAL_BODY_BYTES_UNAUTHENTICATED = 1024  # ... of a request no key admitted
JOURNAL_HEADER_BYTES = 8 * 1024  # of its headers, names and values together
JOURNAL_URL_CHARS = 2048  # of its path, and of its query string
_SECRET_HEADERS = frozenset({"authorization", "x-api-key", "api-key", "cookie", "x-admin-token"})
_SECRET_PARAMS = frozenset({"key", "api_key", "apikey", "api-key", "access_token", "token", "admin_token"})


@dataclass(slots=True)
class JournalEntry:
    at: float
    method: str
    path: str
    query: Mapping[str, str]
    headers: Mapping[str, str]
    raw: bytes | None  # the body's first bytes
    size: int  # the body's whole length
    endpoint: str | None
    status: int | None
    response_headers: Mapping[str, str]
    trace_id: str
    duration_ms: float
    note: dict
    monotonic_s: float  # the event loop's clock at arrival: waits between attempts are measured on it
    playbook: Playbook | None = None  # consulted and no rule answered: near misses are worked out on reading
    key: ApiKey | None = None  # for the near misses' `key` condition; never shown
    id: int = 0

    @classmethod
    def of(cls, call: Call, status: int | None, response_headers: Mapping[str, str], duration_ms: float) -> JournalEntry:
        raw = call.raw
        cap = JOURNAL_BODY_BYTES if call.key is not None else JOURNAL_BODY_BYTES_UNAUTHENTICATED
        note: dict[str, Any] = {}
        playbook = None
        if call.playbook is not None:
            note["rule"] = call.rule
            if call.rule is None and call.playbook.rules:
                playbook = call.playbook
        if call.fault_skipped:
            note["fault_skipped"] = call.fault_skipped
        if call.unknown_fields:
            note["unknown_fields"] = list(call.unknown_fields)
        if call.delivery is not None:
            note["delivery"] = call.delivery.to_json()
        request = call.request
        return cls(
            at=call.state.clock.now(),
            method=request.method,
            path=clip(request.path, JOURNAL_URL_CHARS),
            query=request.query if len(request.query_string) <= JOURNAL_URL_CHARS else _first(request.query, JOURNAL_URL_CHARS),
            headers=_bounded(request.headers, len(call.header_bytes)),
            raw=None if raw is None else raw[:cap],
            size=0 if raw is None else len(raw),
            endpoint=call.endpoint,
            status=status,
            response_headers=response_headers,
            trace_id=call.trace_id,
            duration_ms=duration_ms,
            note=note,
            monotonic_s=call.arrived,
            playbook=playbook,
            key=call.key_seen,
        )

    @property
    def body(self) -> Any:
        """The body as JSON when the journal kept all of it and it is JSON; else its text, cut short."""
        if self.raw is None:
            return None
        if len(self.raw) == self.size:
            try:
                return parse_json(self.raw)
            except ApiError:
                pass
        return self.raw.decode("utf-8", "replace")

    def to_json(self) -> dict:
        entry = {
            "id": self.id,
            "time": iso(self.at),
            "method": self.method,
            "path": self.path,
            "query": {k: mask_param(k, v) for k, v in self.query.items()},
            "headers": {k: _text(mask_header(k, v)) for k, v in self.headers.items()},
            "body": self.body,
            "endpoint": self.endpoint,
            "status": self.status,
            "response_headers": dict(self.response_headers),
            "trace_id": self.trace_id,
            "duration_ms": self.duration_ms,
            "monotonic_s": self.monotonic_s,
        }
        if self.raw is not None and len(self.raw) < self.size:
            entry["body_truncated"] = True
            entry["body_bytes"] = self.size
        entry.update(self.note)
        if self.playbook is not None:
            from .matching import view_of

            secret = self.key.secret if self.key else None
            view = view_of(self.endpoint, self.method, self.path, self.headers, entry["body"], secret)
            entry["near_misses"] = self.playbook.near_misses(view)
        return entry


def _bounded(headers: Mapping[str, str], size: int) -> Mapping[str, str]:
    """The headers as they came, or, past the journal's share, the first ones, each cut short."""
    return headers if size <= JOURNAL_HEADER_BYTES else _first(headers, JOURNAL_HEADER_BYTES)


def _first(items: Mapping[str, str], budget: int) -> dict[str, str]:
    """The first names and values that fit in `budget` characters, the last one cut short."""
    kept: dict[str, str] = {}
    for name, value in items.items():
        if budget <= 0:
            break
        kept.setdefault(name[:256], value[: max(0, budget - len(name))])
        budget -= len(name) + len(value)
    return kept


def mask_header(name: str, value: str) -> str:
    if name.lower() not in _SECRET_HEADERS:
        return value
    scheme, _, token = value.partition(" ")
    if token:
        return f"{scheme} {key_prefix(token)}"
    return key_prefix(value)


def mask_param(name: str, value: str) -> str:
    """A key sent in the query string is as secret as one in a header."""
    return key_prefix(value) if name.lower() in _SECRET_PARAMS or value.startswith("sk-") else _text(value)


def _text(value: str) -> str:
    """Text that can be written out as UTF-8 (a header may carry bytes that are not)."""
    if value.isascii():
        return value
    return value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
