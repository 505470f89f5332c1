"""Keys are secrets: what of them may be shown, wherever a request's text is echoed or kept.

One rule everywhere (listings, the journal, traces, error messages, the recorder's
file): a key is shown as its prefix, never whole. Anything shaped like a key
(`sk-...`) is cut wherever it stands; a header or query parameter named like a
credential (`Authorization`, `X-Api-Key`, `token`, ...) is cut whatever it holds.
The cutting is done where text is shown (an error made, the journal read, the
recording written), not on every request.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote

_KEY_LIKE = re.compile(r"\bsk-[A-Za-z0-9][A-Za-z0-9_-]{11,}")
_BEARER = re.compile(r"(?i)\b(bearer\s+)([^\s\"',;]{8,})")
_SECRET_FIELDS = frozenset({"key", "api_key", "apikey", "secret", "authorization", "access_token", "token"})
_SECRET_WORDS = re.compile(r"key|token|secret|passw|auth|credential|signature|session|cookie")
MIN_SECRET_CHARS = 8  # a shorter "credential" would cut ordinary words out of a recording


def key_prefix(secret: str) -> str:
    """What listings, the journal and logs show of a key (the gateway's own rule): never the whole of it."""
    return secret[: min(13, len(secret) // 2)] + "..."


def secret_name(name: str) -> bool:
    """A header or parameter whose name says it carries a credential (X-Forwarded-Key, api-key, token, ...)."""
    return _SECRET_WORDS.search(name.lower()) is not None


def mask_header(name: str, value: str) -> str:
    if not secret_name(name):
        return mask_keys(value)
    scheme, _, token = value.partition(" ")
    if token:
        return f"{scheme} {key_prefix(token)}"
    return key_prefix(value)


def mask_param(name: str, value: str) -> str:
    """A key sent in the query string is as secret as one in a header."""
    return key_prefix(value) if secret_name(name) or value.startswith("sk-") else mask_keys(as_text(value))


def mask_keys(text: str) -> str:
    """`text` with everything shaped like a key (sk-..., 12 characters or more after it) cut to
    its prefix. Costs one substring search when there is none."""
    if "sk-" not in text:
        return text
    return _KEY_LIKE.sub(_cut, text)


def mask_data(value: Any) -> Any:
    """JSON data with `mask_keys` applied to every string in it, names included."""
    if isinstance(value, str):
        return mask_keys(value)
    if isinstance(value, list):
        return [mask_data(v) for v in value]
    if isinstance(value, dict):
        return {mask_data(k) if isinstance(k, str) else k: mask_data(v) for k, v in value.items()}
    return value


def credentials(headers: Iterable[tuple[str, str]], query: Iterable[tuple[str, str]]) -> set[str]:
    """The credentials a request carries, in every form an answer may quote them: a header or
    query parameter named like one (its value; a scheme's token), and the keys in any value."""
    found: set[str] = set()
    for name, value in (*headers, *query):
        if secret_name(name):
            found.add(value.strip())
            token = value.strip().partition(" ")[2]
            found.add(token.strip())
            if name.lower() == "cookie":
                found.update(part.partition("=")[2].strip() for part in value.split(";"))
        found.update(_KEY_LIKE.findall(value))
    out: set[str] = set()
    for secret in found:
        if len(secret) >= MIN_SECRET_CHARS:
            out.update((secret, quote(secret, safe=""), quote(secret, safe="/"), secret.replace("/", "\\/")))
    return out


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
        return _redact_text(value, known)
    if isinstance(value, list):
        return [redact(v, known) for v in value]
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if _secret_field(k, v):
                prefix = value.get("key_prefix")
                v = prefix if k == "key" and isinstance(prefix, str) else key_prefix(v)
            out[redact(k, known) if isinstance(k, str) else k] = redact(v, known)
        return out
    return value


def _secret_field(name: Any, value: Any) -> bool:
    return (
        isinstance(value, str) and str(name).lower() in _SECRET_FIELDS and len(value) >= 12
        and not any(c.isspace() for c in value) and not value.endswith("...")
    )


def _cut(match: re.Match) -> str:
    return key_prefix(match.group(0))  # at most 13 characters: too short to be cut again


def _redact_text(text: str, secrets: tuple[str, ...]) -> str:
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, key_prefix(secret))
    text = mask_keys(text)
    if "bearer" not in text.lower():  # ten times cheaper than the case-blind search on a long text
        return text
    return _BEARER.sub(lambda m: m.group(0) if m.group(2).endswith("...") else m.group(1) + key_prefix(m.group(2)), text)
