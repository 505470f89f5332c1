"""Who is calling: `Authorization: Bearer KEY` -> key -> account; then the key's
rate limit and monthly budget for chat calls. Admin routes have their own token."""

from __future__ import annotations

import hmac

from aiohttp import web

from .errors import ApiError
from .metering import TRACE
from .state import ApiKey, key_prefix
from .tracing import EXTRA_HEADERS, STATE

API_KEY = web.RequestKey("mockpoeti.api_key", ApiKey)
PUBLIC_ROUTES = frozenset({"openapi"})


@web.middleware
async def authenticate(request: web.Request, handler) -> web.StreamResponse:
    route = request.match_info.route.name
    state = request.app[STATE]
    if route is None:  # no such path or method: a 404/405 (unless a scenario answers it)
        return await handler(request)
    if route.startswith("admin"):
        _check_admin(request, state.settings.admin_token)
        return await handler(request)
    if route in PUBLIC_ROUTES:
        return await handler(request)
    key = state.find_key(bearer_token(request))
    if key is None:
        raise ApiError("invalid_api_key", "The provided API key is invalid or has been revoked.")
    trace = request.get(TRACE)
    if trace is not None:  # a known key's failures are traced too
        trace.account, trace.key_id, trace.key_prefix = key.account, key.id, key_prefix(key.secret)
    if not key.is_active:
        raise ApiError("invalid_api_key", f"The API key '{key_prefix(key.secret)}' has been revoked.")
    request[API_KEY] = key
    if route == "chat":
        request[EXTRA_HEADERS] = state.admit(key)
    return await handler(request)


def bearer_token(request: web.Request) -> str:
    values = request.headers.getall("Authorization", [])
    if not values:
        raise ApiError("invalid_api_key", "Missing API key. Send it as 'Authorization: Bearer YOUR_KEY'.")
    scheme, _, token = values[0].strip().partition(" ")
    token = token.strip()
    if len(values) > 1 or scheme.lower() != "bearer" or not token or " " in token:
        raise ApiError("invalid_api_key", "Malformed Authorization header; expected 'Authorization: Bearer YOUR_KEY'.")
    return token


def _check_admin(request: web.Request, token: str | None) -> None:
    if token is None:
        return
    given = request.headers.get("X-Admin-Token") or request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
    if not hmac.compare_digest(given.encode("utf-8", "surrogateescape"), token.encode("utf-8", "surrogateescape")):
        raise ApiError("invalid_api_key", "This admin API needs the server's admin token (X-Admin-Token header).")
