"""make_runner: one server around one State: the state, its sessions (`books/sessions.py`),
the routes, the pipeline every request goes through (`pipeline.py`), and the connection
edge (`edge.py`)."""

from __future__ import annotations

from aiohttp import web

from mockpoeti.base.catalog import Catalog, load_catalog
from mockpoeti.base.settings import Settings
from mockpoeti.books.sessions import Sessions
from mockpoeti.books.state import State
from mockpoeti.http.edge import MAX_HEADER_BYTES, Server
from mockpoeti.http.pipeline import Pipeline
from mockpoeti.http.routes import make_router
from mockpoeti.scripting.scenario import Scenario

# aiohttp waits this long for a handler to finish, then as long again after asking it to stop,
# before it cancels it: a paced stream never finishes early, so stopping takes twice this.
SHUTDOWN_TIMEOUT_S = 0.4


def make_state(settings: Settings | None = None) -> State:
    settings = settings or Settings()
    catalog = load_catalog(settings.fixtures)
    return State(catalog, settings, _scenarios(settings, catalog))


def make_runner(settings: Settings) -> tuple[State, Sessions, web.ServerRunner]:
    """The state, its sessions and a runner to serve them; called in the loop that will serve."""
    state = make_state(settings)
    sessions = Sessions(state)
    server = Server(
        Pipeline(state, make_router(sessions), sessions),
        state=state,
        header_timeout=settings.header_timeout_s,
        max_body_bytes=settings.max_body_bytes,
        keepalive_timeout=settings.keepalive_timeout_s,
        on_shutdown=lambda: close_feeds(state, sessions),
        access_log=None,  # the journal is the log; a line per request costs throughput
        max_field_size=MAX_HEADER_BYTES,  # so a huge header reaches us and gets a formatted error
        max_line_size=MAX_HEADER_BYTES,
    )
    return state, sessions, web.ServerRunner(server, shutdown_timeout=SHUTDOWN_TIMEOUT_S)


def close_feeds(state: State, sessions: Sessions) -> None:
    """The server is stopping: every open request-log page's feed ends now, not after the
    shutdown timeout (a feed never ends by itself)."""
    state.close_listeners()
    for session in sessions:
        session.state.close_listeners()


def _scenarios(settings: Settings, catalog: Catalog) -> list[Scenario]:
    if not settings.scenarios:
        return []  # no files: the YAML machinery need not even be imported
    from mockpoeti.scripting.loader import load_scenarios

    return load_scenarios(settings.scenarios, catalog.errors)
