"""One request's story: a slotted `Call`, made when the request arrives, handed
explicitly to every stage and handler, and turned into its trace and its
journal entry in one place (`pipeline.finish`) when the request ends.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import partial
from itertools import chain
from time import perf_counter
from typing import TYPE_CHECKING, Any, Final

from aiohttp import web
from multidict import istr

from mockpoeti.answers.completion import DONE
from mockpoeti.answers.faults import Step, written
from mockpoeti.base.errors import ApiError
from mockpoeti.base.jsonio import parse_json
from mockpoeti.books.journal import JOURNAL_ANSWER_BYTES
from mockpoeti.books.timeline import Timeline, events_ended
from mockpoeti.http.cors import allow_origin
from mockpoeti.http.wire import read_raw

METRICS_PATH: Final = "/metrics"
# Header names every answer carries, made case-insensitive once: a name given as a plain str is
# made so again for each answer, and kept with it (~70 bytes a name a journal entry).
TRACE_ID: Final = istr("X-Trace-ID")
REQUEST_ID: Final = istr("x-request-id")

if TYPE_CHECKING:
    from mockpoeti.answers.chat_request import ChatRequest
    from mockpoeti.answers.completion import Completion
    from mockpoeti.answers.script import Respond
    from mockpoeti.books.ledger import ApiKey
    from mockpoeti.books.state import State
    from mockpoeti.scripting.matching import Playbook
    from mockpoeti.scripting.view import RequestView


class Delivery:
    """What actually went out on the wire, as the SSE writer saw it: counts, the stream's
    timeline (`books/timeline.py`), and for the journal the answer's first bytes: the
    writes that hold them, or, for a plan that `replay` makes again, nothing until the
    journal is read (a stream's frames are ~200 bytes a chunk; what they are made of, a
    few)."""

    __slots__ = (
        "bytes_sent", "chunks_sent", "completed", "content_chunks", "events_sent", "headers_sent", "interrupted", "kept",
        "replay", "tail", "timeline",
    )

    def __init__(self, content_chunks: int = 0, replay: Callable[[], Iterable[Step]] | None = None) -> None:
        self.content_chunks = content_chunks  # how many the answer has (0: a whole body)
        self.replay = replay
        self.headers_sent = False
        self.chunks_sent = 0
        self.bytes_sent = 0
        self.completed = False
        self.interrupted = False
        self.events_sent = 0  # SSE events (each `data: ...` and a blank line), `data: [DONE]` included
        self.timeline = Timeline(replay)
        self.kept: list[bytes] = []  # the writes that hold the answer's first bytes, for the journal (without `replay`)
        self.tail = b""  # the last two bytes written: a blank line may be split between writes

    def wrote(self, data: bytes, sent_ms: float, at: float | None, content: int, events: int | None) -> None:
        """Note a write that went out `sent_ms` after the request arrived, planned for `at`
        seconds after it (None: at once), carrying `content` chunks and ending `events` SSE
        events (None: counted here, the write may hold pieces of events)."""
        size = len(data)
        self.bytes_sent += size
        self.chunks_sent += content
        timeline = self.timeline
        if timeline.sse:
            events, self.tail = events_ended(data, events, self.tail)
            self.events_sent += events
            if data.endswith(DONE):
                timeline.done = True
        else:
            events = 0
        timeline.mark(sent_ms, None if at is None else at * 1000, events, content)
        if self.replay is None and self.bytes_sent - size < JOURNAL_ANSWER_BYTES:  # what was written before this one
            self.kept.append(data)

    def answer(self) -> bytes | Callable[[], bytes]:
        """The first `JOURNAL_ANSWER_BYTES` of what was written, or what makes them."""
        if self.replay is not None:
            return partial(written, self.replay, min(self.bytes_sent, JOURNAL_ANSWER_BYTES))
        kept = self.kept[0] if len(self.kept) == 1 else b"".join(self.kept)
        return kept[:JOURNAL_ANSWER_BYTES]

    def to_json(self) -> dict:
        return {
            "headers_sent": self.headers_sent,
            "chunks_sent": self.chunks_sent,
            "bytes_sent": self.bytes_sent,
            "completed": self.completed,
            "interrupted": self.interrupted,
            "events_sent": self.events_sent,
        }


class Call:
    """Everything a request's path needs and leaves behind. Stages write it, `finish` reads it."""

    __slots__ = (
        "arrived",
        "at",
        "body",
        "body_error",
        "chat",
        "completion",
        "delivery",
        "endpoint",
        "error",
        "extra_headers",
        "fault",
        "fault_skipped",
        "header_bytes",
        "is_admin",
        "key",
        "key_seen",
        "params",
        "path",
        "playbook",
        "prefix",
        "raw",
        "request",
        "respond",
        "rule",
        "seed",
        "started",
        "state",
        "stream",
        "trace_id",
        "unknown_fields",
        "view",
    )

    def __init__(self, request: web.BaseRequest, state: State, arrived: float, path: str, prefix: str = "") -> None:
        self.request = request
        self.state = state  # the server's, or the session's the path names
        self.path = path  # the path as the state answers it: a session's without its prefix
        self.prefix = prefix  # "" at the root; "/sessions/{id}" in a session
        self.trace_id = state.new_trace_id()
        self.arrived = arrived  # loop time: stream deadlines and retry waits count from it
        self.started = perf_counter()
        self.at = state.clock.now()  # the one reading of the server's clock: trace, journal and answer agree
        self.is_admin = path.startswith("/__admin/") or path == METRICS_PATH  # the admin token's, and not journaled
        # the raw header names and values, run together: one C pass answers "all ASCII?" and "how big?"
        self.header_bytes = b"".join(chain.from_iterable(request.raw_headers))
        self.endpoint: str | None = None  # the route's name, which is also a scenario `endpoint`
        self.params: dict[str, str] = {}
        self.raw: bytes | None = None  # the body as read (None: not read)
        self.body: Any = None  # the body as JSON, once parsed
        self.body_error: ApiError | None = None
        self.key: ApiKey | None = None  # the caller's key, once admitted
        self.key_seen: ApiKey | None = None  # a known key, even revoked or over its limits: its calls are traced
        self.extra_headers: dict[str, str] | None = None  # rate-limit and scripted headers
        self.playbook: Playbook | None = None  # the stubs and scenarios consulted
        self.view: RequestView | None = None  # what they were shown
        self.rule: str | None = None  # the scenario rule or stub that answered
        self.respond: Respond | None = None
        self.seed = 0  # seeds the scripted answer's template, timing and content
        self.chat: ChatRequest | None = None  # the request, once validated
        self.completion: Completion | None = None
        self.error: tuple[int, str, str] | None = None  # the error answered: status, code, message
        self.fault: str | None = None  # the scripted fault carried out
        self.fault_skipped: str | None = None
        self.unknown_fields: tuple[str, ...] = ()
        self.delivery: Delivery | None = None
        self.stream: web.StreamResponse | None = None  # set once a stream's headers are out

    # --- the request ---------------------------------------------------------------

    @property
    def account(self) -> str:
        """The caller's account (only on routes that authenticate)."""
        assert self.key is not None
        return self.key.account

    @property
    def method(self) -> str:
        return self.request.method

    @property
    def query(self) -> Any:
        return self.request.query

    @property
    def headers(self) -> Any:
        return self.request.headers

    async def json(self) -> Any:
        """The body as JSON, parsed once; or the `ApiError` that says what is wrong with it."""
        if self.body_error is not None:
            raise self.body_error.again()
        if self.raw is None:
            try:
                self.raw = await read_raw(self.request, *self.state.settings.body_limits)
                self.body = parse_json(self.raw)
            except ApiError as e:
                self.raw = self.raw or b""
                self.body_error = e.again()  # a copy without the traceback, whose frames would hold this call in a cycle
                raise
        return self.body

    async def peek(self) -> Any:
        """The body as JSON for matching, or None when it is not JSON (no error yet)."""
        if not self.request.can_read_body and self.raw is None:
            return None
        try:
            return await self.json()
        except ApiError:
            return None

    def body_as_sent(self) -> Any:
        """The body as JSON if it is JSON, read or only kept: for the books, never an error."""
        if self.body is None and self.raw and self.body_error is None:
            try:
                return parse_json(self.raw)
            except ApiError:
                return None
        return self.body

    async def keep_body(self) -> None:
        """Read what nobody read, for the journal; parsed only when the journal is read."""
        if self.raw is None and self.body_error is None and self.request.can_read_body:
            try:
                self.raw = await read_raw(self.request, *self.state.settings.body_limits)
            except ApiError:
                self.raw = b""

    def client_left(self) -> None:
        """The client hung up before the answer was complete."""
        if self.delivery is None:
            self.delivery = Delivery()
        self.delivery.interrupted = True

    def stamp(self, response: web.StreamResponse) -> None:
        """What every answer carries: X-Trace-ID (and x-request-id), the call's extra
        headers (rate limits, scripted ones), CORS. Called just before the headers go
        out, by the pipeline or the SSE writer."""
        headers = response.headers
        headers[TRACE_ID] = self.trace_id
        headers.setdefault(REQUEST_ID, self.trace_id)
        if self.extra_headers:
            headers.update(self.extra_headers)
        allow_origin(response)

    def add_headers(self, headers: dict[str, str]) -> None:
        if headers:
            self.extra_headers = {**(self.extra_headers or {}), **headers}
