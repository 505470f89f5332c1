"""The session admin API, at the root only: `POST|GET|DELETE /__admin/sessions` and
`GET|DELETE /__admin/sessions/{session_id}`. What a session answers under
`/sessions/{id}/...` is the pipeline's business (`pipeline.py`); the registry is
`books/sessions.py`.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

from aiohttp import web

from mockpoeti.base.clock import iso
from mockpoeti.base.errors import ApiError, ConfigError, invalid
from mockpoeti.base.secrets import key_prefix, redact
from mockpoeti.base.settings import parse_time
from mockpoeti.books.ledger import clip
from mockpoeti.books.sessions import NO_SESSION, Session, Sessions
from mockpoeti.books.state import State
from mockpoeti.http.call import Call
from mockpoeti.http.router import Router
from mockpoeti.http.routes.admin import scenario_file, scenario_folders
from mockpoeti.http.wire import json_response
from mockpoeti.scripting.scenario import Scenario

OPTIONS = ("api_key", "clock", "scenario", "seed")
MAX_SESSION_SCENARIOS = 32  # names or inline scenarios in one session's `scenario`
# A Host header fit to be written into a URL (a name or IPv4 address, or [IPv6], and a port); anything else
# is replaced by the address the request came in on.
_HOST = re.compile(r"(?:[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?|\[[0-9A-Fa-f:.]{2,45}\])(?::[0-9]{1,5})?")


def add_routes(r: Router, live: Sessions) -> None:
    admin = SessionAdmin(live)
    r.add_post("/__admin/sessions", admin.create, name="admin_sessions")
    r.add_get("/__admin/sessions", admin.list_all, name="admin_sessions")
    r.add_delete("/__admin/sessions", admin.end_all, name="admin_sessions")
    r.add_get("/__admin/sessions/{session_id}", admin.get, name="admin_session")
    r.add_delete("/__admin/sessions/{session_id}", admin.end, name="admin_session")


class SessionAdmin:
    def __init__(self, live: Sessions) -> None:
        self.live = live

    async def create(self, call: Call) -> web.Response:
        """Body (optional): {"seed", "clock", "scenario": [names or inline scenarios], "api_key"}."""
        live = self._at_root(call)
        options = await session_options(call)
        session = live.create(**options)
        root_url = server_root(call.request) + session.prefix
        answer = {**describe(session, root_url), "api_key": session.api_key}  # the full key: shown here only
        return json_response(answer, status=201, headers={"Location": f"/__admin/sessions/{session.id}"})

    async def list_all(self, call: Call) -> web.Response:
        live = self._at_root(call)
        root = server_root(call.request)
        listed = [self._listing(session, root) for session in live]
        meta = {"total": len(listed), "max_sessions": live.limit, "ttl_s": live.ttl_s}
        return json_response({"sessions": listed, "meta": meta})

    async def get(self, call: Call) -> web.Response:
        return json_response(self._listing(self._session(call), server_root(call.request)))

    async def end(self, call: Call) -> web.Response:
        session = self._session(call)
        self.live.end(session.id)
        return json_response({**self._listing(session, server_root(call.request)), "ended": True})

    async def end_all(self, call: Call) -> web.Response:
        return json_response({"ended": self._at_root(call).end_all()})

    def _at_root(self, call: Call) -> Sessions:
        if call.state is not self.live.root:
            raise ApiError("not_found", "Sessions are made, listed and ended at the root (/__admin/sessions), not in one.")
        return self.live

    def _session(self, call: Call) -> Session:
        session = self._at_root(call).find(call.params["session_id"])
        if session is None:
            raise ApiError("not_found", NO_SESSION)
        return session

    def _listing(self, session: Session, root: str) -> dict:
        state = session.state
        return {
            **describe(session, root + session.prefix),
            "key_prefix": key_prefix(session.api_key),
            "idle_s": round(self.live.idle_s(session), 3),
            "requests": state.journal_count,
            "traces": len(state.traces),
        }


def describe(session: Session, root_url: str) -> dict:
    state = session.state
    return {
        "id": session.id,
        "root_url": root_url,
        "base_url": root_url + "/v1",
        "created_at": iso(session.created_at),
        "seed": state.seed,
        "clock": {"now": iso(state.clock.now()), "frozen": state.clock.frozen},
        "scenarios": state.playbook.names,
    }


def server_root(request: web.BaseRequest) -> str:
    """`http://HOST:PORT` as the client reached us (its Host header), so a session's URLs work
    whatever address the server is bound to; the address the request came in on when the
    Host header is missing or unfit for a URL."""
    host = request.headers.get("Host", "")
    if not _HOST.fullmatch(host):
        where = request.transport.get_extra_info("sockname") if request.transport is not None else None
        address, port = (where[0], where[1]) if where else ("127.0.0.1", 0)
        host = f"[{address}]:{port}" if ":" in address else f"{address}:{port}"
    return "http://" + host


async def session_options(call: Call) -> dict[str, Any]:
    """The body's options, checked (seed and api_key are checked by the registry)."""
    body = await call.json() if call.request.body_exists else None
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise ApiError("invalid_request", f"Expected a JSON object with any of {', '.join(OPTIONS)}.")
    for name in body:
        if name not in OPTIONS:
            shown = clip(str(redact(name)), 64)
            raise ApiError("invalid_request", f"Unknown session option '{shown}'; expected any of {', '.join(OPTIONS)}.")
    options: dict[str, Any] = {"seed": body.get("seed"), "api_key": body.get("api_key")}
    if body.get("clock") is not None:
        try:
            options["clock"] = parse_time(body["clock"])
        except (TypeError, ValueError, OverflowError):
            raise invalid("clock", "an ISO 8601 time or Unix seconds between the years 1970 and 9899") from None
    if body.get("scenario") is not None:  # read in a worker thread, as PUT /__admin/scenarios/active reads them
        options["scenarios"] = await asyncio.to_thread(load_scenario_items, body["scenario"], call.state)
    return options


def load_scenario_items(items: Any, state: State) -> list[Scenario]:
    """Scenarios by name (shipped, or a file in a folder the server was started with: the
    same rule as `PUT /__admin/scenarios/active`) or inline, in the order given."""
    from mockpoeti.scripting import loader  # the YAML machinery, on first use

    if isinstance(items, (str, dict)):
        items = [items]
    if not isinstance(items, list) or len(items) > MAX_SESSION_SCENARIOS:
        raise invalid("scenario", f"a list of at most {MAX_SESSION_SCENARIOS} scenario names or inline scenarios")
    codes = state.catalog.errors
    allowed = scenario_folders(state.settings) if any(isinstance(item, str) for item in items) else []
    loaded: list[Scenario] = []
    files: dict[str, list[Scenario]] = {}  # a name given twice is read once
    try:
        for i, item in enumerate(items):
            if isinstance(item, str):
                if item not in files:
                    files[item] = loader.load_scenarios([scenario_file(i, item, allowed, "scenario")], codes)
                loaded.extend(files[item])
            elif isinstance(item, dict):
                loaded.append(loader.parse_scenario(item, f"<scenario[{i}]>", codes))
            else:
                raise invalid(f"scenario[{i}]", "a scenario name or path, or an inline scenario (an object)")
        loader.limit_rules(loaded)
    except ConfigError as e:
        raise ApiError("invalid_request", "Invalid scenario: " + "; ".join(e.problems)) from None
    return loaded
