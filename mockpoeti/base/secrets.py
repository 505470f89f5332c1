"""Keys are secrets: what of them may be shown, wherever a request's text is echoed or kept.

One rule everywhere (listings, the journal, traces, error messages, the recorder's
file): a key is shown as its prefix, never whole.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

_KEY_LIKE = re.compile(r"\bsk-[A-Za-z0-9][A-Za-z0-9_-]{11,}")
_BEARER = re.compile(r"(?i)\b(bearer\s+)([^\s\"',;]{8,})")
_SECRET_FIELDS = frozenset({"key", "api_key", "apikey", "secret", "authorization", "access_token", "token"})
_SECRET_HEADERS = frozenset({"authorization", "x-api-key", "api-key", "cookie", "x-admin-token"})
_SECRET_PARAMS = frozenset({"key", "api_key", "apikey", "api-key", "access_token", "token", "admin_token"})


def key_prefix(secret: str) -> str:
    """What listings, the journal and logs show of a key (the gateway's own rule): never the whole of it."""
    return secret[: min(13, len(secret) // 2)] + "..."


def mask_header(name: str, value: str) -> str:
    if name.lower() not in _SECRET_HEADERS:
        return value
    scheme, _, token = value.partition(" ")
    if token:
        return f"{scheme} {key_prefix(token)}"
    return key_prefix(value)


def mask_param(name: str, value: str) -> str:
    """A key sent in the query string is as secret as one in a header."""
    return key_prefix(value) if name.lower() in _SECRET_PARAMS or value.startswith("sk-") else as_text(value)


def as_text(value: str) -> str:
    """Text that can be written out as UTF-8 (a header may carry bytes that are not)."""
    if value.isascii():
        return value
    return value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def redact(value: Any, secrets: Iterable[str] = ()) -> Any:
    """Every string with each known key, anything shaped like a key (sk-...,
    Bearer ...) and key-named fields cut to a prefix. A `key` next to a
    `key_prefix` (a created key) becomes that prefix."""
    known = tuple(secrets)
    if isinstance(value, str):
        return _redactas_text(value, known)
    if isinstance(value, list):
        return [redact(v, known) for v in value]
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if _secret_field(k, v):
                prefix = value.get("key_prefix")
                v = prefix if k == "key" and isinstance(prefix, str) else key_prefix(v)
            out[k] = redact(v, known)
        return out
    return value


def _secret_field(name: Any, value: Any) -> bool:
    return (
        isinstance(value, str) and str(name).lower() in _SECRET_FIELDS and len(value) >= 12
        and not any(c.isspace() for c in value) and not value.endswith("...")
    )


def _redactas_text(text: str, secrets: tuple[str, ...]) -> str:
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, key_prefix(secret))

    def cut(match: re.Match) -> str:
        following = match.string[match.end() : match.end() + 3]
        return match.group(0) if following == "..." else key_prefix(match.group(0))

    text = _KEY_LIKE.sub(cut, text)
    return _BEARER.sub(lambda m: m.group(0) if m.group(2).endswith("...") else m.group(1) + key_prefix(m.group(2)), text)
