"""MockServer: a running mockpoeti on a free port, in this event loop or in a thread.

    with MockServer(seed=7) as server:          # a thread with its own loop
        OpenAI(base_url=server.base_url, api_key=server.api_key)

    async with MockServer() as server:          # the caller's loop
        ...
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from importlib import import_module
from typing import TYPE_CHECKING, Any, TypeVar

from aiohttp import web

from mockpoeti.base.settings import Settings, check_setting, clock_setting
from mockpoeti.books.state import State
from mockpoeti.http.app import make_runner
from mockpoeti.http.edge import limit_accept_errors

if TYPE_CHECKING:
    from mockpoeti.stubs import StubHandle

T = TypeVar("T")
LISTEN_BACKLOG = 2048  # aiohttp's 128 drops connections in a burst of a few hundred clients

# What serving may import on first use (a structured answer, a scenario switched at run time, a
# stub, a reset with history), imported before the server says it is ready: `pip install` rewrites
# mockpoeti's files, and a server that imported them only later answered every request with
# `tools` or `response_format` 500 until restarted. ~7 ms, once per process (README: Set-up).
# Faker stays lazy (~100 ms with its three locales; reinstalling mockpoeti does not touch it).
# tests/test_reinstall.py finds every function-level import in the package and checks it is here.
IMPORTED_BEFORE_READY = (
    "mockpoeti.answers.structured",  # and rstr
    "mockpoeti.books.history",
    "mockpoeti.scripting.loader",  # and scripting.schema
    "mockpoeti.stubs",
    "mockpoeti.retries",
)


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
        check_setting("port", port)
        self.settings = Settings(  # refuses a value outside its bounds: ValueError, one line naming the setting
            seed=seed,
            scenarios=tuple(scenarios),
            api_keys=tuple(api_keys),
            fixtures=None if fixtures is None else str(fixtures),
            clock=clock_setting(clock),
            history=history,
            **options,
        )
        self.host = host
        self.port = port
        self._state: State | None = None
        self._runner: web.BaseRunner | None = None
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
        if self._state is None:
            raise RuntimeError("the server is not running")
        return self._state

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
        if seed is not None:
            check_setting("seed", seed)
        moment = clock_setting(clock)
        loaded = None if scenarios is None else self._load(scenarios)
        self.call(lambda: self.state.reset(seed, loaded, moment))

    def use(self, *scenarios: str | dict) -> None:
        """Switch the active scenarios now (names, paths, or inline scenario dicts); state
        and stubs are kept."""
        loaded = self._load(scenarios)
        self.call(lambda: self.state.activate(loaded))

    @property
    def last_request(self) -> dict | None:
        return self.call(lambda: self.state.journal[-1].to_json() if self.state.journal else None)

    @property
    def traces(self) -> list[dict]:
        """Every stored trace, oldest first (GET /api/v1/request-traces lists them newest
        first), each as that listing shows it."""
        return self.call(lambda: [t.to_json() for t in self.state.traces])

    def assert_requested(self, count: int | None = None, **conditions: Any) -> list[dict]:
        """Assert the journal holds a request (or exactly `count`) matching `conditions`
        (the keys of a scenario `match`). On failure, says which came closest and how
        they differed. Returns the matching entries."""
        __tracebackhide__ = True
        from mockpoeti.scripting.loader import MATCH, build_match
        from mockpoeti.scripting.matching import differences, view_of
        from mockpoeti.scripting.schema import Site

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

    # --- stubs and retries --------------------------------------------------------

    def stub(self, respond: str | dict | list, *, times: int | None = None, **match: Any) -> StubHandle:
        """Answer matching requests with `respond` (a scenario rule's respond, a list of them
        played in turn with the last repeating, or a string: the answer's content). `match`
        takes a scenario match's keys; with neither `endpoint` nor `path` the stub answers
        chat calls. Stubs are tried before scenario rules, the latest first; `reset()`
        removes them. Raises ValueError when the stub is not valid."""
        __tracebackhide__ = True
        from mockpoeti.base.errors import ConfigError
        from mockpoeti.scripting.loader import parse_stub
        from mockpoeti.stubs import StubHandle

        spec: dict[str, Any] = {"match": match, "respond": respond}
        if times is not None:
            spec["times"] = times
        try:
            rule, spec = parse_stub(spec, self.state.catalog.errors)
        except ConfigError as e:
            raise ValueError("; ".join(e.problems)) from None

        def add() -> StubHandle:
            registry = self.state.playbook.stubs
            stub = registry.add(rule, spec)
            return StubHandle(
                stub, registry, on_loop=self.call, current=lambda: self.state.playbook.stubs, journal=lambda: self.requests
            )

        return self.call(add)

    @property
    def stubs(self) -> list[dict]:
        """The stubs, in the order they are tried (newest first), with their call counts."""
        return self.call(lambda: [stub.to_json() for stub in self.state.playbook.stubs.newest_first()])

    def attempts(self) -> list[list[dict]]:
        """The journal grouped into logical calls, oldest first: each call is the list of its
        attempts (journal entries), each with `wait_s`, the seconds between the previous
        attempt's answer and this request (None for the first), and `retry_after`, what that
        answer's Retry-After asked for (None if it did not). A request continues a call when it
        carries `x-stainless-retry-count` > 0, or repeats (same key and body) a call whose
        last attempt failed less than 30 s earlier."""
        from mockpoeti.retries import group_attempts, retry_after

        calls = group_attempts(self.requests)
        for call in calls:
            for attempt in call:
                attempt["retry_after"] = retry_after(attempt)
        return calls

    def assert_retried(
        self,
        *,
        max_attempts: int | None = None,
        honours_retry_after: bool = True,
        backoff: str = "exponential",
        retries_only_on: tuple[int, ...] | list[int] = (429, 500, 502, 503, 504),
    ) -> list[list[dict]]:
        """Assert the client retried as the reference says: only `retries_only_on` statuses,
        never sooner than Retry-After (`honours_retry_after`), with waits that grow
        (`backoff="exponential"`; `"any"` skips that), at most `max_attempts` attempts per call,
        and never giving up on a retriable failure at once. Raises AssertionError naming the
        attempt at fault; returns `attempts()`."""
        __tracebackhide__ = True
        from mockpoeti.retries import verdict

        calls = self.attempts()
        problem = verdict(
            calls,
            max_attempts=max_attempts,
            honours_retry_after=honours_retry_after,
            backoff=backoff,
            retries_only_on=retries_only_on,
        )
        if problem:
            raise AssertionError(problem)
        return calls

    def _load(self, scenarios) -> list:
        """Scenarios from names and paths (files), and from inline dicts, in the order given."""
        from mockpoeti.scripting.loader import load_scenarios, parse_scenario

        codes = self.state.catalog.errors
        loaded = []
        for item in scenarios:
            if isinstance(item, dict):
                loaded.append(parse_scenario(item, f"<inline {item.get('name', 'scenario')}>", codes))
            else:
                loaded.extend(load_scenarios([item], codes))
        return loaded

    def call(self, fn: Callable[[], T]) -> T:
        """Run fn on the server's loop (state is only ever touched from there)."""
        if self._thread is None or threading.current_thread() is self._thread:
            return fn()

        async def run() -> T:
            return fn()

        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(run(), self._loop).result()

    # --- in the caller's event loop -------------------------------------------

    async def start(self) -> MockServer:
        for name in IMPORTED_BEFORE_READY:
            import_module(name)
        self._state, self._runner = make_runner(self.settings)
        await self._runner.setup()
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
            limit_accept_errors(loop)  # a loop of our own: its error reports are ours to pace
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
        if self._thread is None or self._loop is None:
            return
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._thread = None

    def __repr__(self) -> str:
        return f"<MockServer {self.url}>"
