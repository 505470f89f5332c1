"""MockServer: a running mockpoeti on a free port, in this event loop or in a thread.

    with MockServer(seed=7) as server:          # a thread with its own loop
        OpenAI(base_url=server.base_url, api_key=server.api_key)

    async with MockServer() as server:          # the caller's loop
        ...
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError, LineTooLong

from .app import make_app
from .errors import ApiError
from .settings import Settings, parse_time
from .state import State
from .tracing import STATE
from .wire import error_response

T = TypeVar("T")
LISTEN_BACKLOG = 2048  # aiohttp's 128 drops connections in a burst of a few hundred clients
MAX_HEADER_BYTES = 65536
# aiohttp waits this long for a handler to finish, then as long again after asking it to stop,
# before it cancels it: a paced stream never finishes early, so stopping takes twice this.
SHUTDOWN_TIMEOUT_S = 0.4
_QUOTED = re.compile(r":|\n| b?'| b?\"")  # where aiohttp's parser messages start quoting the request

log = logging.getLogger("mockpoeti")


class _Connection(web.RequestHandler):
    """aiohttp's connection handler, but what its HTTP parser refuses (a NUL in a header, a
    line over the limit, two Content-Lengths) gets the one error format and an X-Trace-ID like
    every other error, and neither the answer nor the log quotes the refused bytes: aiohttp
    quotes them in both, and they may hold a key."""

    def handle_error(self, request, status: int = 500, exc: BaseException | None = None, message: str | None = None):
        if status >= 500:
            self.log_exception("Error handling request", exc_info=exc)
        else:
            log.debug("refused a malformed request: %s", type(exc).__name__)
        if request.writer.output_size > 0:  # as aiohttp: a response is under way, only closing is left
            raise ConnectionError("Response is sent already, cannot send another response with the error message")
        state: State = self._manager.state
        if status >= 500:
            error = ApiError("internal_error")
        else:
            error = ApiError("payload_too_large" if status == 413 else "invalid_request", _refusal(exc), status=status)
        response = error_response(state.catalog, error)
        trace_id = state.new_trace_id()
        response.headers["X-Trace-ID"] = response.headers["x-request-id"] = trace_id
        response.force_close()
        return response


def _refusal(exc: BaseException | None) -> str:
    if isinstance(exc, LineTooLong):
        return f"The request line or a header is longer than {MAX_HEADER_BYTES} bytes."
    reason = exc.message if isinstance(exc, HttpProcessingError) and isinstance(exc.message, str) else ""
    reason = _QUOTED.split(reason, maxsplit=1)[0].strip()
    return f"The request is not valid HTTP/1.1{': ' + reason if reason else ''}."


class _Server(web.Server):
    """aiohttp's low-level server, making `_Connection`s (AppRunner has no hook for that)."""

    state: State

    def __call__(self) -> web.RequestHandler:
        return _Connection(self, loop=self._loop, **self._kwargs)


def _elsewhere(differences: list[str]) -> bool:
    return any(d.startswith(("endpoint:", "path:", "method:")) for d in differences)


class ServerError(AssertionError):
    """A failure inside the server, raised in the test that caused it."""


class MockServer:
    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        seed: int | None = None,
        scenarios: tuple[str, ...] | list[str] = (),
        api_keys: tuple[str, ...] | list[str] = (),
        fixtures: str | None = None,
        clock: Any = None,
        history: bool = False,
        **options: Any,
    ):
        self.settings = Settings(
            seed=seed,
            scenarios=tuple(scenarios),
            api_keys=tuple(api_keys),
            fixtures=None if fixtures is None else str(fixtures),
            clock=None if clock is None else parse_time(clock),
            history=history,
            **options,
        )
        self.host = host
        self.port = port
        self.app: web.Application | None = None
        self._runner: web.AppRunner | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._api_key = ""
        self.strict = False  # set by the pytest plugin: every request must be answered by a rule

    # --- where it is ---------------------------------------------------------

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def base_url(self) -> str:
        return self.url + "/v1"

    @property
    def api_key(self) -> str:
        return self._api_key

    @property
    def state(self) -> State:
        if self.app is None:
            raise RuntimeError("the server is not running")
        return self.app[STATE]

    # --- what it saw -----------------------------------------------------------

    @property
    def requests(self) -> list[dict]:
        """The request journal, newest last (the entries of GET /__admin/requests)."""
        return self.call(self.state.journal_entries)

    def reset(
        self, *, seed: int | None = None, scenarios: list[str] | tuple[str, ...] | None = None, clock: Any = None
    ) -> None:
        """Fresh state: fixtures' keys, no traces, an empty journal, the same seed (or
        `seed`), the start's scenarios (or `scenarios`, names or paths), the start's
        clock (or one frozen at `clock`)."""
        loaded = None if scenarios is None else self._load(scenarios)
        moment = None if clock is None else parse_time(clock)
        self.call(lambda: self.state.reset(seed, loaded, moment))

    def use(self, *scenarios: str) -> None:
        """Switch the active scenarios now (names or paths); state is kept."""
        loaded = self._load(scenarios)
        self.call(lambda: self.state.activate(loaded))

    @property
    def last_request(self) -> dict | None:
        return self.call(lambda: self.state.journal[-1].to_json() if self.state.journal else None)

    @property
    def traces(self) -> list[dict]:
        """Every stored trace, oldest first, as GET /api/v1/request-traces shows them."""
        return self.call(lambda: [t.to_json() for t in self.state.traces])

    def assert_requested(self, count: int | None = None, **conditions: Any) -> list[dict]:
        """Assert the journal holds a request (or exactly `count`) matching `conditions`
        (the keys of a scenario `match`). On failure, says which came closest and how
        they differed. Returns the matching entries."""
        __tracebackhide__ = True
        from .matching import differences, view_of
        from .scenario_file import MATCH, build_match
        from .schema import Site

        site = Site("assert_requested")
        MATCH.check(conditions, site)
        if site.problems:
            raise ValueError("; ".join(p.removeprefix("assert_requested:1: ") for p in site.problems))
        match = build_match(conditions)
        entries = self.requests
        scored = [
            (differences(match, view_of(e.get("endpoint"), e["method"], e["path"], e["headers"], e.get("body"))), e)
            for e in entries
        ]
        hits = [e for diffs, e in scored if not diffs]
        if (count is None and hits) or (count is not None and len(hits) == count):
            return hits
        wanted = "a request" if count is None else f"{count} request{'s' if count != 1 else ''}"
        lines = [f"expected {wanted} matching {conditions}; {len(hits)} of {len(entries)} matched"]
        # closest first: the same endpoint and path before anything else, then fewest differences
        misses = sorted((d for d in scored if d[0]), key=lambda d: (_elsewhere(d[0]), len(d[0])))[:3]
        if misses:
            lines.append("closest:")
            for diffs, e in misses:
                lines.append(f"  #{e['id']} {e['method']} {e['path']}: " + "; ".join(diffs))
        raise AssertionError("\n".join(lines))

    def check_errors(self) -> None:
        """Raise if the server hit a bug of its own while serving (with its traceback)."""
        errors = self.call(lambda: list(self.state.server_errors))
        if errors:
            self.call(self.state.server_errors.clear)
            raise ServerError("mockpoeti failed while serving a request:\n" + "\n".join(errors))

    def _load(self, scenarios) -> list:
        from .scenario_file import load_scenarios

        return load_scenarios(scenarios, self.state.catalog.errors)

    def call(self, fn: Callable[[], T]) -> T:
        """Run fn on the server's loop (state is only ever touched from there)."""
        if self._thread is None or threading.current_thread() is self._thread:
            return fn()

        async def run() -> T:
            return fn()

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result()

    # --- in the caller's event loop -------------------------------------------

    async def start(self) -> MockServer:
        self.app = make_app(self.settings)
        self._runner = web.AppRunner(
            self.app,
            access_log=None,  # the journal is the log; a line per request costs throughput
            handle_signals=False,
            shutdown_timeout=SHUTDOWN_TIMEOUT_S,
            max_field_size=MAX_HEADER_BYTES,  # so a huge header reaches us and gets a formatted error
            max_line_size=MAX_HEADER_BYTES,
        )
        await self._runner.setup()
        self._runner.server.__class__ = _Server
        self._runner.server.state = self.app[STATE]
        site = web.TCPSite(self._runner, self.host, self.port, backlog=LISTEN_BACKLOG, reuse_address=True)
        try:
            await site.start()
        except BaseException:
            await self._runner.cleanup()
            raise
        self.port = self._runner.addresses[0][1]
        self._api_key = self.settings.api_keys[0] if self.settings.api_keys else self.state.default_key
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> MockServer:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # --- in a thread of its own ---------------------------------------------------

    def __enter__(self) -> MockServer:
        ready = threading.Event()
        failure: list[BaseException] = []

        def serve() -> None:
            loop = self._loop = asyncio.new_event_loop()
            try:
                loop.run_until_complete(self.start())
            except BaseException as e:  # reported to the caller, not lost in the thread
                failure.append(e)
                ready.set()
                loop.close()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self.stop())
            # what stop() cancelled (a handler still reading a refused body, say) ends here,
            # as asyncio.run() would see to, not as "Task was destroyed but it is pending"
            leftover = asyncio.all_tasks(loop)
            if leftover:
                for task in leftover:
                    task.cancel()
                loop.run_until_complete(asyncio.gather(*leftover, return_exceptions=True))
            loop.close()

        self._thread = threading.Thread(target=serve, name=f"mockpoeti-{id(self):x}", daemon=True)
        self._thread.start()
        ready.wait()
        if failure:
            self._thread.join()
            self._thread = None
            raise failure[0]
        return self

    def __exit__(self, *exc: object) -> None:
        if self._thread is None:
            return
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._thread = None

    def __repr__(self) -> str:
        return f"<MockServer {self.url}>"
