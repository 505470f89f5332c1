"""make_app: one aiohttp application around one State.

The middleware order is the request's path: (CORS preflights answered first) tracing (trace id, error format,
journal) -> metering (chat calls become traces) -> auth (key, account, limits)
-> scripting (does a scenario rule answer?) -> the route's handler.
"""

from __future__ import annotations

from aiohttp import web

from .auth import authenticate
from .catalog import load_catalog
from .cors import answer_preflight
from .metering import meter_chat_calls
from .routes import add_routes
from .scripting import follow_scenarios
from .settings import Settings
from .state import State
from .tracing import STATE, trace_requests


def make_app(settings: Settings | None = None) -> web.Application:
    settings = settings or Settings()
    catalog = load_catalog(settings.fixtures)
    state = State(catalog, settings, _scenarios(settings, catalog))
    app = web.Application(
        middlewares=[answer_preflight, trace_requests, meter_chat_calls, authenticate, follow_scenarios],
        client_max_size=settings.max_body_bytes,
    )
    app[STATE] = state
    add_routes(app)
    return app


def _scenarios(settings: Settings, catalog) -> list:
    if not settings.scenarios:
        return []  # no files: the YAML machinery need not even be imported
    from .scenario_file import load_scenarios

    return load_scenarios(settings.scenarios, catalog.errors)
