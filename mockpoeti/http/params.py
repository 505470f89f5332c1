"""Query-string and body field checks for the management endpoints. Pure.

Each failure is an `invalid_request` naming the parameter and what it takes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import date
from typing import Any

from mockpoeti.base.errors import invalid

MAX_PAGE_SIZE = 100
DEFAULT_PAGE_SIZE = 20


def ascii_digits(text: str, most: int = 18) -> bool:
    """1 to `most` ASCII digits. int() would also take ' 1', '+1', '1_000' and Arabic-Indic
    digits, and str.isdigit() takes '²' and full-width digits; 18 digits always fit in 64 bits."""
    return 0 < len(text) <= most and text.isascii() and text.isdigit()


def int_param(query: Mapping[str, str], name: str, default: int | None, low: int, high: int | None = None) -> int | None:
    raw = query.get(name)
    if raw is None or raw == "":
        return default
    expected = f"an integer from {low}" + (f" to {high}" if high is not None else " up")
    if not ascii_digits(raw[1:] if raw[:1] == "-" else raw):
        raise invalid(name, expected)
    value = int(raw)
    if value < low or (high is not None and value > high):
        raise invalid(name, expected)
    return value


def page_params(query: Mapping[str, str]) -> tuple[int, int]:
    page = int_param(query, "page", 1, 1, 1_000_000_000)
    size = int_param(query, "page_size", DEFAULT_PAGE_SIZE, 1, MAX_PAGE_SIZE)
    assert page is not None and size is not None  # both have defaults
    return page, size


def date_param(query: Mapping[str, str], name: str) -> str | None:
    """A day as `YYYY-MM-DD` (the format the aggregates are keyed by), or None."""
    raw = query.get(name)
    if raw is None or raw == "":
        return None
    try:
        if len(raw) != 10 or raw[4] != "-" or raw[7] != "-":  # not the week form 2026-W14-3
            raise ValueError
        return date.fromisoformat(raw).isoformat()
    except ValueError:
        raise invalid(name, "a date as YYYY-MM-DD") from None


def date_range(query: Mapping[str, str]) -> tuple[str | None, str | None]:
    day_from, day_to = date_param(query, "date_from"), date_param(query, "date_to")
    if day_from and day_to and day_from > day_to:
        raise invalid("date_to", f"a date on or after date_from ({day_from})")
    return day_from, day_to


def choice_param(query: Mapping[str, str], name: str, choices: tuple[str, ...]) -> str | None:
    raw = query.get(name)
    if raw is None or raw == "":
        return None
    if raw not in choices:
        raise invalid(name, "one of " + ", ".join(choices))
    return raw


def text_field(body: dict, name: str, low: int, high: int) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not low <= len(value) <= high or not value.strip():
        raise invalid(name, f"a string of {low} to {high} characters")
    return value


def number_field(body: dict, name: str, low: float, high: float, integer: bool = False) -> Any:
    """An optional number in [low, high]; booleans, NaN and strings are not numbers."""
    value = body.get(name)
    if value is None:
        return None
    kinds = (int,) if integer else (int, float)
    # an integer is compared as it is: math.isfinite() cannot take one beyond float range (10**400)
    finite = isinstance(value, int) or (isinstance(value, float) and math.isfinite(value))
    if isinstance(value, bool) or not isinstance(value, kinds) or not finite or not low <= value <= high:
        raise invalid(name, f"{'an integer' if integer else 'a number'} from {low:g} to {high:g}")
    return value
