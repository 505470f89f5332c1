"""Sessions: isolated twins of the server inside one process, answered under `/sessions/{id}/...`.

A session is a `State` of its own (keys, books, journal, stubs, scenarios, clock,
seed) made from what never changes while the server runs: the catalog, the
settings and the loaded scenarios. Making one costs what a reset costs. A
session ends when asked, or once it has gone `session_ttl_s` unused (checked
when it is looked up, and for all of them when one is made or they are listed:
no timer to stop); `max_sessions` bounds how many live at once.

Pure (no aiohttp): the pipeline picks a request's state here, the admin routes
and `MockServer.session()` make and end sessions here.
"""

from __future__ import annotations

import math
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Final

from mockpoeti.base.errors import ApiError, invalid
from mockpoeti.base.settings import MAX_KEY_LENGTH, check_setting
from mockpoeti.books.state import State
from mockpoeti.scripting.scenario import Scenario

SESSION_PATH: Final = "/sessions/"  # a request whose path starts so is a session's
NO_SESSION: Final = "No such session: it was ended, it expired unused, or it never existed."
SESSION_MAX_TRACES: Final = 10_000  # a session keeps at most this many traces (fewer if the server keeps fewer)
MAX_SEED: Final = 2**63 - 1
ID_BYTES: Final = 6  # 12 hex digits


@dataclass(slots=True, eq=False)
class Session:
    id: str
    state: State
    api_key: str  # the key the session was made with: its own, unless the caller chose one
    created_at: float  # Unix seconds, the server's wall clock (the session's own clock may be set)
    used_at: float  # monotonic seconds: the idle expiry counts from here
    prefix: str = ""  # what its paths start with: `/sessions/{id}`
    ended: bool = False

    def __post_init__(self) -> None:
        self.prefix = SESSION_PATH + self.id


class Sessions:
    """The live sessions of one server, least recently used first."""

    def __init__(self, root: State, monotonic: Callable[[], float] = time.monotonic) -> None:
        settings = root.settings
        self.root = root
        self.limit = settings.max_sessions
        self.ttl_s = settings.session_ttl_s
        self._monotonic = monotonic
        self._live: OrderedDict[str, Session] = OrderedDict()

    def create(
        self,
        *,
        seed: object = None,
        clock: float | None = None,
        scenarios: list[Scenario] | None = None,
        api_key: object = None,
    ) -> Session:
        """A new session: a fresh twin of the server as it started (its scenarios, unless
        `scenarios` says otherwise), with `seed` and `clock` if given, and its own key
        (`api_key`, or one made from its id). `session_limit_exceeded` when full. `seed` and
        `api_key` may be anything a client sent: they are checked here, a 400 naming the field."""
        chosen_seed, chosen_key = check_seed(seed), check_api_key(api_key)
        now = self._monotonic()
        self.expire(now)
        if len(self._live) >= self.limit:
            raise self._full(now)
        session_id = secrets.token_hex(ID_BYTES)
        while session_id in self._live:
            session_id = secrets.token_hex(ID_BYTES)
        key = chosen_key if chosen_key is not None else f"sk-poeti-{session_id}-session"
        root = self.root.settings
        settings = replace(
            root,
            seed=root.seed if chosen_seed is None else chosen_seed,
            clock=root.clock if clock is None else clock,
            api_keys=(key,),  # the fixtures' keys too (State adds them): they name accounts, the path names the session
            max_traces=min(root.max_traces, SESSION_MAX_TRACES),
        )
        playbook = self.root.initial_scenarios if scenarios is None else scenarios
        state = State(self.root.catalog, settings, playbook, key_tag=session_id + "-", key_name="session")
        session = self._live[session_id] = Session(session_id, state, key, time.time(), now)
        return session

    def route(self, path: str) -> tuple[Session, str] | None:
        """The live session a path under /sessions/ names, and the path inside it; or None."""
        session_id, slash, rest = path[len(SESSION_PATH):].partition("/")
        session = self.find(session_id)
        return None if session is None else (session, slash + rest)

    def find(self, session_id: str) -> Session | None:
        """The live session of that id (its idle time starts over), or None."""
        session = self._live.get(session_id)
        if session is None:
            return None
        now = self._monotonic()
        if now - session.used_at > self.ttl_s:
            self._end(session)
            return None
        session.used_at = now
        self._live.move_to_end(session_id)
        return session

    def end(self, session_id: str) -> Session | None:
        """End a session now: its paths answer 404, its memory is freed. None if there was none."""
        session = self._live.get(session_id)
        if session is not None:
            self._end(session)
        return session

    def end_all(self, keep: frozenset[str] = frozenset()) -> int:
        """End every session (but those whose ids are in `keep`); how many ended."""
        ending = [s for s in self._live.values() if s.id not in keep]
        for session in ending:
            self._end(session)
        return len(ending)

    def expire(self, now: float | None = None) -> int:
        """End the sessions unused for longer than the time to live; how many ended."""
        now = self._monotonic() if now is None else now
        ended = 0
        while self._live:
            oldest = next(iter(self._live.values()))
            if now - oldest.used_at <= self.ttl_s:
                break
            self._end(oldest)
            ended += 1
        return ended

    def idle_s(self, session: Session) -> float:
        return self._monotonic() - session.used_at

    def __iter__(self) -> Iterator[Session]:
        """The live sessions, oldest first."""
        self.expire()
        return iter(sorted(self._live.values(), key=lambda s: s.created_at))

    def __len__(self) -> int:
        return len(self._live)

    def _end(self, session: Session) -> None:
        session.ended = True
        del self._live[session.id]
        session.state.close_listeners()  # a page open on it stops waiting for what will never come

    def _full(self, now: float) -> ApiError:
        oldest = next(iter(self._live.values()), None)
        wait = 1 if oldest is None else max(1, math.ceil(self.ttl_s - (now - oldest.used_at)))
        return ApiError(
            "session_limit_exceeded",
            f"This server has {self.limit} sessions, the most it may have (--max-sessions): end one with "
            f"DELETE /__admin/sessions/{{id}}, or wait until one has gone {self.ttl_s:g} s unused (--session-ttl).",
            headers={"Retry-After": str(wait)},
        )


def check_seed(seed: object) -> int | None:
    if seed is None or (isinstance(seed, int) and not isinstance(seed, bool) and 0 <= seed <= MAX_SEED):
        return seed
    raise invalid("seed", f"an integer from 0 to {MAX_SEED}")


def check_api_key(key: object) -> str | None:
    """A session's key obeys the rule of a key given at start (`Settings.api_keys`)."""
    if key is None:
        return None
    if isinstance(key, str):
        try:
            check_setting("api_keys", (key,))
            return key
        except ValueError:
            pass
    raise invalid("api_key", f"1 to {MAX_KEY_LENGTH} printable ASCII characters without spaces")
