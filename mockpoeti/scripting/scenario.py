"""What a scenario is, once loaded: frozen dataclasses for rules and what they
match, and the names of endpoints. The rest of mockpoeti sees only these, never
a raw dict from a file; reading and validating files is `loader`'s job, loaded
only when there are files to read. What a rule answers is `answers.script`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from mockpoeti.answers.script import Respond
from mockpoeti.base.endpoints import CHAT

METHODS: Final[tuple[str, ...]] = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")


@dataclass(frozen=True, slots=True)
class Match:
    """The conditions a request must meet for a rule to answer it (None: any)."""

    endpoint: str | None = None
    method: str | None = None
    path: str | None = None
    model: str | None = None
    stream: bool | None = None
    message: Any = None  # a substring, or a compiled RE2 regex (`base.regexes`)
    headers: tuple[tuple[str, str], ...] = ()
    body: Any = None
    key: str | None = None
    last_role: str | None = None
    tools: bool | frozenset[str] | None = None  # any tool, none, or exactly these function names
    turn: int | None = None  # exactly this many user messages
    after_tool: str | None = None  # a glob: the last message answers a call to a function so named


@dataclass(frozen=True, slots=True)
class Rule:
    """One stub: a match and the responses it gives, in turn."""

    scenario: str
    index: int
    line: int
    name: str
    match: Match
    responses: tuple[Respond, ...]
    times: int | None = None
    stub_id: int | None = None  # a stub (a rule added at run time) rather than a scenario file's rule

    @property
    def label(self) -> str:
        """How the journal names the rule that answered: `retry/rules[0] (name)`, `stub#3`."""
        where = f"stub#{self.stub_id}" if self.stub_id is not None else f"{self.scenario}/rules[{self.index}]"
        return where + (f" ({self.name})" if self.name else "")


@dataclass(frozen=True, slots=True)
class Chaos:
    """Responses given at random to a share of the requests a scenario matches."""

    rate: float
    responses: tuple[Respond, ...]
    seed: int | None = None
    match: Match = Match(endpoint=CHAT)


@dataclass(frozen=True, slots=True)
class Scenario:
    """A scenario file, or an inline scenario, as loaded."""

    name: str
    description: str
    source: str
    seed: int | None
    rules: tuple[Rule, ...]
    chaos: Chaos | None = None
