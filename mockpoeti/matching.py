"""Which stub or scenario rule answers a request, and which came closest when none did.

Pure. `Playbook` holds the active scenarios, the stubs, and everything that
changes as they play: how often each rule answered (for `times` and
sequences) and the seeded chaos generators. It hangs off the server's State,
so `reset` rewinds it (and drops the stubs).
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from fnmatch import fnmatchcase
from typing import Any

from .chat import message_text
from .generate import derive_seed
from .scenario import ENDPOINTS, Match, Respond, Rule, Scenario


@dataclass(frozen=True, slots=True)
class RequestView:
    """What matching may look at: plain data, no aiohttp."""

    endpoint: str | None
    method: str
    path: str
    headers: Mapping[str, str]  # lower-case names
    body: Any = None
    key: str | None = None
    model: str | None = None
    stream: bool = False
    message: str = ""
    last_role: str | None = None
    tools: tuple[str, ...] = ()  # the declared tools' function names ("" for a tool without one)


def view_of(
    endpoint: str | None, method: str, path: str, headers: Mapping[str, str], body: Any, key: str | None = None
) -> RequestView:
    """A RequestView from the parts of a request (live, or from the journal)."""
    model, stream, message, last_role = None, False, "", None
    tools: tuple[str, ...] = ()
    if isinstance(body, dict):
        model = body.get("model") if isinstance(body.get("model"), str) else None
        stream = body.get("stream") is True
        raw = body.get("messages")
        messages = [m for m in raw if isinstance(m, dict)] if isinstance(raw, list) else []
        if messages:
            last_role = messages[-1].get("role") if isinstance(messages[-1].get("role"), str) else None
            message = next((message_text(m) for m in reversed(messages) if m.get("role") == "user"), "")
        declared = body.get("tools")
        if isinstance(declared, list) and declared:
            tools = tuple(_tool_name(t) for t in declared)
    return RequestView(
        endpoint=endpoint,
        method=method,
        path=path,
        headers={k.lower(): v for k, v in headers.items()},
        body=body,
        key=key,
        model=model,
        stream=stream,
        message=message,
        last_role=last_role,
        tools=tools,
    )


def _tool_name(tool: Any) -> str:
    function = tool.get("function") if isinstance(tool, dict) else None
    name = function.get("name") if isinstance(function, dict) else None
    return name if isinstance(name, str) else ""


@dataclass(frozen=True, slots=True)
class Decision:
    label: str
    respond: Respond
    seed: int


def differences(match: Match, view: RequestView) -> list[str]:
    """What keeps `match` from holding for `view`; empty when it holds."""
    out = []
    if match.endpoint is not None and match.endpoint != view.endpoint:
        out.append(f"endpoint: wanted {match.endpoint}, got {view.endpoint}")
    if match.method is not None and match.method != view.method:
        out.append(f"method: wanted {match.method}, got {view.method}")
    if match.path is not None and not fnmatchcase(view.path, match.path):
        out.append(f"path: wanted {match.path}, got {view.path}")
    if match.model is not None and not fnmatchcase(view.model or "", match.model):
        out.append(f"model: wanted {match.model}, got {view.model}")
    if match.stream is not None and match.stream != view.stream:
        out.append(f"stream: wanted {match.stream}, got {view.stream}")
    if match.message is not None:
        wanted = match.message
        found = wanted.search(view.message) if not isinstance(wanted, str) else wanted in view.message
        if not found:
            shown = wanted if isinstance(wanted, str) else f"/{wanted.pattern}/"
            out.append(f"message: wanted {shown!r}, got {view.message[:80]!r}")
    for name, pattern in match.headers:
        value = view.headers.get(name)
        if value is None or not fnmatchcase(value, pattern):
            out.append(f"headers.{name}: wanted {pattern!r}, got {value!r}")
    if match.body is not None and not contains(view.body, match.body):
        out.append("body: does not contain the wanted subset")
    if match.key is not None and not fnmatchcase(view.key or "", match.key):
        out.append("key: a different API key")
    if match.last_role is not None and match.last_role != view.last_role:
        out.append(f"last_role: wanted {match.last_role}, got {view.last_role}")
    if match.tools is not None and not _tools_hold(match.tools, view.tools):
        got = ", ".join(sorted({name or "(unnamed)" for name in view.tools})) or "none"
        out.append(f"tools: wanted {_show_tools(match.tools)}, got {got}")
    return out


def _tools_hold(wanted: bool | frozenset[str], declared: tuple[str, ...]) -> bool:
    if isinstance(wanted, bool):
        return wanted == bool(declared)
    return wanted == frozenset(declared)


def _show_tools(tools: bool | frozenset[str]) -> str:
    if isinstance(tools, bool):
        return "at least one tool" if tools else "no tools"
    return ", ".join(sorted(tools))


def contains(actual: Any, wanted: Any) -> bool:
    """JSON subset: every key of `wanted` is in `actual` with a containing value."""
    if isinstance(wanted, dict):
        return isinstance(actual, dict) and all(k in actual and contains(actual[k], v) for k, v in wanted.items())
    return actual == wanted


@dataclass(slots=True, eq=False)
class Stub:
    """One rule added at run time (`server.stub`, `POST /__admin/stubs`): WireMock's stub mapping."""

    rule: Rule  # its label, `stub#ID`, is what the journal names
    spec: dict  # the stub as given (plain JSON), for listings
    calls: int = 0

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

    def add(self, rule: Rule, spec: dict) -> Stub:
        stub = Stub(replace(rule, stub_id=self._next_id), spec)
        self._by_id[stub.id] = stub
        self._next_id += 1
        return stub

    def get(self, stub_id: int) -> Stub | None:
        return self._by_id.get(stub_id)

    def remove(self, stub_id: int) -> Stub | None:
        return self._by_id.pop(stub_id, None)

    def clear(self) -> int:
        count = len(self._by_id)
        self._by_id.clear()
        return count

    def newest_first(self) -> Iterator[Stub]:
        return reversed(self._by_id.values())

    def __len__(self) -> int:
        return len(self._by_id)


class Playbook:
    def __init__(self, scenarios: list[Scenario], seed: int, stubs: Stubs | None = None):
        self.scenarios = list(scenarios)
        self.stubs = stubs if stubs is not None else Stubs()
        self.seed = seed
        self.scenario_rules: list[Rule] = [rule for s in self.scenarios for rule in s.rules]
        self.uses = [0] * len(self.scenario_rules)
        # a scenario's own seed, when it has one, makes its answers the same on any server
        self._seeds = [s.seed if s.seed is not None else seed for s in self.scenarios for _ in s.rules]
        # Rules that name an endpoint are only tried for it: matching stays flat as rules grow.
        self._candidates = {
            endpoint: [i for i, r in enumerate(self.scenario_rules) if r.match.endpoint in (endpoint, None)]
            for endpoint in (*ENDPOINTS, None)
        }
        self._chaos = [
            (s.name, s.chaos, random.Random(s.chaos.seed if s.chaos.seed is not None else s.seed if s.seed is not None else seed))
            for s in self.scenarios
            if s.chaos is not None
        ]

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
                if not stub.used_up and not differences(stub.rule.match, view):
                    n = stub.calls
                    stub.calls = n + 1
                    respond = stub.rule.responses[min(n, len(stub.rule.responses) - 1)]
                    return Decision(stub.rule.label, respond, derive_seed(self.seed, "stub", stub.id, n))
        for i in self._candidates.get(view.endpoint, self._candidates[None]):
            rule = self.scenario_rules[i]
            if rule.times is not None and self.uses[i] >= rule.times:
                continue
            if not differences(rule.match, view):
                n = self.uses[i]
                self.uses[i] = n + 1
                respond = rule.responses[min(n, len(rule.responses) - 1)]
                return Decision(rule.label, respond, derive_seed(self._seeds[i], i, n))
        for name, chaos, rnd in self._chaos:
            if not differences(chaos.match, view) and rnd.random() < chaos.rate:
                return Decision(f"{name}/chaos", rnd.choice(chaos.responses), rnd.getrandbits(32))
        return None

    def near_misses(self, view: RequestView, limit: int = 3) -> list[dict]:
        """The rules (stubs included) that came closest, with what differed: for the journal
        and assertions. Changes nothing."""
        scored = []
        tried = [(stub.rule, stub.calls) for stub in self.stubs.newest_first()]
        tried += zip(self.scenario_rules, self.uses, strict=True)
        for order, (rule, used) in enumerate(tried):
            diffs = differences(rule.match, view)
            if rule.times is not None and used >= rule.times:
                diffs = [*diffs, f"times: used up after {rule.times}"]
            scored.append((len(diffs), order, rule.label, diffs))
        scored.sort()
        return [{"rule": label, "differences": diffs} for _, _, label, diffs in scored[:limit]]

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
