"""One object holds everything a server remembers: keys, traces, running sums,
the request journal, the clock and the id generator.

Pure (no aiohttp). A server has exactly one `State`; ten servers in one process
share nothing. Aggregates are running sums updated as each trace is recorded,
so usage and stats stay exact and O(days) after old traces are evicted.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable, Iterator
from typing import Final

from mockpoeti.answers.generate import TextGenerator
from mockpoeti.base.catalog import Catalog
from mockpoeti.base.clock import Clock, day_of
from mockpoeti.base.errors import ApiError
from mockpoeti.base.settings import Settings
from mockpoeti.books.feed import CLEARED, MAX_LISTENERS, Listener
from mockpoeti.books.journal import JournalEntry
from mockpoeti.books.ledger import KEY_ALPHABET, ApiKey, Sums, Trace, digest
from mockpoeti.books.meters import Meters
from mockpoeti.scripting.matching import Playbook
from mockpoeti.scripting.scenario import Scenario

# Running sums: account -> day -> (key id, model) -> Sums
Aggregates = dict[str, dict[str, dict[tuple[int, str | None], Sums]]]

MAX_REMEMBERED_AUTHORIZATIONS: Final = 1024  # Authorization values a state remembers the key of
_NO_LIMITS: Final[dict[str, str]] = {}  # the rate-limit headers of a key without limits: none (never changed)


class State:
    def __init__(
        self,
        catalog: Catalog,
        settings: Settings,
        scenarios: list[Scenario] | None = None,
        *,
        key_tag: str = "",
        key_name: str = "--api-key",
    ):
        self.catalog = catalog
        self.settings = settings
        self.key_tag = key_tag  # in every key this state creates: a session's keys are its own, whatever its seed
        self.key_name = key_name  # the name listings give the keys of `settings.api_keys`
        self.initial_scenarios = list(scenarios or ())
        self.clock = Clock(settings.clock)
        self.text = TextGenerator(catalog.sentences)
        self.listeners: set[Listener] = set()  # live feeds of the journal (the request-log page); a reset keeps them
        self.reset()

    def reset(self, seed: int | None = None, scenarios: list[Scenario] | None = None, clock: float | None = None) -> None:
        """Back to the state of a fresh server: fixtures' keys, no traffic, the same seed
        (or `seed`), the start's scenarios (or `scenarios`) with their counters rewound,
        the start's clock (or one frozen at `clock`)."""
        if seed is None:
            seed = self.settings.seed if self.settings.seed is not None else random.SystemRandom().getrandbits(63)
        self.seed = seed
        self.rng = random.Random(self.seed)
        self.clock.reset(clock)
        self.keys: dict[bytes, ApiKey] = {}
        self.keys_by_authorization: dict[str, ApiKey] = {}  # header values already found (`found_key`)
        self.keys_by_id: dict[int, ApiKey] = {}
        self.keys_by_account: dict[str, list[ApiKey]] = {}
        self.traces: deque[Trace] = deque()
        self.stored: dict[str, int] = {}  # account -> traces it has in `traces`
        self.traces_by_id: dict[str, Trace] = {}
        self.aggregates: Aggregates = {}
        self.journal: deque[JournalEntry] = deque(maxlen=self.settings.max_journal)
        self.journal_count = 0
        self.meters = Meters()  # what GET /metrics reports, counted as requests finish
        self.server_errors: list[str] = []
        self._next_key_id = 1
        self.playbook = Playbook(self.initial_scenarios if scenarios is None else scenarios, self.seed)
        accounts = self.catalog.accounts
        for account in accounts:
            for k in account.keys:
                self._add_key(account.id, k.name, k.key, k.monthly_budget, k.rate_limit, k.is_active)
        if accounts:
            for secret in self.settings.api_keys:
                if digest(secret) not in self.keys:
                    self._add_key(accounts[0].id, self.key_name, secret, None, None, True)
        if self.settings.history and self.catalog.history:
            from mockpoeti.books.history import generate_history

            keys, routing = list(self.keys.values()), self.settings.routing_strategy
            for trace in generate_history(self.catalog, keys, self.clock.now(), routing):
                self.record(trace)
        if self.listeners:
            self._tell(CLEARED)

    def activate(self, scenarios: list[Scenario]) -> None:
        """Switch the active scenarios; their counters start over. Stubs stay."""
        self.playbook = Playbook(scenarios, self.seed, self.playbook.stubs)

    # --- ids ---------------------------------------------------------------

    def new_id(self, prefix: str) -> str:
        """`prefix` and 16 hex digits: format(n, "016x")'s, in half its time (two ids a chat call)."""
        return prefix + self.rng.getrandbits(64).to_bytes(8, "big").hex()

    def new_trace_id(self) -> str:
        return self.new_id("trace-poeti-")

    # --- keys --------------------------------------------------------------

    @property
    def default_key(self) -> str:
        """The first active key of the default account: what MockServer.api_key hands out."""
        default = self.catalog.accounts[0].id if self.catalog.accounts else None
        for key in self.keys_by_id.values():
            if key.account == default and key.is_active:
                return key.secret
        raise LookupError("the default account has no active key")

    def find_key(self, secret: str) -> ApiKey | None:
        return self.keys.get(digest(secret))

    def found_key(self, authorization: str, key: ApiKey) -> None:
        """Remember that this `Authorization` value names `key`: the next call that sends it is
        neither parsed nor hashed again. Forgotten all at once past MAX_REMEMBERED_AUTHORIZATIONS
        (a client may spell one key many ways). Keys are never removed but by a reset, which
        starts this over; a revoked key is the same object, refused by its own flag."""
        remembered = self.keys_by_authorization
        if len(remembered) >= MAX_REMEMBERED_AUTHORIZATIONS:
            remembered.clear()
        remembered[authorization] = key

    def create_key(self, account: str, name: str, monthly_budget: float | None, rate_limit: int | None) -> ApiKey:
        limit = self.settings.max_keys_per_account
        if len(self.keys_by_account.get(account, ())) >= limit:
            raise ApiError(
                "key_limit_exceeded",
                f"This account has {limit} API keys (revoked ones included), the most it may have.",
            )
        secret = "sk-poeti-" + self.key_tag + "".join(self.rng.choice(KEY_ALPHABET) for _ in range(32))
        return self._add_key(account, name, secret, monthly_budget, rate_limit, True)

    def _add_key(self, account, name, secret, monthly_budget, rate_limit, is_active) -> ApiKey:
        key = ApiKey(self._next_key_id, account, name, secret, self.clock.now(), monthly_budget, rate_limit, is_active)
        self._next_key_id += 1
        self.keys[digest(secret)] = key
        self.keys_by_id[key.id] = key
        self.keys_by_account.setdefault(account, []).append(key)
        return key

    def account_key(self, account: str, key_id: int) -> ApiKey | None:
        """A key by id, only if it is the account's: a foreign id looks exactly like a missing one."""
        key = self.keys_by_id.get(key_id)
        return key if key is not None and key.account == account else None

    def account_keys(self, account: str) -> list[ApiKey]:
        return self.keys_by_account.get(account, [])

    def admit(self, key: ApiKey) -> dict[str, str]:
        if key.monthly_budget is None and key.rate_limit is None:  # most keys: nothing to count against
            return _NO_LIMITS
        now = self.clock.now()
        return key.admit(self.clock.monotonic(), day_of(now)[:7])

    # --- traces --------------------------------------------------------------

    def record(self, trace: Trace) -> None:
        """Store a trace and fold it into the key's counters and the running sums."""
        if len(self.traces) >= self.settings.max_traces:
            evicted = self.traces.popleft()
            self.stored[evicted.account] -= 1
            self.traces_by_id.pop(evicted.trace_id, None)
        self.traces.append(trace)
        account, stored = trace.account, self.stored
        stored[account] = stored.get(account, 0) + 1
        self.traces_by_id[trace.trace_id] = trace
        day, cost = day_of(trace.created_at), trace.cost_nanos
        key = self.keys_by_id.get(trace.key_id)
        if key is not None:
            key.total_requests += 1
            key.total_cost_nanos += cost
            spent, month = key.spent_nanos, day[:7]
            spent[month] = spent.get(month, 0) + cost
        # Calls naming no model of the catalog count under None: a row per invented
        # name would let garbage requests grow the sums without bound.
        cell_of = (trace.key_id, trace.model if trace.model in self.catalog.models else None)
        days = self.aggregates.get(account)
        if days is None:
            days = self.aggregates[account] = {}
        cells = days.get(day)
        if cells is None:
            cells = days[day] = {}
        cell = cells.get(cell_of)
        if cell is None:
            cell = cells[cell_of] = Sums()
        cell.add_trace(trace)

    def totals(self) -> Sums:
        """The books' sums over every account and day (seeded history included)."""
        total = Sums()
        for days in self.aggregates.values():
            for cells in days.values():
                for sums in cells.values():
                    total.add(sums)
        return total

    def find_trace(self, account: str, trace_id: str) -> Trace | None:
        trace = self.traces_by_id.get(trace_id)
        return trace if trace is not None and trace.account == account else None

    def account_traces(self, account: str, keep: Callable[[Trace], bool]) -> Iterator[Trace]:
        """The account's stored traces that `keep` accepts, newest first."""
        return (t for t in reversed(self.traces) if t.account == account and keep(t))

    def sums_by_model(
        self,
        account: str,
        day_from: str | None,
        day_to: str | None,
        keep: Callable[[int, str | None], bool] = lambda key_id, model: True,
    ) -> dict[str | None, Sums]:
        """Running sums per model over a date range (inclusive), from the aggregates only."""
        by_model: dict[str | None, Sums] = {}
        for day, cells in self.aggregates.get(account, {}).items():
            if (day_from and day < day_from) or (day_to and day > day_to):
                continue
            for (key_id, model), sums in cells.items():
                if keep(key_id, model):
                    by_model.setdefault(model, Sums()).add(sums)
        return by_model

    # --- journal -----------------------------------------------------------

    def log_request(self, entry: JournalEntry) -> None:
        self.journal_count += 1
        entry.id = self.journal_count
        self.journal.append(entry)
        if self.listeners:  # the hot path's only cost of the live page, when none is open
            self._tell(entry)

    def clear_journal(self) -> None:
        self.journal.clear()
        if self.listeners:
            self._tell(CLEARED)

    def journal_entries(self) -> list[dict]:
        return [entry.to_json() for entry in self.journal]

    # --- live feeds of the journal -------------------------------------------------

    def listen(self) -> Listener:
        """A new live feed of the journal; `service_unavailable` when `MAX_LISTENERS` are open."""
        if len(self.listeners) >= MAX_LISTENERS:
            raise ApiError(
                "service_unavailable",
                f"{MAX_LISTENERS} live feeds of this journal are open, the most it serves at once; close a page.",
                headers={"Retry-After": "5"},
            )
        listener = Listener()
        self.listeners.add(listener)
        return listener

    def unlisten(self, listener: Listener) -> None:
        self.listeners.discard(listener)

    def close_listeners(self) -> None:
        """End every live feed (the server is stopping, or this session ended)."""
        for listener in self.listeners:
            listener.close()
        self.listeners.clear()

    def _tell(self, item: object) -> None:
        for listener in tuple(self.listeners):
            if not listener.push(item):
                self.listeners.discard(listener)
