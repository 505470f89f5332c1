"""Which stub or scenario rule answers a request, and which came closest when none did.

Pure. `Playbook` holds the active scenarios, the stubs, and everything that
changes as they play: how often each rule answered (for `times` and
sequences) and the seeded chaos generators. It hangs off the server's State,
so `reset` rewinds it (and drops the stubs).
"""

from __future__ import annotations

import bisect
import random
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Any, NamedTuple

from mockpoeti.answers.chat_request import message_text
from mockpoeti.answers.generate import derive_seed
from mockpoeti.answers.script import Respond
from mockpoeti.base.endpoints import ENDPOINTS
from mockpoeti.base.errors import ConfigError
from mockpoeti.base.regexes import glob_holds, is_glob, search
from mockpoeti.scripting.scenario import Match, Rule, Scenario


class RequestView(NamedTuple):
    """What matching may look at: plain data, no aiohttp. (A tuple: one is made for every
    request a scenario sees, and tuples are made several times faster than frozen dataclasses.)"""

    endpoint: str | None
    method: str
    path: str
    headers: Mapping[str, str]  # looked up by lower-case name
    body: Any = None
    key: str | None = None
    model: str | None = None
    stream: bool = False
    message: str = ""
    last_role: str | None = None
    tools: tuple[str, ...] = ()  # the declared tools' function names ("" for a tool without one)
    turn: int = 0  # how many user messages the request carries
    after_tool: str | None = None  # the function whose result is the last message ("" when no call names it)
    verdicts: dict[str, bool] | None = None  # message regex -> found in `message`: each is searched once per request


def view_of(
    endpoint: str | None, method: str, path: str, headers: Mapping[str, str], body: Any, key: str | None = None
) -> RequestView:
    """A RequestView from the parts of a request (live, or from the journal)."""
    model, stream, message, last_role, turn, after_tool = None, False, "", None, 0, None
    tools: tuple[str, ...] = ()
    if isinstance(body, dict):
        model = body.get("model") if isinstance(body.get("model"), str) else None
        stream = body.get("stream") is True
        raw = body.get("messages")
        messages = [m for m in raw if isinstance(m, dict)] if isinstance(raw, list) else []
        if messages:
            last_role = messages[-1].get("role") if isinstance(messages[-1].get("role"), str) else None
            message = next((message_text(m) for m in reversed(messages) if m.get("role") == "user"), "")
            turn = sum(1 for m in messages if m.get("role") == "user")
            if last_role in ("tool", "function"):
                after_tool = answered_tool(messages)
        declared = body.get("tools")
        if isinstance(declared, list) and declared:
            tools = tuple(_tool_name(t) for t in declared)
    return RequestView(
        endpoint=endpoint,
        method=method,
        path=path,
        # a case-insensitive mapping (the request's own multidict) is used as it is
        headers=headers if hasattr(headers, "getall") else {k.lower(): v for k, v in headers.items()},
        body=body,
        key=key,
        model=model,
        stream=stream,
        message=message,
        last_role=last_role,
        tools=tools,
        turn=turn,
        after_tool=after_tool,
        verdicts={},
    )


def answered_tool(messages: list[dict]) -> str:
    """The name of the function whose result the last message is: the assistant's call with
    the tool message's `tool_call_id` (a legacy `function` message names it itself); "" when
    no earlier call has that id."""
    last = messages[-1]
    if last.get("role") == "function":
        return last["name"] if isinstance(last.get("name"), str) else ""
    wanted = last.get("tool_call_id")
    for message in reversed(messages):
        calls = message.get("tool_calls") if message.get("role") == "assistant" else None
        for call in calls if isinstance(calls, list) else ():
            if isinstance(call, dict) and call.get("id") == wanted:
                function = call.get("function")
                name = function.get("name") if isinstance(function, dict) else None
                return name if isinstance(name, str) else ""
    return ""


def _tool_name(tool: Any) -> str:
    function = tool.get("function") if isinstance(tool, dict) else None
    name = function.get("name") if isinstance(function, dict) else None
    return name if isinstance(name, str) else ""


@dataclass(frozen=True, slots=True)
class Decision:
    label: str
    respond: Respond
    seed: int


class Condition:
    """One thing a `match` asks of a request: whether it holds, and, when it does not,
    what differed (respx's patterns: each knows how to match and how to describe a miss)."""

    __slots__ = ()

    def holds(self, view: RequestView) -> bool:
        raise NotImplementedError

    def explain(self, view: RequestView) -> str:
        raise NotImplementedError


class Equals(Condition):
    """endpoint, method, stream, last_role: the request's value, exactly."""

    __slots__ = ("field", "wanted")

    def __init__(self, field: str, wanted: object) -> None:
        self.field, self.wanted = field, wanted

    def holds(self, view: RequestView) -> bool:
        return getattr(view, self.field) == self.wanted

    def explain(self, view: RequestView) -> str:
        return f"{self.field}: wanted {self.wanted}, got {getattr(view, self.field)}"


class Glob(Condition):
    """path, model: a glob over the request's value (a plain string is compared as it is:
    a scenario of thousands of rules naming models is matched and scored twice as fast)."""

    __slots__ = ("field", "literal", "pattern")

    def __init__(self, field: str, pattern: str) -> None:
        self.field, self.pattern = field, pattern
        self.literal = not is_glob(pattern)

    def holds(self, view: RequestView) -> bool:
        if self.literal:
            return (getattr(view, self.field) or "") == self.pattern
        return glob_holds(getattr(view, self.field) or "", self.pattern)

    def explain(self, view: RequestView) -> str:
        return f"{self.field}: wanted {self.pattern}, got {getattr(view, self.field)}"


class Key(Glob):
    """The API key, by glob; a miss never shows the key."""

    __slots__ = ()

    def explain(self, view: RequestView) -> str:
        return "key: a different API key"


class Message(Condition):
    """The last user message: a substring, or a regex (RE2's, from `base.regexes`: linear in the
    message). A regex's verdict is kept on the view: matching and near misses search once."""

    __slots__ = ("wanted",)

    def __init__(self, wanted: Any) -> None:
        self.wanted = wanted

    def holds(self, view: RequestView) -> bool:
        wanted = self.wanted
        if isinstance(wanted, str):
            return wanted in view.message
        verdicts = view.verdicts
        if verdicts is None:
            return search(wanted, view.message)
        found = verdicts.get(wanted.pattern)
        if found is None:
            found = verdicts[wanted.pattern] = search(wanted, view.message)
        return found

    def explain(self, view: RequestView) -> str:
        shown = self.wanted if isinstance(self.wanted, str) else f"/{self.wanted.pattern}/"
        return f"message: wanted {shown!r}, got {view.message[:80]!r}"


def message_regexes(conditions: Iterator[Condition] | tuple[Condition, ...]) -> Iterator[Any]:
    """The compiled `message` regexes among some conditions."""
    for condition in conditions:
        if isinstance(condition, Message) and not isinstance(condition.wanted, str):
            yield condition.wanted


class Header(Condition):
    __slots__ = ("name", "pattern")

    def __init__(self, name: str, pattern: str) -> None:
        self.name, self.pattern = name, pattern

    def holds(self, view: RequestView) -> bool:
        value = view.headers.get(self.name)
        return value is not None and glob_holds(value, self.pattern)

    def explain(self, view: RequestView) -> str:
        return f"headers.{self.name}: wanted {self.pattern!r}, got {view.headers.get(self.name)!r}"


class Body(Condition):
    """A JSON subset of the body."""

    __slots__ = ("wanted",)

    def __init__(self, wanted: Any) -> None:
        self.wanted = wanted

    def holds(self, view: RequestView) -> bool:
        return contains(view.body, self.wanted)

    def explain(self, view: RequestView) -> str:
        return "body: does not contain the wanted subset"


class Tools(Condition):
    """`true`: some tools declared; `false`: none; a set of names: exactly those."""

    __slots__ = ("wanted",)

    def __init__(self, wanted: bool | frozenset[str]) -> None:
        self.wanted = wanted

    def holds(self, view: RequestView) -> bool:
        if isinstance(self.wanted, bool):
            return self.wanted == bool(view.tools)
        return self.wanted == frozenset(view.tools)

    def explain(self, view: RequestView) -> str:
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

    def explain(self, view: RequestView) -> str:
        return f"turn: wanted {self.wanted}, got {view.turn} (user messages)"


class AfterTool(Condition):
    """The last message is the result of a call to a function whose name matches a glob."""

    __slots__ = ("pattern",)

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern

    def holds(self, view: RequestView) -> bool:
        return view.after_tool is not None and glob_holds(view.after_tool, self.pattern)

    def explain(self, view: RequestView) -> str:
        if view.after_tool is None:
            got = f"the last message is {view.last_role or 'missing'}, not a tool result"
        else:
            got = f"a result of {view.after_tool or 'a call the conversation does not show'}"
        return f"after_tool: wanted a result of {self.pattern}, got {got}"


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


MAX_STUBS = 1000  # of one server state (a session has its own): each is tried on every request


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

    def add(self, rule: Rule, spec: dict) -> Stub:
        if len(self._by_id) >= MAX_STUBS:
            raise ConfigError([f"there are {MAX_STUBS} stubs, the most a server (or session) holds (MAX_STUBS); "
                               "remove some first"])
        stub = Stub(replace(rule, stub_id=self._next_id), spec, conditions=conditions_of(rule.match))
        self._by_id[stub.id] = stub
        self._next_id += 1
        self.regex_size += _size(stub.conditions)
        return stub

    def get(self, stub_id: int) -> Stub | None:
        return self._by_id.get(stub_id)

    def remove(self, stub_id: int) -> Stub | None:
        stub = self._by_id.pop(stub_id, None)
        if stub is not None:
            self.regex_size -= _size(stub.conditions)
        return stub

    def clear(self) -> int:
        count = len(self._by_id)
        self._by_id.clear()
        self.regex_size = 0
        return count

    def newest_first(self) -> Iterator[Stub]:
        return reversed(self._by_id.values())

    def __len__(self) -> int:
        return len(self._by_id)


MAX_DIFFERENCES = 8  # of one near miss, each cut to MAX_DIFFERENCE_CHARS: a journal entry stays small
MAX_DIFFERENCE_CHARS = 200


def _cut(text: str) -> str:
    return text if len(text) <= MAX_DIFFERENCE_CHARS else text[: MAX_DIFFERENCE_CHARS - 1] + "…"


def _size(conditions: tuple[Condition, ...]) -> int:
    return sum(regex.programsize for regex in message_regexes(conditions))


class Playbook:
    def __init__(self, scenarios: list[Scenario], seed: int, stubs: Stubs | None = None):
        self.scenarios = list(scenarios)
        self.stubs = stubs if stubs is not None else Stubs()
        self.seed = seed
        self.scenario_rules: list[Rule] = [rule for s in self.scenarios for rule in s.rules]
        self.uses = [0] * len(self.scenario_rules)
        self._times = [rule.times for rule in self.scenario_rules]
        self._limited = any(t is not None for t in self._times)
        # a rule is tried only for the endpoint it names (below), so that condition holds already
        self._conditions = [conditions_of(rule.match, endpoint=False) for rule in self.scenario_rules]
        # ... but a near miss says when it differed (made once, so scoring a miss rebuilds nothing)
        self._explained = [
            conditions if rule.match.endpoint is None else (Equals("endpoint", rule.match.endpoint), *conditions)
            for rule, conditions in zip(self.scenario_rules, self._conditions, strict=True)
        ]
        # a scenario's own seed, when it has one, makes its answers the same on any server
        self._seeds = [s.seed if s.seed is not None else seed for s in self.scenarios for _ in s.rules]
        # Rules that name an endpoint are only tried for it: matching stays flat as rules grow.
        self._candidates = {
            endpoint: [i for i, r in enumerate(self.scenario_rules) if r.match.endpoint in (endpoint, None)]
            for endpoint in (*ENDPOINTS, None)
        }
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
        return bool(self.stubs or self.scenario_rules or self._chaos)

    @property
    def rules(self) -> list[Rule]:
        """Every rule in the order they are tried: the stubs newest first, then the scenarios'."""
        if not self.stubs:
            return self.scenario_rules
        return [stub.rule for stub in self.stubs.newest_first()] + self.scenario_rules

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.scenarios]

    def decide(self, view: RequestView) -> Decision | None:
        """The first live rule that matches answers (and is used up by one): stubs, newest
        first, then the scenarios' rules in order; else chaos may strike."""
        if self.stubs:
            for stub in self.stubs.newest_first():
                if not stub.used_up and holds(stub.conditions, view):
                    n = stub.calls
                    stub.calls = n + 1
                    respond = stub.rule.responses[min(n, len(stub.rule.responses) - 1)]
                    return Decision(stub.rule.label, respond, derive_seed(self.seed, "stub", stub.id, n))
        for i in self._candidates.get(view.endpoint, self._candidates[None]):
            rule = self.scenario_rules[i]
            if rule.times is not None and self.uses[i] >= rule.times:
                continue
            if holds(self._conditions[i], view):
                n = self.uses[i]
                self.uses[i] = n + 1
                respond = rule.responses[min(n, len(rule.responses) - 1)]
                return Decision(rule.label, respond, derive_seed(self._seeds[i], i, n))
        for name, chaos, conditions, rnd in self._chaos:
            if holds(conditions, view) and rnd.random() < chaos.rate:
                return Decision(f"{name}/chaos", rnd.choice(chaos.responses), rnd.getrandbits(32))
        return None

    def regex_work(self, view: RequestView) -> int:
        """At worst, how much RE2 work (~5 ns a unit) matching this request's message could take."""
        return (self._regex_size + self.stubs.regex_size) * len(view.message)

    def message_regexes(self) -> dict[str, Any]:
        """Every distinct `message` regex the stubs, rules and chaos may search, by pattern."""
        out = dict(self._regexes)
        if self.stubs.regex_size:
            for stub in self.stubs.newest_first():
                out.update((regex.pattern, regex) for regex in message_regexes(stub.conditions))
        return out

    def near_misses(self, view: RequestView, limit: int = 3) -> list[dict]:
        """The rules (stubs included) that came closest, with what differed: for the journal
        and assertions. Changes nothing. Each rule's conditions are the ones built when it was
        loaded, a rule stops being scored once it misses more than the `limit` closest so far,
        and only those few are explained: a miss against thousands of rules costs little more
        than matching them, and one against ten a few microseconds."""
        stubs = list(self.stubs.newest_first()) if self.stubs else []
        first = len(stubs)  # scenario rules come after the stubs
        uses, times = self.uses, self._times
        tried = [stub.conditions for stub in stubs] + self._explained if stubs else self._explained
        spent = [int(stub.used_up) for stub in stubs]  # 1 for a rule used up: that is a difference too
        if self._limited:
            spent += [int(t is not None and u >= t) for t, u in zip(times, uses, strict=True)]
        else:
            spent += [0] * len(times)
        best: list[tuple[int, int]] = []  # (misses, order) of the closest so far, closest first
        worst = 1 << 30  # what a rule must miss less than to be among them
        for order, conditions in enumerate(tried):
            misses = spent[order]
            for condition in conditions:
                if not condition.holds(view):
                    misses += 1
                    if misses >= worst:
                        break
            if misses < worst:  # ties go to the rule tried first, as they are listed
                bisect.insort(best, (misses, order))
                if len(best) > limit:
                    best.pop()
                if len(best) == limit:
                    worst = best[-1][0]
        out = []
        for _, order in best:
            rule = stubs[order].rule if order < first else self.scenario_rules[order - first]
            diffs = [c.explain(view) for c in tried[order] if not c.holds(view)]
            if spent[order]:
                diffs.append(f"times: used up after {rule.times}")
            out.append({"rule": _cut(rule.label), "differences": [_cut(d) for d in diffs[:MAX_DIFFERENCES]]})
        return out

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
