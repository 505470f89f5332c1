"""How one server is configured: the CLI, MockServer and the pytest plugin all build this."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

DEFAULT_ROUTING = "comprehensive"


@dataclass(frozen=True, slots=True)
class Settings:
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

    @property
    def body_limits(self) -> tuple[int, float]:
        """How large a request body may be, and how long it may take to arrive."""
        return self.max_body_bytes, self.body_timeout_s


# The last year a clock may be set to is 9899: a century short of datetime's 9999, so that
# "now + a century" (a key's expiry, a budget month far ahead) is still a date.
LATEST = datetime(9999, 1, 1, tzinfo=UTC).timestamp()


def parse_time(value: str | float | int | datetime) -> float:
    """A clock setting: Unix seconds, a datetime, or ISO 8601 (`2026-04-09T14:23:18Z`, `2026-04-09`).

    Raises ValueError for anything that is not a moment between 1970 and 9899.
    """
    try:
        seconds = _seconds(value)
    except OverflowError:  # an integer beyond float range, a year past datetime's 9999
        raise ValueError(f"{str(value)[:40]!r} is not a time between 1970 and 9899") from None
    if not 0 <= seconds < LATEST - 100 * 366 * 86400:  # NaN fails this too
        raise ValueError(f"{value!r} is not a time between 1970 and 9899")
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
            moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()
