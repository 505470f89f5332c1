"""Default data from `fixtures/`: model catalog, error catalog, accounts, history.

Each file is optional in a user's fixtures folder; a missing one falls back to
the shipped copy, so replacing only the catalog is one small file.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from mockpoeti.base.errors import ConfigError
from mockpoeti.base.yamlfiles import load_shipped_yaml, load_yaml

# mockpoeti/, from the package (always imported first), not this file: compiled, an editable
# install keeps this module in build/native (hatch_build.py)
_PACKAGE: Final = Path(sys.modules["mockpoeti"].__path__[0]).resolve()


def shipped_dir(name: str) -> Path:
    """`fixtures` or `scenarios`: inside the installed wheel, else the repository top."""
    inside = _PACKAGE / name
    return inside if inside.is_dir() else _PACKAGE.parent / name


@dataclass(frozen=True, slots=True)
class Model:
    """A model of the catalog: its prices make the cost of every call."""

    id: str
    owned_by: str
    created: int
    context_length: int
    input_price: float  # USD per 1M prompt tokens
    output_price: float  # USD per 1M completion tokens

    def cost_nanos(self, prompt_tokens: int, completion_tokens: int) -> int:
        """Cost in billionths of a dollar: integers keep every running sum exact."""
        return round(prompt_tokens * self.input_price * 1000 + completion_tokens * self.output_price * 1000)

    def to_json(self) -> dict:
        return {
            "id": self.id,
            "object": "model",
            "created": self.created,
            "owned_by": self.owned_by,
            "context_length": self.context_length,
            "pricing": {"input": self.input_price, "output": self.output_price, "unit": "USD per 1M tokens"},
        }


@dataclass(frozen=True, slots=True)
class ErrorDef:
    """An error of the catalog: the HTTP status and the default message of its code."""

    status: int
    message: str


@dataclass(frozen=True, slots=True)
class KeyDef:
    """An API key as fixtures/accounts.yaml gives it."""

    name: str
    key: str
    monthly_budget: float | None = None
    rate_limit: int | None = None
    is_active: bool = True


@dataclass(frozen=True, slots=True)
class AccountDef:
    """An account and its keys."""

    id: str
    name: str
    keys: tuple[KeyDef, ...]


@dataclass(frozen=True, slots=True)
class HistorySpec:
    """How much seeded trace history `--history` makes, and of what."""

    seed: int
    days: int
    requests_per_day: int
    error_rate: float
    accounts: tuple[str, ...]
    models: dict[str, float]


@dataclass(frozen=True, slots=True)
class Catalog:
    """Everything fixtures/ holds, read once per server."""

    models: dict[str, Model]
    errors: dict[str, ErrorDef]
    accounts: tuple[AccountDef, ...]
    history: HistorySpec | None
    sentences: dict[str, tuple[str, ...]]  # language -> what generated answers are made of


def load_catalog(fixtures: str | Path | None = None) -> Catalog:
    """Read the fixture files, the user's where given, else the shipped ones."""
    user = Path(fixtures) if fixtures else None
    if user is not None and not user.is_dir():
        raise ConfigError([f"{user}:1: fixtures folder not found"])

    def read(name: str) -> tuple[Path, Any]:
        if user is not None and (user / name).exists():
            return user / name, load_yaml(user / name)
        path = shipped_dir("fixtures") / name
        return path, load_shipped_yaml(path)

    problems: list[str] = []
    catalog = Catalog(
        models=_parse(read("models.yaml"), "models", _model, problems, key=lambda m: m.id),
        errors=_parse_errors(*read("errors.yaml"), problems),
        accounts=tuple(_parse(read("accounts.yaml"), "accounts", _account, problems, key=None)),
        history=_history(*read("history.yaml"), problems),
        sentences=_sentences(*read("sentences.yaml"), problems),
    )
    if problems:
        raise ConfigError(problems)
    return catalog


def _parse(source, section, build, problems, key):
    path, data = source
    items = (data or {}).get(section) if isinstance(data, dict) else None
    if not isinstance(items, list):
        problems.append(f"{path}:1: {section}: expected a list")
        return {} if key else []
    built = []
    for i, item in enumerate(items):
        try:
            built.append(build(item))
        except (KeyError, TypeError, ValueError) as e:
            problems.append(f"{path}:1: {section}[{i}]: {e}")
    return {key(b): b for b in built} if key else built


def _model(d: dict) -> Model:
    return Model(
        id=str(d["id"]),
        owned_by=str(d["owned_by"]),
        created=int(d.get("created", 1712678400)),
        context_length=int(d["context_length"]),
        input_price=float(d["input_price"]),
        output_price=float(d["output_price"]),
    )


def _account(d: dict) -> AccountDef:
    keys = tuple(
        KeyDef(
            name=str(k["name"]),
            key=str(k["key"]),
            monthly_budget=None if k.get("monthly_budget") is None else float(k["monthly_budget"]),
            rate_limit=None if k.get("rate_limit") is None else int(k["rate_limit"]),
            is_active=bool(k.get("is_active", True)),
        )
        for k in d.get("keys") or ()
    )
    return AccountDef(id=str(d["id"]), name=str(d.get("name", d["id"])), keys=keys)


def _parse_errors(path: Path, data: Any, problems: list[str]) -> dict[str, ErrorDef]:
    section = data.get("errors") if isinstance(data, dict) else None
    if not isinstance(section, dict):
        problems.append(f"{path}:1: errors: expected a mapping of code to {{status, message}}")
        return {}
    errors = {}
    for code, d in section.items():
        try:
            errors[str(code)] = ErrorDef(status=int(d["status"]), message=str(d["message"]))
        except (KeyError, TypeError, ValueError) as e:
            problems.append(f"{path}:1: errors.{code}: expected {{status, message}} ({e})")
    return errors


def _history(path: Path, data: Any, problems: list[str]) -> HistorySpec | None:
    if not data:
        return None
    try:
        return HistorySpec(
            seed=int(data.get("seed", 0)),
            days=int(data.get("days", 30)),
            requests_per_day=int(data.get("requests_per_day", 40)),
            error_rate=float(data.get("error_rate", 0.0)),
            accounts=tuple(str(a) for a in data.get("accounts") or ()),
            models={str(k): float(v) for k, v in (data.get("models") or {}).items()},
        )
    except (AttributeError, TypeError, ValueError) as e:
        problems.append(f"{path}:1: history: {e}")
        return None


def _sentences(path: Path, data: Any, problems: list[str]) -> dict[str, tuple[str, ...]]:
    pools = data if isinstance(data, dict) else {}
    if not isinstance(data, dict):
        problems.append(f"{path}:1: expected a mapping of language (en, zh, ja) to a list of sentences")
    for lang, pool in pools.items():
        if not isinstance(pool, list) or not pool or not all(isinstance(x, str) and x for x in pool):
            problems.append(f"{path}:1: {lang}: expected a non-empty list of non-empty sentences")
    return {str(lang): tuple(pool) for lang, pool in pools.items() if isinstance(pool, list)}
