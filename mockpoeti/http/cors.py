"""CORS, so a browser dashboard on another origin can use the twin as it would the API."""

from __future__ import annotations

from typing import Final

from aiohttp import hdrs, web

EXPOSED: Final = (
    "X-Trace-ID, x-request-id, Retry-After, "
    "x-ratelimit-limit-requests, x-ratelimit-remaining-requests, x-ratelimit-reset-requests"
)


def is_preflight(request: web.BaseRequest) -> bool:
    return request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers


def preflight(request: web.BaseRequest) -> web.Response:
    """Any origin may call: the answer names the asking origin, so caches must keep one per origin."""
    return web.Response(status=204, headers={
        "Access-Control-Allow-Origin": request.headers.get("Origin", "*"),
        "Access-Control-Allow-Methods": "GET, POST, PUT, DELETE, OPTIONS",
        "Access-Control-Allow-Headers": request.headers.get("Access-Control-Request-Headers", "*"),
        "Access-Control-Max-Age": "600",
        "Vary": "Origin, Access-Control-Request-Method, Access-Control-Request-Headers",
    })


def allow_origin(response: web.StreamResponse) -> None:
    """Every answer may be read by any origin (unless a scenario said otherwise)."""
    response.headers.setdefault(hdrs.ACCESS_CONTROL_ALLOW_ORIGIN, "*")
    response.headers.setdefault(hdrs.ACCESS_CONTROL_EXPOSE_HEADERS, EXPOSED)
