"""The request journal's entries: what GET /__admin/requests and `poeti.requests` show.

An entry keeps a bounded view of its request (the body's first bytes, the
headers up to a size), so a thousand entries stay a few megabytes whatever
clients send, and is made into JSON only when someone reads the journal: most
runs never do, and formatting every call's entry up front costs throughput.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from mockpoeti.base.clock import iso
from mockpoeti.base.errors import ApiError
from mockpoeti.base.jsonio import encode, parse_json
from mockpoeti.base.secrets import as_text, mask_data, mask_header, mask_keys, mask_param, redact
from mockpoeti.books.ledger import clip
from mockpoeti.books.timeline import Timeline
from mockpoeti.scripting.matching import NearMisses, told

JOURNAL_BODY_BYTES: Final = 32 * 1024  # of a request body the journal keeps
JOURNAL_ANSWER_BYTES: Final = 32 * 1024  # of the answer's body (a stream's events as written)
JOURNAL_BODY_BYTES_UNAUTHENTICATED: Final = 1024  # ... of a request no key admitted
JOURNAL_HEADER_BYTES: Final = 8 * 1024  # of its headers, names and values together
JOURNAL_URL_CHARS: Final = 2048  # of its path, and of its query string
MAX_LISTING_BYTES: Final = 4 * 1024 * 1024  # of JSON in one page of GET /__admin/requests (1,000 entries may be 50 MiB)
MAX_LISTING_ENTRIES: Final = 10_000  # what `limit` may ask for


@dataclass(slots=True, init=False)
class JournalEntry:
    """One request, as data, when it ended: nothing in it changes meaning afterwards. One is made
    per request: its `__init__` is written out, which mypyc compiles (the one `dataclass` writes
    runs interpreted, ~8x slower); tests/test_records.py keeps its parameters and the fields the same."""

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
    near_misses: NearMisses | None = None  # no rule answered: the closest, worked out when it was logged (as data)
    id: int = 0
    timeline: Timeline | None = None  # a stream's (or a broken body's) writes, as the SSE writer marked them
    answer: bytes | Callable[[], bytes] | None = None  # the answer's first bytes, or what makes them (None: no body went out)
    answer_size: int = 0  # the whole answer's length

    def __init__(
        self, at: float, method: str, path: str, query: Mapping[str, str], headers: Mapping[str, str], raw: bytes | None,
        size: int, endpoint: str | None, status: int | None, response_headers: Mapping[str, str], trace_id: str,
        duration_ms: float, note: dict, monotonic_s: float, near_misses: NearMisses | None = None, id: int = 0,
        timeline: Timeline | None = None, answer: bytes | Callable[[], bytes] | None = None, answer_size: int = 0,
    ) -> None:
        self.at, self.method, self.path, self.query, self.headers, self.raw = at, method, path, query, headers, raw
        self.size, self.endpoint, self.status, self.response_headers = size, endpoint, status, response_headers
        self.trace_id, self.duration_ms, self.note, self.monotonic_s = trace_id, duration_ms, note, monotonic_s
        self.near_misses, self.id, self.timeline, self.answer, self.answer_size = near_misses, id, timeline, answer, answer_size

    def answer_json(self) -> dict:
        """The answer's body as the request-log page shows it: JSON when all of it was kept
        and it is JSON, else its text cut short; keys masked to their prefix either way."""
        answer = self.answer() if callable(self.answer) else self.answer
        if answer is None:
            return {"response_body": None}
        out = {"response_body": redact(_kept(answer, self.answer_size))}
        if len(answer) < self.answer_size:
            out["response_body_truncated"] = True
            out["response_body_bytes"] = self.answer_size
        return out

    @staticmethod
    def bounded(
        at: float, method: str, path: str, query: Mapping[str, str], query_length: int, headers: Mapping[str, str],
        header_bytes: int, raw: bytes | None, authenticated: bool, endpoint: str | None, status: int | None,
        response_headers: Mapping[str, str], trace_id: str, duration_ms: float, note: dict, monotonic_s: float,
        near_misses: NearMisses | None, timeline: Timeline | None, answer: bytes | Callable[[], bytes] | None,
        answer_size: int,
    ) -> JournalEntry:
        """An entry that keeps at most the journal's share of what the client sent and got.
        (Positional, as is the entry made here: one per request, and a call of twenty
        keywords costs three times one of twenty positions.) The answer's bytes are copied:
        orjson writes into a buffer of 4 KiB at least and never shrinks it, so a 600-byte
        answer kept as written would hold 4 KiB for as long as the journal keeps it."""
        cap = JOURNAL_BODY_BYTES if authenticated else JOURNAL_BODY_BYTES_UNAUTHENTICATED
        return JournalEntry(
            at, method, path if len(path) <= JOURNAL_URL_CHARS else clip(path, JOURNAL_URL_CHARS),
            query if query_length <= JOURNAL_URL_CHARS else _first(query, JOURNAL_URL_CHARS),
            headers if header_bytes <= JOURNAL_HEADER_BYTES else _first(headers, JOURNAL_HEADER_BYTES),
            raw if raw is None or len(raw) <= cap else raw[:cap], 0 if raw is None else len(raw),
            endpoint, status, response_headers, trace_id, duration_ms, note, monotonic_s, near_misses, 0, timeline,
            answer if not isinstance(answer, bytes) else b"".join((answer[:JOURNAL_ANSWER_BYTES], b"")), answer_size,
        )

    @property
    def body(self) -> Any:
        """The body as JSON when the journal kept all of it and it is JSON; else its text, cut short."""
        return None if self.raw is None else _kept(self.raw, self.size)

    def to_json(self) -> dict:
        entry = {
            "id": self.id,
            "time": iso(self.at),
            "method": self.method,
            "path": mask_keys(self.path),
            "query": {mask_keys(k): mask_param(k, v) for k, v in self.query.items()},
            "headers": {mask_keys(k): as_text(mask_header(k, v)) for k, v in self.headers.items()},
            "body": self.shown_body(),
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
        if "unknown_fields" in entry:  # the request's own field names
            entry["unknown_fields"] = mask_data(entry["unknown_fields"])
        if self.timeline is not None and "delivery" in entry:
            entry["delivery"] = {**entry["delivery"], "timeline": self.timeline.to_json()}
        if self.near_misses is not None:  # they quote the request: its model, message, headers
            entry["near_misses"] = mask_data(told(self.near_misses))
        return entry

    def shown_body(self) -> Any:
        """The body as the journal shows it: anything in it shaped like a key cut to its prefix
        (JSON may spell a key with escapes, so a body with any is looked through too)."""
        body = self.body
        if self.raw is not None and (b"sk-" in self.raw or b"\\u" in self.raw):
            return mask_data(body)
        return body


def _kept(data: bytes, size: int) -> Any:
    """Bytes the journal kept of something `size` long: JSON when it kept all of it and it is
    JSON, else its text, cut short."""
    if len(data) == size:
        try:
            return parse_json(data)
        except ApiError:
            pass
    return data.decode("utf-8", "replace")


def _first(items: Mapping[str, str], budget: int) -> dict[str, str]:
    """The first names and values that fit in `budget` characters, the last one cut short."""
    kept: dict[str, str] = {}
    for name, value in items.items():
        if budget <= 0:
            break
        kept.setdefault(name[:256], value[: max(0, budget - len(name))])
        budget -= len(name) + len(value)
    return kept


def page(entries: Iterable[JournalEntry], since: int = 0, limit: int | None = None,
         max_bytes: int = MAX_LISTING_BYTES) -> tuple[list[bytes], int | None]:
    """The entries after id `since`, oldest first, each as JSON: at most `limit` of them and
    `max_bytes` together (one entry at least, whatever its size); and the id the next page
    starts after (None when this one reaches the newest entry). Only the entries shown are
    made into JSON: a read costs what it returns."""
    out: list[bytes] = []
    size, last = 0, since
    for entry in entries:
        if entry.id <= since:
            continue
        if limit is not None and len(out) >= limit:
            return out, last
        data = encode(entry.to_json())
        if out and size + len(data) > max_bytes:
            return out, last
        out.append(data)
        size += len(data) + 1
        last = entry.id
    return out, None
