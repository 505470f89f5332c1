"""Which scenario rule answers a request, and which came closest when none did.

Pure. `Playbook` holds the active scenarios and everything that changes as
they play: how often each rule answered (for `times` and sequences) and the
seeded chaos generators. It hangs off the server's State, so `reset` rewinds it.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
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


def view_of(
    endpoint: str | None, method: str, path: str, headers: Mapping[str, str], body: Any, key: str | None = None
) -> RequestView:
    """A RequestView from the parts of a request (live, or from the journal)."""
    model, stream, message, last_role = None, False, "", None
    if isinstance(body, dict):
        model = body.get("model") if isinstance(body.get("model"), str) else None
        stream = body.get("stream") is True
        raw = body.get("messages")
        messages = [m for m in raw if isinstance(m, dict)] if isinstance(raw, list) else []
        if messages:
            last_role = messages[-1].get("role") if isinstance(messages[-1].get("role"), str) else None
            message = next((message_text(m) for m in reversed(messages) if m.get("role") == "user"), "")
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
    )


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
    return out


def contains(actual: Any, wanted: Any) -> bool:
    """JSON subset: every key of `wanted` is in `actual` with a containing value."""
    if isinstance(wanted, dict):
        return isinstance(actual, dict) and all(k in actual and contains(actual[k], v) for k, v in wanted.items())
    return actual == wanted


class Playbook:
    def __init__(self, scenarios: list[Scenario], seed: int):
        self.scenarios = list(scenarios)
        self.rules: list[Rule] = [rule for s in self.scenarios for rule in s.rules]
        self.uses = [0] * len(self.rules)
        # a scenario's own seed, when it has one, makes its answers the same on any server
        self._seeds = [s.seed if s.seed is not None else seed for s in self.scenarios for _ in s.rules]
        # Rules that name an endpoint are only tried for it: matching stays flat as rules grow.
        self._candidates = {
            endpoint: [i for i, r in enumerate(self.rules) if r.match.endpoint in (endpoint, None)]
            for endpoint in (*ENDPOINTS, None)
        }
        self._chaos = [
            (s.name, s.chaos, random.Random(s.chaos.seed if s.chaos.seed is not None else s.seed if s.seed is not None else seed))
            for s in self.scenarios
            if s.chaos is not None
        ]

    @property
    def active(self) -> bool:
        return bool(self.rules or self._chaos)

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.scenarios]

    def decide(self, view: RequestView) -> Decision | None:
        """The first live rule that matches answers (and is used up by one); else chaos may strike."""
        for i in self._candidates.get(view.endpoint, self._candidates[None]):
            rule = self.rules[i]
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
        """The rules that came closest, with what differed: for the journal and assertions."""
        scored = []
        for i, rule in enumerate(self.rules):
            diffs = differences(rule.match, view)
            if rule.times is not None and self.uses[i] >= rule.times:
                diffs = [*diffs, f"times: used up after {rule.times}"]
            scored.append((len(diffs), i, rule.label, diffs))
        scored.sort()
        return [{"rule": label, "differences": diffs} for _, _, label, diffs in scored[:limit]]

    def describe(self) -> list[dict]:
        return [
            {
                "name": s.name,
                "description": s.description,
                "source": s.source,
                "rules": [
                    {"rule": r.label, "times": r.times, "used": self.uses[self.rules.index(r)], "responses": len(r.responses)}
                    for r in s.rules
                ],
                "chaos": None if s.chaos is None else {"rate": s.chaos.rate},
            }
            for s in self.scenarios
        ]
