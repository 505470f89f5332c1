"""The admin API under /__admin/ (WireMock's convention): health, the request
journal, reset, and the clock."""

from __future__ import annotations

import stat
from pathlib import Path

from aiohttp import web

from ..clock import iso
from ..errors import ApiError, ConfigError, invalid
from ..settings import parse_time
from ..tracing import STATE
from ..wire import json_response, read_json

MAX_ADVANCE_S = 100 * 366 * 86400  # a century: far enough, and the clock stays a date
MAX_SCENARIO_FILE_BYTES = 1024 * 1024


def add_routes(r: web.UrlDispatcher) -> None:
    r.add_get("/__admin/health", health, name="admin_health")
    r.add_get("/__admin/requests", list_requests, name="admin_requests")
    r.add_delete("/__admin/requests", clear_requests, name="admin_requests")
    r.add_post("/__admin/reset", reset, name="admin_reset")
    r.add_get("/__admin/scenarios", list_scenarios, name="admin_scenarios")
    r.add_put("/__admin/scenarios/active", activate_scenarios, name="admin_active_scenarios")
    r.add_get("/__admin/clock", get_clock, name="admin_clock")
    r.add_put("/__admin/clock", set_clock, name="admin_clock")


async def health(request: web.Request) -> web.Response:
    state = request.app[STATE]
    return json_response({"status": "ok", "seed": state.seed, "traces": len(state.traces), "requests": state.journal_count})


async def list_requests(request: web.Request) -> web.Response:
    state = request.app[STATE]
    return json_response({"requests": state.journal_entries(), "meta": {"total": state.journal_count}})


async def clear_requests(request: web.Request) -> web.Response:
    state = request.app[STATE]
    state.journal.clear()
    return json_response({"cleared": True})


async def reset(request: web.Request) -> web.Response:
    request.app[STATE].reset()
    return json_response({"reset": True})


async def list_scenarios(request: web.Request) -> web.Response:
    playbook = request.app[STATE].playbook
    return json_response({"active": playbook.describe(), "available": _files().shipped_scenarios()})


async def activate_scenarios(request: web.Request) -> web.Response:
    """Body: {"names": [name or path, ...]} or one inline scenario ({"name": ..., "rules": [...]})."""
    state = request.app[STATE]
    body = await read_json(request)
    codes = state.catalog.errors
    try:
        if isinstance(body, dict) and "names" in body:
            names = body["names"]
            if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
                raise invalid("names", "a list of scenario names or paths")
            for i, name in enumerate(names):
                _check_scenario_name(i, name)
            scenarios = _files().load_scenarios(names, codes)
        else:
            scenarios = [_files().parse_scenario(body, "<inline>", codes)]
    except ConfigError as e:
        raise ApiError("invalid_request", "Invalid scenario: " + "; ".join(e.problems)) from None
    state.activate(scenarios)
    return await list_scenarios(request)


def _check_scenario_name(index: int, name: str) -> None:
    """Over HTTP, a name is a shipped scenario or a scenario file, nothing else: the admin
    API has no key, and reading any path it is given would quote /etc/passwd in the error,
    walk a whole disk for a folder, or read /dev/zero until memory runs out."""
    shipped = _files().shipped_scenarios()
    if name in shipped:
        return
    path = Path(name)
    if path.suffix not in (".yaml", ".yml"):
        raise invalid(
            f"names[{index}]",
            f"a shipped scenario name or the path of a .yaml or .yml file; '{name}' is no shipped scenario "
            f"(shipped: {', '.join(shipped)})",
        )
    try:
        found = path.stat()
    except OSError:
        return  # no such file: loading says so, as for any other missing scenario
    if not stat.S_ISREG(found.st_mode) or found.st_size > MAX_SCENARIO_FILE_BYTES:
        raise invalid(f"names[{index}]", f"a scenario file (a regular file of at most {MAX_SCENARIO_FILE_BYTES} bytes)")


async def get_clock(request: web.Request) -> web.Response:
    clock = request.app[STATE].clock
    return json_response({"now": iso(clock.now()), "timestamp": clock.now(), "frozen": clock.frozen})


async def set_clock(request: web.Request) -> web.Response:
    """Body: {"time": ISO or Unix seconds, "frozen": bool} and/or {"advance": seconds}.
    Everything is checked before anything changes."""
    body = await read_json(request)
    if not isinstance(body, dict) or not ({"time", "advance"} & body.keys()):
        raise ApiError("invalid_request", "Expected {\"time\": \"2026-04-09T14:23:18Z\"} or {\"advance\": SECONDS}.")
    moment = None
    if "time" in body:
        try:
            moment = parse_time(body["time"])
        except (TypeError, ValueError):
            raise invalid("time", "an ISO 8601 time or Unix seconds between the years 1970 and 9999") from None
    frozen = body.get("frozen", True)
    if not isinstance(frozen, bool):
        raise invalid("frozen", "a boolean")
    seconds = body.get("advance", 0)
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not 0 <= seconds <= MAX_ADVANCE_S:
        raise invalid("advance", f"a number of seconds from 0 to {MAX_ADVANCE_S}")
    clock = request.app[STATE].clock
    if moment is not None:
        clock.set(moment, frozen)
    clock.advance(seconds)
    return await get_clock(request)


def _files():
    """The scenario-file machinery (YAML, validation), imported on first use:
    most servers never switch scenarios, and it is a tenth of the import time."""
    from .. import scenario_file

    return scenario_file
