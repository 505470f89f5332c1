"""Which stub or scenario rule answers a request, and which came closest when none did.

Pure. `Playbook` holds the active scenarios, the stubs, and everything that
changes as they play: how often each rule answered (for `times` and
sequences) and the seeded chaos generators. It hangs off the server's State,
so `reset` rewinds it (and drops the stubs).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass, replace
from functools import partial
from typing import Any, Final

from mockpoeti.answers.generate import derive_seed
from mockpoeti.answers.script import Respond
from mockpoeti.base.errors import ConfigError
from mockpoeti.base.regexes import glob_holds, is_glob, search
from mockpoeti.scripting.rule_index import (
    Each,
    Family,
    Globs,
    Masks,
    Messages,
    RuleIndex,
    Subsets,
    Values,
    attributes,
    fewest,
    is_flat,
)
from mockpoeti.scripting.scenario import Match, Rule, Scenario
from mockpoeti.scripting.view import RequestView


@dataclass(frozen=True, slots=True)
class Decision:
    label: str
    respond: Respond
    seed: int


# How a miss is told, from what a condition says (`said`) and what it quotes of the request:
TEXT: Final = 0  # said + the value, as str() shows it
REPR: Final = 1  # said + the value's repr
FIXED: Final = 2  # said alone
WHOLE: Final = 3  # the quote is the whole sentence


def tell(said: str, style: int, quoted: Any) -> str:
    if style == TEXT:
        return f"{said}{quoted}"
    if style == REPR:
        return said + repr(quoted)
    return said if style == FIXED else quoted


class Condition:
    """One thing a `match` asks of a request: whether it holds, and, when it does not,
    what differed (respx's patterns: each knows how to match and how to describe a miss).
    A miss is told in two parts: what the condition says (`said`, `style`: its own, fixed)
    and what it quotes of the request (`quote`), so that a journal entry can keep the two
    as plain data and put them together when it is read."""

    __slots__ = ()
    said = ""
    style = FIXED

    def holds(self, view: RequestView) -> bool:
        raise NotImplementedError

    def quote(self, view: RequestView) -> Any:
        return None

    def explain(self, view: RequestView) -> str:
        return tell(self.said, self.style, self.quote(view))

    @property
    def quotes(self) -> Hashable:
        """What `quote` reads, for `Quoter` to read it for many conditions at once: ("attr", a
        view attribute), ("long", one that may be long: path, model), ("message",) (its first 80
        characters), ("header", name); None for nothing; the condition itself for the rest."""
        return None if self.style == FIXED else self

    def sieve(self) -> tuple[Hashable, Callable[[], Family], Any]:
        """How a RuleIndex holds it: its family's name, a maker of that family, and what it wants
        (by default asked one by one, with `holds`)."""
        return "each", Each, self


class Equals(Condition):
    """endpoint, method, stream, last_role: the request's value, exactly."""

    __slots__ = ("field", "said", "wanted")
    style = TEXT

    def __init__(self, field: str, wanted: object) -> None:
        self.field, self.wanted = field, wanted
        self.said = f"{field}: wanted {wanted}, got "

    def holds(self, view: RequestView) -> bool:
        return getattr(view, self.field) == self.wanted

    def quote(self, view: RequestView) -> Any:
        return getattr(view, self.field)

    @property
    def quotes(self) -> Hashable:
        return ("long" if self.field == "last_role" else "attr"), self.field  # a role is the client's text

    def sieve(self) -> tuple[Hashable, Callable[[], Family], Any]:
        return ("=", self.field), partial(Values, self.field), self.wanted


class Glob(Condition):
    """path, model: a glob over the request's value (a plain string is compared as it is:
    a scenario of thousands of rules naming models is matched and scored twice as fast)."""

    __slots__ = ("field", "literal", "pattern", "said")
    style = TEXT

    def __init__(self, field: str, pattern: str) -> None:
        self.field, self.pattern = field, pattern
        self.literal = not is_glob(pattern)
        self.said = f"{field}: wanted {pattern}, got "

    def holds(self, view: RequestView) -> bool:
        if self.literal:
            return (getattr(view, self.field) or "") == self.pattern
        return glob_holds(getattr(view, self.field) or "", self.pattern)

    def quote(self, view: RequestView) -> Any:
        return getattr(view, self.field)

    @property
    def quotes(self) -> Hashable:
        return "long", self.field

    def sieve(self) -> tuple[Hashable, Callable[[], Family], Any]:
        return ("glob", self.field), partial(Globs, self.field, none_is_empty=True), self.pattern


class Key(Glob):
    """The API key, by glob; a miss never shows the key."""

    __slots__ = ()
    style = FIXED

    def __init__(self, field: str, pattern: str) -> None:
        super().__init__(field, pattern)
        self.said = "key: a different API key"

    def quote(self, view: RequestView) -> Any:
        return None

    @property
    def quotes(self) -> Hashable:
        return None


class Message(Condition):
    """The last user message: a substring, or a regex (RE2's, from `base.regexes`: linear in the
    message). A regex's verdict is kept on the view: matching and near misses search once."""

    __slots__ = ("said", "wanted")
    style = REPR

    def __init__(self, wanted: Any) -> None:
        self.wanted = wanted
        shown = wanted if isinstance(wanted, str) else f"/{wanted.pattern}/"
        self.said = f"message: wanted {shown!r}, got "

    def holds(self, view: RequestView) -> bool:
        wanted = self.wanted
        if isinstance(wanted, str):
            return wanted in view.message
        verdicts = view.verdicts
        found = verdicts.get(wanted.pattern)
        if found is None:
            found = verdicts[wanted.pattern] = search(wanted, view.message)
        return found

    def quote(self, view: RequestView) -> Any:
        return view.message[:80]

    @property
    def quotes(self) -> Hashable:
        return ("message",)

    def sieve(self) -> tuple[Hashable, Callable[[], Family], Any]:
        return "message", Messages, self.wanted


def message_regexes(conditions: Iterator[Condition] | tuple[Condition, ...]) -> Iterator[Any]:
    """The compiled `message` regexes among some conditions."""
    for condition in conditions:
        if isinstance(condition, Message) and not isinstance(condition.wanted, str):
            yield condition.wanted


class Header(Condition):
    __slots__ = ("name", "pattern", "said")
    style = REPR

    def __init__(self, name: str, pattern: str) -> None:
        self.name, self.pattern = name, pattern
        self.said = f"headers.{name}: wanted {pattern!r}, got "

    def holds(self, view: RequestView) -> bool:
        value = view.headers.get(self.name)
        return value is not None and glob_holds(value, self.pattern)

    def quote(self, view: RequestView) -> Any:
        return view.headers.get(self.name)  # a live request's header: at most aiohttp's 8 KiB

    @property
    def quotes(self) -> Hashable:
        return "header", self.name

    def sieve(self) -> tuple[Hashable, Callable[[], Family], Any]:
        return ("header", self.name), partial(Globs, header=self.name), self.pattern


class Body(Condition):
    """A JSON subset of the body."""

    __slots__ = ("wanted",)

    def __init__(self, wanted: Any) -> None:
        self.wanted = wanted

    def holds(self, view: RequestView) -> bool:
        return contains(view.body, self.wanted)

    said = "body: does not contain the wanted subset"

    def sieve(self) -> tuple[Hashable, Callable[[], Family], Any]:
        return ("body", Subsets, self.wanted) if is_flat(self.wanted) else super().sieve()


class Tools(Condition):
    """`true`: some tools declared; `false`: none; a set of names: exactly those."""

    __slots__ = ("wanted",)

    def __init__(self, wanted: bool | frozenset[str]) -> None:
        self.wanted = wanted

    def holds(self, view: RequestView) -> bool:
        if isinstance(self.wanted, bool):
            return self.wanted == bool(view.tools)
        return self.wanted == frozenset(view.tools)

    style = WHOLE

    def quote(self, view: RequestView) -> Any:
        got = ", ".join(sorted({name or "(unnamed)" for name in view.tools})) or "none"
        return f"tools: wanted {self._shown()}, got {got}"

    def _shown(self) -> str:
        if isinstance(self.wanted, bool):
            return "at least one tool" if self.wanted else "no tools"
        return ", ".join(sorted(self.wanted))


class Turn(Condition):
    """The request carries exactly N user messages (turn 1 is the first question)."""

    __slots__ = ("wanted",)

    def __init__(self, wanted: int) -> None:
        self.wanted = wanted

    def holds(self, view: RequestView) -> bool:
        return view.turn == self.wanted

    style = WHOLE

    def quote(self, view: RequestView) -> Any:
        return f"turn: wanted {self.wanted}, got {view.turn} (user messages)"

    def sieve(self) -> tuple[Hashable, Callable[[], Family], Any]:
        return ("=", "turn"), partial(Values, "turn"), self.wanted


class AfterTool(Condition):
    """The last message is the result of a call to a function whose name matches a glob."""

    __slots__ = ("pattern",)

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern

    def holds(self, view: RequestView) -> bool:
        return view.after_tool is not None and glob_holds(view.after_tool, self.pattern)

    style = WHOLE

    def quote(self, view: RequestView) -> Any:
        if view.after_tool is None:
            got = f"the last message is {view.last_role or 'missing'}, not a tool result"
        else:
            got = f"a result of {view.after_tool or 'a call the conversation does not show'}"
        return f"after_tool: wanted a result of {self.pattern}, got {got}"

    def sieve(self) -> tuple[Hashable, Callable[[], Family], Any]:
        return "after_tool", partial(Globs, "after_tool"), self.pattern


def conditions_of(match: Match, endpoint: bool = True) -> tuple[Condition, ...]:
    """A match's conditions, in the order a miss lists them (without the endpoint's, for
    rules that are only ever tried for their endpoint)."""
    out: list[Condition] = []
    for field in ("endpoint", "method") if endpoint else ("method",):
        if getattr(match, field) is not None:
            out.append(Equals(field, getattr(match, field)))
    for field in ("path", "model"):
        if getattr(match, field) is not None:
            out.append(Glob(field, getattr(match, field)))
    if match.stream is not None:
        out.append(Equals("stream", match.stream))
    if match.message is not None:
        out.append(Message(match.message))
    out += [Header(name, pattern) for name, pattern in match.headers]
    if match.body is not None:
        out.append(Body(match.body))
    if match.key is not None:
        out.append(Key("key", match.key))
    if match.last_role is not None:
        out.append(Equals("last_role", match.last_role))
    if match.tools is not None:
        out.append(Tools(match.tools))
    if match.turn is not None:
        out.append(Turn(match.turn))
    if match.after_tool is not None:
        out.append(AfterTool(match.after_tool))
    return tuple(out)


def holds(conditions: tuple[Condition, ...], view: RequestView) -> bool:
    """All of them hold (stops at the first that does not: a request most rules miss costs little)."""
    for condition in conditions:  # noqa: SIM110 - a loop, not all(generator): this runs per rule per request
        if not condition.holds(view):
            return False
    return True


def differences(match: Match, view: RequestView) -> list[str]:
    """What keeps `match` from holding for `view`; empty when it holds."""
    return [c.explain(view) for c in conditions_of(match) if not c.holds(view)]


def contains(actual: Any, wanted: Any) -> bool:
    """JSON subset: every key of `wanted` is in `actual` with a containing value."""
    if isinstance(wanted, dict):
        return isinstance(actual, dict) and all(k in actual and contains(actual[k], v) for k, v in wanted.items())
    return actual == wanted


MAX_STUBS: Final = 1000  # of one server state (a session has its own): each is tried on every request


@dataclass(slots=True, eq=False)
class Stub:
    """One rule added at run time (`server.stub`, `POST /__admin/stubs`): WireMock's stub mapping."""

    rule: Rule  # its label, `stub#ID`, is what the journal names
    spec: dict  # the stub as given (plain JSON), for listings
    calls: int = 0
    conditions: tuple[Condition, ...] = ()

    @property
    def id(self) -> int:
        return self.rule.stub_id or 0

    @property
    def used_up(self) -> bool:
        return self.rule.times is not None and self.calls >= self.rule.times

    def to_json(self) -> dict:
        return {"id": self.id, "label": self.rule.label, **self.spec, "calls": self.calls}


class Stubs:
    """The stubs of one server state, with ids from 1. Tried newest first: the latest
    stub wins, so a test can override a broad stub that a fixture added."""

    def __init__(self) -> None:
        self._by_id: dict[int, Stub] = {}
        self._next_id = 1
        self.regex_size = 0  # RE2 instructions of the stubs' message regexes, together
        self.tried: Tried | None = None  # the stubs as they are tried, indexed; None when there are none
        self.stale = False  # a stub came or went since `tried` was made: `index()` makes it again

    def add(self, rule: Rule, spec: dict) -> Stub:
        if len(self._by_id) >= MAX_STUBS:
            raise ConfigError([f"there are {MAX_STUBS} stubs, the most a server (or session) holds (MAX_STUBS); "
                               "remove some first"])
        stub = Stub(replace(rule, stub_id=self._next_id), spec, conditions=conditions_of(rule.match))
        self._by_id[stub.id] = stub
        self._next_id += 1
        self.regex_size += _size(stub.conditions)
        self.stale = True
        return stub

    def get(self, stub_id: int) -> Stub | None:
        return self._by_id.get(stub_id)

    def remove(self, stub_id: int) -> Stub | None:
        stub = self._by_id.pop(stub_id, None)
        if stub is not None:
            self.regex_size -= _size(stub.conditions)
            self.stale = True
        return stub

    def clear(self) -> int:
        count = len(self._by_id)
        self._by_id.clear()
        self.regex_size = 0
        self.stale = True
        return count

    def newest_first(self) -> Iterator[Stub]:
        return reversed(self._by_id.values())

    def index(self) -> Tried | None:
        """`tried`, made again if a stub came or went since (on the first request after: adding
        many stubs one by one indexes them once)."""
        if self.stale:
            stubs = tuple(self.newest_first())
            self.tried = Tried([stub.rule for stub in stubs], [stub.conditions for stub in stubs],
                               sum(1 << i for i, stub in enumerate(stubs) if stub.used_up), stubs) if stubs else None
            self.stale = False
        return self.tried

    def __len__(self) -> int:
        return len(self._by_id)


MAX_DIFFERENCES: Final = 8  # of one near miss, each cut to MAX_DIFFERENCE_CHARS: a journal entry stays small
MAX_DIFFERENCE_CHARS: Final = 200


def _cut(text: str) -> str:
    return text if len(text) <= MAX_DIFFERENCE_CHARS else text[: MAX_DIFFERENCE_CHARS - 1] + "…"


# a near miss before it is told: the rule's label, its conditions that failed, and "times: used up ..." or ""
Missed = tuple[str, tuple[Condition, ...], str]
# the near misses of one request as a journal entry keeps them, plain data: for each rule (its label, what
# its failed conditions say: (said, style, which quote), its "times: used up" note or ""), and the quotes
NearMisses = tuple[tuple[tuple[str, tuple[tuple[str, int, int], ...], str], ...], tuple[Any, ...]]
MAX_PLANS: Final = 256  # sets of near misses a playbook keeps by what the request failed
Plan = tuple[Any, "Quoter"]  # NearMisses' first half, and what reads the second


class Quoter:
    """Reads what some near misses quote of a request, each thing once: the view's attributes
    in one call, the message's first 80 characters, the headers named, and what the rest
    quote. A long path, model or role is kept no longer than a miss can show: after a `said`,
    the first MAX_DIFFERENCE_CHARS characters (a miss is cut to that many once told)."""

    __slots__ = ("attrs", "headers", "longs", "message", "others", "place")

    def __init__(self, quotes: list[Hashable]) -> None:
        kinds: dict[str, list[Any]] = {"attr": [], "long": [], "message": [], "header": [], "other": []}
        for quote in dict.fromkeys(q for q in quotes if q is not None):
            kinds[quote[0] if isinstance(quote, tuple) else "other"].append(quote)
        order = [q for kind in kinds.values() for q in kind]
        self.place = {quote: at for at, quote in enumerate(order)}  # a quote -> where it is in `read`'s tuple
        self.attrs = attributes([q[1] for q in kinds["attr"]])
        self.longs = tuple(q[1] for q in kinds["long"])
        self.message = bool(kinds["message"])
        self.headers = tuple(q[1] for q in kinds["header"])
        self.others: tuple[Condition, ...] = tuple(kinds["other"])

    def read(self, view: RequestView) -> tuple:
        quotes: tuple = self.attrs(view) if self.attrs is not None else ()
        for field in self.longs:
            value = getattr(view, field)
            quotes += (value[:MAX_DIFFERENCE_CHARS] if type(value) is str and len(value) > MAX_DIFFERENCE_CHARS else value,)
        if self.message:
            quotes += (view.message[:80],)
        if self.headers:
            quotes += tuple(map(view.headers.get, self.headers))
        for condition in self.others:  # a whole sentence: cut as it will be
            quotes += (_cut(condition.quote(view)),)
        return quotes


def told(near: NearMisses) -> list[dict]:
    """Near misses as the journal shows them: [{"rule": label, "differences": [...]}, ...]."""
    plan, quotes = near
    out = []
    for label, parts, used_up in plan:
        diffs = []
        for said, style, at in parts:
            text = tell(said, style, quotes[at] if at >= 0 else None)
            diffs.append(text if len(text) <= MAX_DIFFERENCE_CHARS else _cut(text))
        if used_up:
            diffs.append(used_up)
        out.append({"rule": label, "differences": diffs})
    return out


def _size(conditions: tuple[Condition, ...]) -> int:
    return sum(regex.programsize for regex in message_regexes(conditions))


class Tried:
    """Rules in the order they are tried (the stubs, or the scenarios' rules), indexed: bit i
    is rules[i]; `spent` has the ones used up (`times`), a difference of their own in a near miss."""

    __slots__ = ("index", "rules", "spent", "stubs")

    def __init__(self, rules: list[Rule], conditions: list[tuple[Condition, ...]], spent: int,
                 stubs: tuple[Stub, ...] = ()) -> None:
        self.rules, self.spent, self.stubs = rules, spent, stubs
        self.index = RuleIndex(conditions)

    def match(self, view: RequestView) -> tuple[Masks, int]:
        """What the request fails (`RuleIndex.failing`), and the first live rule it matches (-1 for none)."""
        index = self.index
        misses, missed = index.failing(view)
        live = index.everyone & ~(missed | self.spent)
        return misses, (live & -live).bit_length() - 1  # the lowest bit: the first tried

    def used(self, i: int, uses: int) -> None:
        """Rule i answered, `uses` times now: used up when that is its `times`."""
        times = self.rules[i].times
        if times is not None and uses >= times:
            self.spent |= 1 << i

    def missed(self, i: int, misses: Masks) -> Missed:
        """What kept rule i from answering: its label, the conditions that failed (in the order
        listed, as many as a near miss shows), and being used up."""
        failed = tuple(condition for condition, at in self.index.places[i] if misses[at] >> i & 1)
        rule = self.rules[i]
        used_up = f"times: used up after {rule.times}" if self.spent >> i & 1 and len(failed) < MAX_DIFFERENCES else ""
        return _cut(rule.label), failed[:MAX_DIFFERENCES], used_up


class Playbook:
    def __init__(self, scenarios: list[Scenario], seed: int, stubs: Stubs | None = None):
        self.scenarios = list(scenarios)
        self.stubs = stubs if stubs is not None else Stubs()
        self.seed = seed
        self.scenario_rules: list[Rule] = [rule for s in self.scenarios for rule in s.rules]
        self.uses = [0] * len(self.scenario_rules)
        # each rule's conditions, in the order a miss lists them
        self._conditions = [conditions_of(rule.match) for rule in self.scenario_rules]
        self._tried: Tried | None = None  # indexed on the first request: a reset that no request follows is cheap
        self._plans: dict[tuple, Plan] = {}  # near misses by what a request failed (`noted`)
        self._plans_of: Tried | None = None  # ... against these stubs
        # a scenario's own seed, when it has one, makes its answers the same on any server
        self._seeds = [s.seed if s.seed is not None else seed for s in self.scenarios for _ in s.rules]
        self._chaos = [
            (
                s.name,
                s.chaos,
                conditions_of(s.chaos.match),
                random.Random(s.chaos.seed if s.chaos.seed is not None else s.seed if s.seed is not None else seed),
            )
            for s in self.scenarios
            if s.chaos is not None
        ]
        self._regexes = {
            regex.pattern: regex
            for conditions in (*self._conditions, *(c for _, _, c, _ in self._chaos))
            for regex in message_regexes(conditions)
        }
        self._regex_size = sum(regex.programsize for regex in self._regexes.values())

    @property
    def active(self) -> bool:
        # the stubs' own dict, not len(stubs): asked on every request
        return bool(self.scenario_rules or self.stubs._by_id or self._chaos)

    @property
    def has_rules(self) -> bool:
        """Some stub or scenario rule could answer (or come close)."""
        return bool(self.scenario_rules or self.stubs._by_id)

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.scenarios]

    def decide(self, view: RequestView) -> Decision | None:
        """The first live rule that matches answers (and is used up by one): stubs, newest
        first, then the scenarios' rules in order; else chaos may strike. Which rules the
        request fails is kept on the view, for its near misses."""
        stubs = self.stubs.index() if self.stubs.stale else self.stubs.tried
        stub_misses: Masks = ()
        if stubs is not None:
            stub_misses, i = stubs.match(view)
            if i >= 0:
                stub = stubs.stubs[i]
                n = stub.calls
                stub.calls = n + 1
                stubs.used(i, n + 1)
                respond = stub.rule.responses[min(n, len(stub.rule.responses) - 1)]
                return Decision(stub.rule.label, respond, derive_seed(self.seed, "stub", stub.id, n))
        rules = self._tried
        if rules is None and self.scenario_rules:
            rules = self._rules()
        rule_misses: Masks = ()
        if rules is not None:
            rule_misses, i = rules.match(view)
            if i >= 0:
                rule = self.scenario_rules[i]
                n = self.uses[i]
                self.uses[i] = n + 1
                rules.used(i, n + 1)
                respond = rule.responses[min(n, len(rule.responses) - 1)]
                return Decision(rule.label, respond, derive_seed(self._seeds[i], i, n))
        view.misses = (self, stubs, stub_misses, rule_misses)
        for name, chaos, conditions, rnd in self._chaos:
            if holds(conditions, view) and rnd.random() < chaos.rate:
                return Decision(f"{name}/chaos", rnd.choice(chaos.responses), rnd.getrandbits(32))
        return None

    def _rules(self) -> Tried | None:
        """The scenarios' rules, indexed on first use (None when there are none)."""
        tried = self._tried
        if tried is None and self.scenario_rules:
            tried = self._tried = Tried(self.scenario_rules, self._conditions, 0)
        return tried

    def regex_work(self, view: RequestView) -> int:
        """At worst, how much RE2 work (~5 ns a unit) matching this request's message could take."""
        size = self._regex_size + self.stubs.regex_size
        return size * len(view.message) if size else 0

    def message_regexes(self) -> dict[str, Any]:
        """Every distinct `message` regex the stubs, rules and chaos may search, by pattern."""
        out = dict(self._regexes)
        if self.stubs.regex_size:
            for stub in self.stubs.newest_first():
                out.update((regex.pattern, regex) for regex in message_regexes(stub.conditions))
        return out

    def near_misses(self, view: RequestView, limit: int = 3) -> list[dict]:
        """The rules (stubs included) that came closest, with what differed: for assertions
        (`noted` is what a journal entry keeps of them). Changes nothing."""
        return told(self.noted(view, limit))

    def noted(self, view: RequestView, limit: int = 3) -> NearMisses:
        """The near misses of a request, as plain data (`told` makes them the journal's dicts).
        A rule's misses are its conditions that fail (and being used up); the closest are the
        fewest misses, ties in the order rules are tried. What the request fails comes from the
        indexes, as `decide` found it when no stub came or went since. Which rules come closest
        and which of their conditions failed follows from that alone, and is kept by it: per
        request, only what those conditions quote of it is read."""
        stubs = self.stubs.index() if self.stubs.stale else self.stubs.tried
        rules = self._tried
        if rules is None and self.scenario_rules:
            rules = self._rules()
        found = view.misses
        if found is not None and found[0] is self and found[1] is stubs:
            stub_misses, rule_misses = found[2], found[3]
        else:
            stub_misses = stubs.index.failing(view)[0] if stubs is not None else ()
            rule_misses = rules.index.failing(view)[0] if rules is not None else ()
        if self._plans_of is not stubs:  # the stubs changed: what was kept named rules of the old ones
            self._plans.clear()
            self._plans_of = stubs
        key = (limit, stub_misses, stubs.spent if stubs is not None else 0, rule_misses,
               rules.spent if rules is not None else 0)
        plan = self._plans.get(key)
        if plan is None:
            if len(self._plans) >= MAX_PLANS:
                self._plans.clear()
            plan = self._plans[key] = self._closest(stubs, stub_misses, rules, rule_misses, limit)
        return plan[0], plan[1].read(view)

    @staticmethod
    def _closest(stubs: Tried | None, stub_misses: Masks, rules: Tried | None, rule_misses: Masks,
                 limit: int) -> Plan:
        closest: list[tuple[int, int, int]] = []  # (misses, 0 for a stub and 1 for a rule, its place)
        if stubs is not None:
            closest += [(n, 0, i) for n, i in fewest((*stub_misses, stubs.spent), stubs.index.everyone, limit)]
        if rules is not None:
            closest += [(n, 1, i) for n, i in fewest((*rule_misses, rules.spent), rules.index.everyone, limit)]
        missed = []
        for _, is_rule, i in sorted(closest)[:limit]:
            tried = rules if is_rule else stubs
            assert tried is not None
            missed.append(tried.missed(i, rule_misses if is_rule else stub_misses))
        quoter = Quoter([c.quotes for _, conditions, _ in missed for c in conditions])
        # a `said` past MAX_DIFFERENCE_CHARS shows only its start, whatever comes after: the journal keeps no more
        said = tuple((label, tuple((c.said[: MAX_DIFFERENCE_CHARS + 1], c.style, quoter.place.get(c.quotes, -1))
                                   for c in conditions), used_up)
                     for label, conditions, used_up in missed)
        return said, quoter

    def describe(self) -> list[dict]:
        """The active scenarios and their rules' counters (by position: two loaded copies of
        one scenario hold equal rules, but each copy counts its own)."""
        out, start = [], 0
        for s in self.scenarios:
            rules = [
                {"rule": r.label, "times": r.times, "used": self.uses[start + j], "responses": len(r.responses)}
                for j, r in enumerate(s.rules)
            ]
            start += len(s.rules)
            out.append({
                "name": s.name,
                "description": s.description,
                "source": s.source,
                "rules": rules,
                "chaos": None if s.chaos is None else {"rate": s.chaos.rate},
            })
        return out
