"""How one server is configured: the CLI, MockServer and the pytest plugin all build this.

Every bound lives here, once: `Settings(...)` refuses a value outside it with a
one-line ValueError (`max_traces: 0 is out of range; expected 1 to 1000000000`),
and `parse_setting` reads the same values from text (the CLI's flags, the
plugin's ini options) with the same message.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass, fields
from datetime import UTC, datetime

DEFAULT_ROUTING = "comprehensive"
MAX_SEED = 2**64 - 1  # seeds are hashed into 64-bit draws: a larger one would only look different
MAX_STORED = 1_000_000_000  # traces, journal entries
MAX_KEYS_PER_ACCOUNT = 10_000  # a full key listing stays a few megabytes
MAX_BODY_BYTES = 64 * 1024 * 1024  # the body-parsing bounds (100,000 values, 100 levels) are sized for a few MiB
MAX_TIMEOUT_S = 86_400.0
MAX_TEXT = 4_096  # characters of a token, a path, a name
MAX_KEY_LENGTH = 256  # characters of an API key given at start
MAX_LISTED = 1_000  # scenarios, folders or API keys given at start
MAX_SESSIONS = 100_000  # alive at once: what --max-sessions may ask for


@dataclass(frozen=True, slots=True)
class Settings:
    """How one server runs; every value is checked against its bound when made (check_setting)."""

    seed: int | None = None
    fixtures: str | None = None  # a folder replacing any of fixtures/*.yaml
    scenarios: tuple[str, ...] = ()  # names of shipped scenarios or paths
    scenario_dirs: tuple[str, ...] = ()  # folders the admin API may load scenario files from (besides those of `scenarios`)
    api_keys: tuple[str, ...] = ()  # extra keys for the default account: no limits
    clock: float | None = None  # frozen at this Unix time; None = wall clock
    history: bool = False  # seed trace history from fixtures/history.yaml
    max_traces: int = 100_000  # oldest traces are evicted; aggregates stay exact
    max_journal: int = 1_000
    max_body_bytes: int = 4 * 1024 * 1024
    routing_strategy: str = DEFAULT_ROUTING
    admin_token: str | None = None
    header_timeout_s: float = 15.0  # a new connection's first request headers must be in by then
    keepalive_timeout_s: float = 75.0  # an idle keep-alive connection is closed after this
    body_timeout_s: float = 30.0  # a request body must be in by then (408 request_timeout)
    max_keys_per_account: int = 1_000
    max_sessions: int = 100  # sessions (/sessions/{id}: isolated twins) alive at once; 0: none
    session_ttl_s: float = 600.0  # a session unused this long ends

    def __post_init__(self) -> None:
        for field in fields(self):
            value = getattr(self, field.name)
            if field.name in _ITEMS and isinstance(value, list):  # MockServer(scenario_dirs=[...]) as well as a tuple
                value = tuple(value)
                object.__setattr__(self, field.name, value)
            if value is not None or field.name not in _OPTIONAL:
                check_setting(field.name, value)

    @property
    def body_limits(self) -> tuple[int, float]:
        """How large a request body may be, and how long it may take to arrive."""
        return self.max_body_bytes, self.body_timeout_s


def check_setting(name: str, value: object) -> None:
    """ValueError (`NAME: what is wrong`, one line) unless `value` is one `Settings.NAME` takes
    (or, for `port`, one MockServer takes)."""
    try:
        _CHECKS[name](value)
    except ValueError as e:
        raise ValueError(f"{name}: {e}") from None


def clock_setting(value: str | float | int | datetime | None) -> float | None:
    """A clock as MockServer takes it (Unix seconds, a datetime, ISO 8601; None: the wall clock),
    in Unix seconds; ValueError `clock: ...` as for any other setting."""
    if value is None:
        return None
    try:
        return parse_time(value)
    except ValueError as e:
        raise ValueError(f"clock: {e}") from None


def parse_setting(name: str, text: str) -> object:
    """A setting's value from text (a CLI flag, an ini option), checked as `Settings` checks it.
    ValueError says what is wrong, without the name: each caller names it its own way."""
    kind = _TEXT_KINDS.get(name, str)
    if kind is int:
        try:
            value: object = int(text.strip())
        except ValueError:
            raise ValueError(f"{text[:40]!r} is not a whole number") from None
    elif kind is float:
        try:
            value = float(text.strip())
        except ValueError:
            raise ValueError(f"{text[:40]!r} is not a number of seconds") from None
    elif name == "clock":
        value = parse_time(text)
    else:
        value = text
    _ITEMS.get(name, _CHECKS[name])(value)  # a list setting's flag gives one item at a time (`--api-key K`)
    return value


def setting_type(name: str) -> Callable[[str], object]:
    """`parse_setting` as an argparse `type`: the CLI's flags and the plugin's options refuse a
    value with the message `Settings` would raise."""

    def parse(text: str) -> object:
        try:
            return parse_setting(name, text)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from None

    parse.__name__ = name  # argparse names the type in some of its messages
    return parse


def _whole(low: int, high: int):
    def check(value: object) -> None:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{str(value)[:40]!r} is not a whole number")
        if not low <= value <= high:
            raise ValueError(f"{value} is out of range; expected {low} to {high}")

    return check


def _timeout(value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{str(value)[:40]!r} is not a number of seconds")
    if not 0 < value <= MAX_TIMEOUT_S:  # NaN fails this too
        raise ValueError(f"{value:g} is out of range; expected more than 0 and at most {MAX_TIMEOUT_S:g} seconds")


def _text(high: int, what: str = "a string"):
    def check(value: object) -> None:
        if not isinstance(value, str):
            raise ValueError(f"expected {what}, got {type(value).__name__}")
        if not value.strip():
            raise ValueError("must not be empty")
        if len(value) > high:
            raise ValueError(f"{len(value)} characters is more than {high}")

    return check


def _texts(check_one, high: int, what: str):
    def check(value: object) -> None:
        if not isinstance(value, tuple):
            raise ValueError(f"expected a tuple of {what}, got {type(value).__name__}")
        if len(value) > high:
            raise ValueError(f"{len(value)} {what} is more than {high}")
        for item in value:
            check_one(item)

    return check


def _api_key(value: object) -> None:
    _text(MAX_KEY_LENGTH, "an API key (a string)")(value)
    assert isinstance(value, str)
    if not (value.isascii() and value.isprintable()) or " " in value:
        raise ValueError("an API key is visible ASCII without spaces, as `Authorization: Bearer KEY` carries it")


def _moment(value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < LAST_MOMENT:
        raise ValueError(f"{str(value)[:40]!r} is not a time between 1970 and 9899")


def _flag(value: object) -> None:
    if not isinstance(value, bool):
        raise ValueError(f"expected true or false, got {str(value)[:40]!r}")


_ITEMS = {"scenarios": _text(MAX_TEXT), "scenario_dirs": _text(MAX_TEXT), "api_keys": _api_key}
_OPTIONAL = frozenset({"seed", "fixtures", "clock", "admin_token"})  # None: not set
_CHECKS = {
    "seed": _whole(0, MAX_SEED),
    "fixtures": _text(MAX_TEXT, "a folder (a string)"),
    "scenarios": _texts(_ITEMS["scenarios"], MAX_LISTED, "scenarios"),
    "scenario_dirs": _texts(_ITEMS["scenario_dirs"], MAX_LISTED, "folders"),
    "api_keys": _texts(_ITEMS["api_keys"], MAX_LISTED, "API keys"),
    "clock": _moment,
    "history": _flag,
    "max_traces": _whole(1, MAX_STORED),
    "max_journal": _whole(1, MAX_STORED),
    "max_body_bytes": _whole(1, MAX_BODY_BYTES),
    "routing_strategy": _text(64),
    "admin_token": _text(MAX_TEXT, "a token (a string)"),
    "header_timeout_s": _timeout,
    "keepalive_timeout_s": _timeout,
    "body_timeout_s": _timeout,
    "max_keys_per_account": _whole(1, MAX_KEYS_PER_ACCOUNT),
    "max_sessions": _whole(0, MAX_SESSIONS),
    "session_ttl_s": _timeout,
    "port": _whole(0, 65_535),  # MockServer's, not a Settings field: the port it binds is known only once bound
}
_TEXT_KINDS = dict.fromkeys(
    ("seed", "port", "max_traces", "max_journal", "max_body_bytes", "max_keys_per_account", "max_sessions"), int
) | dict.fromkeys(("header_timeout_s", "keepalive_timeout_s", "body_timeout_s", "session_ttl_s"), float)


# The last year a clock may be set to is 9899: a century short of datetime's 9999, so that
# "now + a century" (a key's expiry, a budget month far ahead) is still a date.
LATEST = datetime(9999, 1, 1, tzinfo=UTC).timestamp()
LAST_MOMENT = LATEST - 100 * 366 * 86400


def parse_time(value: str | float | int | datetime) -> float:
    """A clock setting: Unix seconds, a datetime, or ISO 8601 (`2026-04-09T14:23:18Z`, `2026-04-09`).

    Raises ValueError for anything that is not a moment between 1970 and 9899.
    """
    try:
        seconds = _seconds(value)
    except OverflowError:  # an integer beyond float range, a year past datetime's 9999
        raise ValueError(f"{str(value)[:40]!r} is not a time between 1970 and 9899") from None
    if not 0 <= seconds < LAST_MOMENT:  # NaN fails this too
        raise ValueError(f"{str(value)[:40]!r} is not a time between 1970 and 9899")
    return seconds


def _seconds(value: str | float | int | datetime) -> float:
    if isinstance(value, bool):
        raise ValueError("a boolean is not a time")
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, (int, float)):
        return float(value)
    else:
        text = str(value).strip()
        try:
            return float(text)
        except ValueError:
            pass
        try:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            raise ValueError(f"{text[:40]!r} is not a time; expected ISO 8601 (2026-04-09T14:23:18Z) or Unix seconds") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()
