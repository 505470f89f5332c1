"""Who is calling: `Authorization: Bearer KEY` -> key -> account; then the key's
rate limit and monthly budget for chat calls. Admin routes have their own token."""

from __future__ import annotations

import base64
import hmac

from mockpoeti.base.endpoints import CHAT
from mockpoeti.base.errors import ApiError
from mockpoeti.http.call import Call


def check_headers(call: Call) -> None:
    """Header values are text: bytes that are not UTF-8 are refused, not stored to break the journal.
    (In `Authorization` they make a key that does not exist: that is auth's 401.)"""
    if call.header_bytes.isascii():
        return  # the usual case, seen in one pass over the raw bytes
    for name, value in call.headers.items():
        if not value.isascii() and name.lower() != "authorization":
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                raise ApiError("invalid_request", f"The value of header '{_shown(name)}' is not valid UTF-8.") from None


def _shown(name: str) -> str:
    return name.encode("utf-8", "replace").decode("utf-8", "replace")[:64]


def authenticate(call: Call) -> None:
    """The caller's key, admitted (chat calls also pass its rate limit and budget), or `invalid_api_key`."""
    state = call.state
    sent = call.headers.getall("Authorization", ())
    key = state.keys_by_authorization.get(sent[0]) if len(sent) == 1 else None
    if key is None:
        key = state.find_key(bearer_token(sent))
        if key is None:
            raise ApiError("invalid_api_key", "The provided API key is invalid or has been revoked.")
        state.found_key(sent[0], key)
    call.key_seen = key  # a known key's failures are traced too
    if not key.is_active:
        raise ApiError("invalid_api_key", f"The API key '{key.prefix}' has been revoked.")
    if call.endpoint == CHAT:
        call.add_headers(state.admit(key))
    call.key = key


def bearer_token(values: list[str] | tuple[str, ...]) -> str:
    if not values:
        raise ApiError("invalid_api_key", "Missing API key. Send it as 'Authorization: Bearer YOUR_KEY'.")
    scheme, _, token = values[0].strip().partition(" ")
    token = token.strip()
    if len(values) > 1 or scheme.lower() != "bearer" or not token or " " in token:
        raise ApiError("invalid_api_key", "Malformed Authorization header; expected 'Authorization: Bearer YOUR_KEY'.")
    return token


def check_admin(call: Call) -> None:
    """With an admin token set, /__admin/ and /metrics need it: `X-Admin-Token`, or
    `Authorization: Bearer TOKEN` (any case), or HTTP Basic with the token as the password,
    which is what a browser sends once asked (`WWW-Authenticate`), page and live feed alike."""
    token = call.state.settings.admin_token
    if token is None:
        return
    given = call.headers.get("X-Admin-Token")
    if given is None:
        scheme, _, rest = call.headers.get("Authorization", "").strip().partition(" ")
        scheme = scheme.lower()
        given = rest.strip() if scheme == "bearer" else _basic_password(rest) if scheme == "basic" else ""
    if not hmac.compare_digest(given.encode("utf-8", "surrogateescape"), token.encode("utf-8", "surrogateescape")):
        raise ApiError(
            "invalid_api_key",
            "This admin API needs the server's admin token (X-Admin-Token header).",
            headers={"WWW-Authenticate": 'Basic realm="mockpoeti admin", charset="UTF-8"'},
        )


def _basic_password(credentials: str) -> str:
    """The password of `Basic base64(user:password)` (any user name), or "" if it is not that."""
    try:
        decoded = base64.b64decode(credentials.strip(), validate=True).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return ""
    return decoded.partition(":")[2]
