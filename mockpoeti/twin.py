"""What a test holds of a running mockpoeti, whether a whole server (`MockServer`) or one of
its sessions (`server.session()`): the journal, stubs, scenarios, reset and the verdicts
on retries, all against one `State` touched only on the server's loop.

`JournalChecks` are the verdicts made from the journal alone: a session driven over
HTTP (`sessions.RemoteSession`) has them too.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from mockpoeti.base.settings import check_setting, clock_setting

if TYPE_CHECKING:
    from mockpoeti.books.state import State
    from mockpoeti.stubs import StubHandle

T = TypeVar("T")


def _elsewhere(differences: list[str]) -> bool:
    return any(d.startswith(("endpoint:", "path:", "method:")) for d in differences)


class ServerError(AssertionError):
    """A failure inside the server, raised in the test that caused it."""


class JournalChecks:
    """Assertions on the request journal: `requests` is all they need."""

    @property
    def requests(self) -> list[dict]:
        raise NotImplementedError

    @property
    def journal(self) -> list[dict]:
        """The request journal, newest last (the same list as `requests`)."""
        return self.requests

    def assert_requested(self, count: int | None = None, **conditions: Any) -> list[dict]:
        """Assert the journal holds a request (or exactly `count`) matching `conditions`
        (the keys of a scenario `match`). On failure, says which came closest and how
        they differed. Returns the matching entries."""
        __tracebackhide__ = True
        from mockpoeti.scripting.loader import MATCH, build_match
        from mockpoeti.scripting.matching import differences
        from mockpoeti.scripting.schema import Site
        from mockpoeti.scripting.view import view_of

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


class Twin(JournalChecks):
    """A server's state as a test sees it. Subclasses say where the state is (`state`),
    how to run code on its loop (`call`) and where it answers (`url`)."""

    @property
    def url(self) -> str:
        raise NotImplementedError

    @property
    def state(self) -> State:
        raise NotImplementedError

    def call(self, fn: Callable[[], T]) -> T:
        raise NotImplementedError

    @property
    def base_url(self) -> str:
        return self.url + "/v1"

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

    def check_errors(self) -> None:
        """Raise if the server hit a bug of its own while serving (with its traceback)."""

        def take() -> list[str]:
            kept = self._kept_errors()
            taken = [error for errors in kept for error in errors]
            for errors in kept:
                errors.clear()
            return taken

        errors = self.call(take)
        if errors:
            raise ServerError("mockpoeti failed while serving a request:\n" + "\n".join(errors))

    def _kept_errors(self) -> list[list[str]]:
        """Where the server keeps its own failures for the test (called on its loop)."""
        return [self.state.server_errors]

    # --- stubs ----------------------------------------------------------------------

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
            try:
                stub = registry.add(rule, spec)
            except ConfigError as e:
                raise ValueError("; ".join(e.problems)) from None
            return StubHandle(
                stub, registry, on_loop=self.call, current=lambda: self.state.playbook.stubs, journal=lambda: self.requests
            )

        return self.call(add)

    @property
    def stubs(self) -> list[dict]:
        """The stubs, in the order they are tried (newest first), with their call counts."""
        return self.call(lambda: [stub.to_json() for stub in self.state.playbook.stubs.newest_first()])

    def _load(self, scenarios) -> list:
        """Scenarios from names and paths (files), and from inline dicts, in the order given."""
        from mockpoeti.scripting.loader import limit_rules, load_scenarios, parse_scenario

        codes = self.state.catalog.errors
        loaded = []
        files: dict[str, list] = {}  # a name given twice is read once
        for item in scenarios:
            if isinstance(item, dict):
                loaded.append(parse_scenario(item, f"<inline {item.get('name', 'scenario')}>", codes))
            else:
                if item not in files:
                    files[item] = load_scenarios([item], codes)
                loaded.extend(files[item])
        return limit_rules(loaded)

