"""JSON in and out, bounded: what every body is parsed with and every answer written with.

Pure (orjson and the stdlib). The bounds are checked on the bytes before parsing,
so a hostile body costs a scan, not a parse.
"""

from __future__ import annotations

import json
import re
from typing import Any, Final

import orjson

from mockpoeti.base.errors import ApiError

# Deeper than any real request, and shallow enough for every recursive step
# after parsing (matching, the journal, orjson's own limit of 254 when writing).
MAX_DEPTH: Final = 100
# Arrays and objects in one body: a real request has hundreds; 4 MiB of `[[],[],...]` has 1.4
# million, and making them costs the event loop most of a second.
MAX_CONTAINERS: Final = 100_000
# Values in arrays and objects (counted by their commas): a real request has thousands; 4 MiB
# of `{"k1":0,"k2":0,...}` has 400,000, and parsing them and listing its unknown fields held
# the event loop for 300 ms.
MAX_VALUES: Final = 100_000

_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def encode(data: Any) -> bytes:
    """Compact UTF-8 JSON. orjson makes it ten times cheaper than the stdlib,
    which stays for what orjson refuses (ints beyond 64 bits)."""
    try:
        return orjson.dumps(data, option=orjson.OPT_NON_STR_KEYS)
    except TypeError:
        return _encode(data).encode()


def dumps(data: Any) -> str:
    return encode(data).decode()


def _no_constants(name: str) -> None:
    raise ValueError(f"{name} is not valid JSON")


def parse_json(raw: bytes) -> Any:
    """JSON, or `invalid_request` saying exactly what is wrong with it."""
    # (a body no longer than MAX_VALUES bytes cannot have more: two scans fewer for almost every body)
    many_values = len(raw) > MAX_VALUES and raw.count(b",") + raw.count(b":") > MAX_VALUES
    many_containers = raw.count(b"[") + raw.count(b"{") > MAX_DEPTH
    structure = _structure(raw) if many_values or many_containers else b""  # the one scan past the strings
    if many_values and structure.count(b",") > MAX_VALUES:
        raise ApiError("invalid_request", f"The request body has more than {MAX_VALUES} values in its arrays and objects.")
    if many_containers:
        brackets = structure.translate(None, _NOT_BRACKETS)
        if len(brackets) // 2 > MAX_CONTAINERS:
            raise ApiError("invalid_request", f"The request body has more than {MAX_CONTAINERS} arrays and objects.")
        if _too_deep(brackets):
            raise ApiError("invalid_request", f"The request body is nested more than {MAX_DEPTH} levels deep.")
    try:
        return orjson.loads(raw)  # the fast path: strict UTF-8, no NaN, no lone surrogates
    except orjson.JSONDecodeError:
        return _parse_with_stdlib(raw)


_STRING: Final = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')  # a JSON string, escapes included (the unrolled loop: linear, fast)
_PAIR: Final = re.compile(rb"\[\]|\{\}")
_NOT_BRACKETS: Final = bytes(b for b in range(256) if b not in b"[]{}")


def _structure(raw: bytes) -> bytes:
    """The body with its strings (keys included) left out: what is left is punctuation and numbers."""
    return _STRING.sub(b"", raw)


def _too_deep(brackets: bytes) -> bool:
    """Nested more than MAX_DEPTH levels? Counted on the bytes, in C: the innermost pairs
    removed MAX_DEPTH times; what is left was deeper. (A walk over the parsed value took
    a second for 4 MiB of `[[],[],...]`, holding every other client.)"""
    for _ in range(MAX_DEPTH):
        if not brackets:
            return False
        brackets = _PAIR.sub(b"", brackets)  # one level: both kinds in one pass
    return bool(brackets)


def _parse_with_stdlib(raw: bytes) -> Any:
    """What orjson refused, parsed again by the stdlib, whose errors say
    exactly what is wrong (and which reads 1e400 as infinity)."""
    if not raw.strip():
        raise ApiError("invalid_request", "The request body is empty; expected a JSON object.")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ApiError("invalid_request", f"The request body is not valid UTF-8 (byte {e.start}).") from None
    try:
        body = json.loads(text, parse_constant=_no_constants)
    except ValueError as e:
        raise ApiError("invalid_request", f"The request body is not valid JSON: {e}.") from None
    except RecursionError:
        raise ApiError("invalid_request", "The request body is nested too deeply.") from None
    if "\\u" in text and _has_lone_surrogate(body):
        raise ApiError("invalid_request", "The request body contains an unpaired UTF-16 surrogate escape (\\ud800-\\udfff).")
    return body


def _has_lone_surrogate(body: Any) -> bool:
    """`"\\ud800"` parses, but can never be written back out as UTF-8."""
    try:
        _encode(body).encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False
