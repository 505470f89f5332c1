"""Sessions from Python: a handle on one isolated twin inside a running server, with the
`poeti` fixture's surface (`url`, `base_url`, `key`, `stub`, `use`, `reset`, `journal`,
`attempts`, `assert_retried`, `close`).

    with MockServer() as server, server.session(seed=1) as session:     # in this process
        OpenAI(base_url=session.base_url, api_key=session.key)

    with RemoteSession("http://127.0.0.1:8080", seed=1) as session:    # a `mockpoeti serve`
        ...                                                            # anywhere, over HTTP

`Session` reaches the session's state on the server's loop, like `MockServer` itself
(`twin.Twin`); `RemoteSession` drives the session's admin API over HTTP (stdlib only),
so every process of a test run (xdist workers, a CI job's steps) can share one server.
"""

from __future__ import annotations

import contextlib
import json
import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from mockpoeti.base.settings import parse_time
from mockpoeti.twin import JournalChecks, Twin

if TYPE_CHECKING:
    from mockpoeti.books import sessions as registry
    from mockpoeti.books.state import State

T = TypeVar("T")
REMOTE_TIMEOUT_S = 30.0


class Session(Twin):
    """One session of an in-process `MockServer` (made by `server.session(...)`)."""

    def __init__(
        self,
        session: registry.Session,
        live: registry.Sessions,
        *,
        server_url: str,
        on_loop: Callable[[Callable[[], Any]], Any],
    ) -> None:
        self.id = session.id
        self.key = session.api_key
        self._url = server_url + session.prefix
        self._session, self._live, self._on_loop = session, live, on_loop

    @property
    def url(self) -> str:
        """Its root URL: `http://HOST:PORT/sessions/{id}`."""
        return self._url

    @property
    def api_key(self) -> str:
        return self.key

    @property
    def state(self) -> State:
        return self._session.state

    @property
    def closed(self) -> bool:
        return self._session.ended

    def call(self, fn: Callable[[], T]) -> T:
        """Run fn on the server's loop, if the session still lives (its idle time starts over)."""

        def live() -> T:
            if self._live.find(self.id) is not self._session:
                raise RuntimeError(
                    f"session {self.id} has ended (closed, deleted, or unused for {self._live.ttl_s:g} s)"
                )
            return fn()

        return self._on_loop(live)

    def close(self) -> None:
        """End the session: its paths answer 404 and its memory is freed. Safe to call twice."""

        def end() -> None:
            if not self._session.ended:
                self._live.end(self.id)

        self._on_loop(end)

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Session {self.url}>"


class RemoteSession(JournalChecks):
    """A new session of the server at `server_url` (a `mockpoeti serve` anywhere), driven
    over HTTP. Options as `POST /__admin/sessions` takes them; `admin_token` when the
    server runs with `--admin-token`. Raises ValueError for options the server refuses,
    RuntimeError when it cannot make one (`session_limit_exceeded`, say)."""

    def __init__(
        self,
        server_url: str,
        *,
        seed: int | None = None,
        clock: str | float | datetime | None = None,
        scenarios: str | dict | list | tuple | None = None,
        api_key: str | None = None,
        admin_token: str | None = None,
        timeout: float = REMOTE_TIMEOUT_S,
    ) -> None:
        self.server_url = server_url.rstrip("/")
        self._admin_token, self._timeout = admin_token, timeout
        options: dict[str, Any] = {}
        if seed is not None:
            options["seed"] = seed
        if clock is not None:
            options["clock"] = parse_time(clock)
        if scenarios is not None:
            options["scenario"] = [scenarios] if isinstance(scenarios, (str, dict)) else list(scenarios)
        if api_key is not None:
            options["api_key"] = api_key
        made = self._send("POST", self.server_url + "/__admin/sessions", options)
        self.id: str = made["id"]
        self.url: str = made["root_url"]
        self.base_url: str = made["base_url"]
        self.key: str = made["api_key"]
        self.seed: int = made["seed"]
        self.closed = False

    @property
    def api_key(self) -> str:
        return self.key

    # --- what it saw ------------------------------------------------------------

    @property
    def requests(self) -> list[dict]:
        """The session's request journal, newest last (every page of it)."""
        page = self._admin("GET", "/__admin/requests")
        entries = page["requests"]
        while page["meta"].get("next_since") is not None:
            page = self._admin("GET", f"/__admin/requests?since={page['meta']['next_since']}")
            entries += page["requests"]
        return entries

    @property
    def last_request(self) -> dict | None:
        entries = self.requests
        return entries[-1] if entries else None

    # --- what it answers --------------------------------------------------------------

    def stub(self, respond: str | dict | list, *, times: int | None = None, **match: Any) -> RemoteStub:
        """As `MockServer.stub`, through `POST /__admin/stubs`."""
        spec: dict[str, Any] = {"match": match, "respond": respond}
        if times is not None:
            spec["times"] = times
        return RemoteStub(self, self._admin("POST", "/__admin/stubs", spec))

    @property
    def stubs(self) -> list[dict]:
        return self._admin("GET", "/__admin/stubs")["stubs"]

    def use(self, *scenarios: str | dict) -> None:
        """Switch the active scenarios: names (shipped, or files in a folder the server was
        started with), or one inline scenario dict."""
        if all(isinstance(item, str) for item in scenarios):
            self._admin("PUT", "/__admin/scenarios/active", {"names": list(scenarios)})
        elif len(scenarios) == 1 and isinstance(scenarios[0], dict):
            self._admin("PUT", "/__admin/scenarios/active", scenarios[0])
        else:
            raise ValueError("over HTTP, use() takes scenario names, or one inline scenario dict")

    def reset(self, *, scenarios: list[str] | tuple[str, ...] | None = None, clock: Any = None) -> None:
        """Fresh state as the session was made (its seed, scenarios and clock); then
        `scenarios` and a clock frozen at `clock`, if given."""
        self._admin("POST", "/__admin/reset")
        if scenarios is not None:
            self.use(*scenarios)
        if clock is not None:
            self._admin("PUT", "/__admin/clock", {"time": parse_time(clock)})

    def close(self) -> None:
        """End the session (`DELETE /__admin/sessions/{id}`); safe to call twice."""
        if not self.closed:
            with contextlib.suppress(LookupError):  # ended already (expired, or deleted by someone else)
                self._send("DELETE", f"{self.server_url}/__admin/sessions/{self.id}")
            self.closed = True

    def __enter__(self) -> RemoteSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<RemoteSession {self.url}>"

    # --- HTTP ----------------------------------------------------------------------------

    def _admin(self, method: str, path: str, body: Any = None) -> Any:
        return self._send(method, self.url + path, body)

    def _send(self, method: str, url: str, body: Any = None) -> Any:
        """One admin call; its JSON answer. A 404 is LookupError, a 400 ValueError, any
        other error RuntimeError, each with the server's message."""
        headers = {"Content-Type": "application/json"}
        if self._admin_token is not None:
            headers["X-Admin-Token"] = self._admin_token
        data = None if body is None else json.dumps(body).encode("utf-8")
        request = urllib.request.Request(url, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=self._timeout) as answer:
                return json.loads(answer.read() or b"null")
        except urllib.error.HTTPError as e:
            try:
                error = json.loads(e.read())["error"]
                message = f"{method} {url}: {e.code} {error['code']}: {error['message']}"
            except (ValueError, KeyError, TypeError):
                message = f"{method} {url}: {e.code}"
            kind = {404: LookupError, 400: ValueError}.get(e.code, RuntimeError)
            raise kind(message) from None


class RemoteStub:
    """What `RemoteSession.stub` hands back: `id`, `label`, `calls`, `requests`, `remove()`."""

    def __init__(self, session: RemoteSession, made: dict) -> None:
        self._session = session
        self.id: int = made["id"]
        self.label: str = made["label"]

    @property
    def calls(self) -> int:
        """How many requests it answered (0 once it is gone)."""
        try:
            return self._session._admin("GET", f"/__admin/stubs/{self.id}")["calls"]
        except LookupError:
            return 0

    @property
    def requests(self) -> list[dict]:
        """The journal entries of the requests it answered, oldest first."""
        return [entry for entry in self._session.requests if entry.get("rule") == self.label]

    def remove(self) -> None:
        with contextlib.suppress(LookupError):  # gone already
            self._session._admin("DELETE", f"/__admin/stubs/{self.id}")

    def __repr__(self) -> str:
        return f"<remote stub {self.label}>"
