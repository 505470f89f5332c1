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
from typing import Any, TypeVar

from aiohttp import web

from mockpoeti.base.settings import Settings, check_setting, clock_setting
from mockpoeti.books.sessions import Sessions
from mockpoeti.books.state import State
from mockpoeti.http.app import make_runner
from mockpoeti.http.edge import limit_accept_errors
from mockpoeti.sessions import Session
from mockpoeti.twin import ServerError, Twin

__all__ = ["LISTEN_BACKLOG", "MockServer", "ServerError"]

T = TypeVar("T")
LISTEN_BACKLOG = 2048  # aiohttp's 128 drops connections in a burst of a few hundred clients

# What serving may import on first use (a structured answer, a scenario switched at run time, a
# stub, a reset with history), imported before the server says it is ready: `pip install` rewrites
# mockpoeti's files, and a server that imported them only later answered every request with
# `tools` or `response_format` 500 until restarted. ~3 ms, once per process (README: Set-up).
# Faker stays lazy (~100 ms with its three locales), as do PyYAML, decimal and difflib: reinstalling
# mockpoeti does not touch them (tests/test_reinstall.py: LAZY_BY_CHOICE).
# tests/test_reinstall.py finds every function-level import in the package and checks it is here.
IMPORTED_BEFORE_READY = (
    "mockpoeti.answers.structured",  # and rstr
    "mockpoeti.books.history",
    "mockpoeti.scripting.loader",  # and scripting.schema
    "mockpoeti.stubs",
    "mockpoeti.retries",
)


class MockServer(Twin):
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
        self._sessions: Sessions | None = None
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
    def api_key(self) -> str:
        return self._api_key

    @property
    def state(self) -> State:
        if self._state is None:
            raise RuntimeError("the server is not running")
        return self._state

    def call(self, fn: Callable[[], T]) -> T:
        """Run fn on the server's loop (state is only ever touched from there)."""
        if self._thread is None or threading.current_thread() is self._thread:
            return fn()

        async def run() -> T:
            return fn()

        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(run(), self._loop).result()

    # --- sessions: isolated twins answered under /sessions/{id} ---------------------

    def session(
        self,
        *,
        seed: int | None = None,
        clock: Any = None,
        scenarios: str | dict | list | tuple | None = None,
        scenario: str | dict | list | tuple | None = None,
        api_key: str | None = None,
    ) -> Session:
        """A new session (what `POST /__admin/sessions` makes): its own keys, books, journal,
        stubs, scenarios, clock and seed, answered under `session.url`. Without options it is
        a fresh twin of this server as it started; `scenarios` (or `scenario`, the HTTP
        body's name) takes names, paths and inline dicts. Close it (or use `with`) to end it."""
        __tracebackhide__ = True
        from mockpoeti.base.errors import ApiError

        if scenario is not None:
            if scenarios is not None:
                raise TypeError("pass scenarios or scenario, not both")
            scenarios = scenario
        if isinstance(scenarios, (str, dict)):
            scenarios = [scenarios]
        loaded = None if scenarios is None else self._load(scenarios)
        moment = clock_setting(clock)
        live = self._live_sessions()
        try:
            made = self.call(lambda: live.create(seed=seed, clock=moment, scenarios=loaded, api_key=api_key))
        except ApiError as e:
            raise (ValueError if e.code == "invalid_request" else RuntimeError)(e.message) from None
        return Session(made, live, server_url=self.url, on_loop=self.call)

    def end_sessions(self, keep: frozenset[str] = frozenset()) -> int:
        """End every session but those whose ids are in `keep`; how many ended."""
        live = self._live_sessions()
        return self.call(lambda: live.end_all(keep))

    @property
    def session_ids(self) -> frozenset[str]:
        """The ids of the live sessions."""
        live = self._live_sessions()
        return self.call(lambda: frozenset(session.id for session in live))

    def _live_sessions(self) -> Sessions:
        if self._sessions is None:
            raise RuntimeError("the server is not running")
        return self._sessions

    def _kept_errors(self) -> list[list[str]]:
        """The root's failures and every live session's: a bug hit in a session fails the test too."""
        return [self.state.server_errors, *(session.state.server_errors for session in self._live_sessions())]

    # --- in the caller's event loop -------------------------------------------

    async def start(self) -> MockServer:
        for name in IMPORTED_BEFORE_READY:
            import_module(name)
        self._state, self._sessions, self._runner = make_runner(self.settings)
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
