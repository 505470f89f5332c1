"""The admin API under /__admin/ (WireMock's convention): health, the request
journal, reset, scenarios, stubs, and the clock."""

from __future__ import annotations

import asyncio
import stat
from pathlib import Path
from typing import TYPE_CHECKING

from aiohttp import web

from mockpoeti.base.clock import iso
from mockpoeti.base.errors import ApiError, ConfigError, invalid
from mockpoeti.base.jsonio import encode
from mockpoeti.base.settings import LATEST, Settings, parse_time
from mockpoeti.books.journal import MAX_LISTING_ENTRIES, page
from mockpoeti.http.call import Call
from mockpoeti.http.params import ascii_digits, int_param
from mockpoeti.http.router import Router
from mockpoeti.http.wire import json_response

if TYPE_CHECKING:
    from mockpoeti.scripting.matching import Stub

MAX_ADVANCE_S = 100 * 366 * 86400  # a century: far enough, and the clock stays a date
LAST_MOMENT = LATEST - MAX_ADVANCE_S  # what parse_time accepts: early in the year 9899
MAX_SCENARIO_FILE_BYTES = 1024 * 1024
MAX_NAME_CHARS = 1024


def add_routes(r: Router) -> None:
    r.add_get("/__admin/health", health, name="admin_health")
    r.add_get("/__admin/requests", list_requests, name="admin_requests")
    r.add_delete("/__admin/requests", clear_requests, name="admin_requests")
    r.add_post("/__admin/reset", reset, name="admin_reset")
    r.add_get("/__admin/scenarios", list_scenarios, name="admin_scenarios")
    r.add_put("/__admin/scenarios/active", activate_scenarios, name="admin_active_scenarios")
    r.add_get("/__admin/clock", get_clock, name="admin_clock")
    r.add_put("/__admin/clock", set_clock, name="admin_clock")
    r.add_get("/__admin/stubs", list_stubs, name="admin_stubs")
    r.add_post("/__admin/stubs", create_stub, name="admin_stubs")
    r.add_delete("/__admin/stubs", delete_stubs, name="admin_stubs")
    r.add_get("/__admin/stubs/{stub_id}", get_stub, name="admin_stub")
    r.add_delete("/__admin/stubs/{stub_id}", delete_stub, name="admin_stub")


async def health(call: Call) -> web.Response:
    state = call.state
    return json_response({"status": "ok", "seed": state.seed, "traces": len(state.traces), "requests": state.journal_count})


async def list_requests(call: Call) -> web.Response:
    """The journal a page at a time, oldest first: `since` (an id: the entries after it) and
    `limit`; a page holds at most MAX_LISTING_BYTES of JSON. `meta.next_since` is where the
    next page starts (None when this one reaches the newest entry)."""
    state = call.state
    since = int_param(call.query, "since", 0, 0, 10**18)
    limit = int_param(call.query, "limit", None, 1, MAX_LISTING_ENTRIES)
    assert since is not None
    entries, next_since = page(state.journal, since, limit)
    meta = {"total": state.journal_count, "returned": len(entries), "next_since": next_since}
    body = b'{"requests":[' + b",".join(entries) + b'],"meta":' + encode(meta) + b"}"
    return web.Response(body=body, content_type="application/json")


async def clear_requests(call: Call) -> web.Response:
    call.state.clear_journal()
    return json_response({"cleared": True})


async def reset(call: Call) -> web.Response:
    call.state.reset()
    return json_response({"reset": True})


async def list_scenarios(call: Call) -> web.Response:
    playbook = call.state.playbook
    return json_response({"active": playbook.describe(), "available": _files().shipped_scenarios()})


async def activate_scenarios(call: Call) -> web.Response:
    """Body: {"names": [name or path, ...]} or one inline scenario ({"name": ..., "rules": [...]}).
    Files are read and checked in a worker thread: a load of thousands of rules (MAX_RULES)
    takes a second or two, and other clients are answered meanwhile."""
    state = call.state
    body = await call.json()
    codes = state.catalog.errors
    try:
        if isinstance(body, dict) and "names" in body:
            names = body["names"]
            if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
                raise invalid("names", "a list of scenario names or paths")
            allowed = scenario_folders(state.settings)
            files = [scenario_file(i, name, allowed) for i, name in enumerate(names)]
            scenarios = await asyncio.to_thread(_files().load_scenarios, files, codes)
        else:
            scenarios = [await asyncio.to_thread(_files().parse_scenario, body, "<inline>", codes)]
    except ConfigError as e:
        raise ApiError("invalid_request", "Invalid scenario: " + "; ".join(e.problems)) from None
    state.activate(scenarios)
    return await list_scenarios(call)


def scenario_folders(settings: Settings) -> list[Path]:
    """Where the admin API may read scenario files: the folders of the scenario files the
    server was started with (or the folders given as scenarios), `scenario_dirs`, and the
    shipped scenarios' folder. Symlinks resolved, so a link cannot lead out of them."""
    folders = [_files().shipped_dir("scenarios"), *map(Path, settings.scenario_dirs)]
    for name in settings.scenarios:
        path = Path(name)
        if path.is_dir():
            folders.append(path)
        elif path.suffix in (".yaml", ".yml") or path.is_file():
            folders.append(path.parent)
    out = []
    for folder in folders:
        try:
            out.append(folder.resolve())
        except (OSError, RuntimeError):
            continue
    return out


def scenario_file(index: int, name: str, allowed: list[Path], listed: str = "names") -> str:
    """Over HTTP, a name is a shipped scenario or a scenario file in a folder the server was
    started with, nothing else: the admin API has no key, and reading any path it is given
    would quote /etc/passwd in the error, tell which files exist, walk a whole disk for a
    folder, or read /dev/zero until memory runs out. Every path outside those folders gets
    the same answer, whatever is there (or not)."""
    field = f"{listed}[{index}]"
    if not 0 < len(name) <= MAX_NAME_CHARS or not name.isprintable():
        raise invalid(field, f"a scenario name or path: 1 to {MAX_NAME_CHARS} printable characters")
    shipped = _files().shipped_scenarios()
    if name in shipped:
        return name
    where = "a shipped scenario name or the path of a .yaml or .yml file in a folder the server was started with"
    path = Path(name)
    if path.suffix not in (".yaml", ".yml"):
        raise invalid(field, f"{where}; '{name}' is no shipped scenario (shipped: {', '.join(shipped)})")
    try:
        resolved = path.resolve()
    except (OSError, RuntimeError):  # a symlink loop
        resolved = None
    if resolved is None or not any(resolved.is_relative_to(folder) for folder in allowed):
        raise invalid(field, f"{where}; '{name}' is not in one")
    try:
        found = resolved.stat()
    except OSError:
        return str(resolved)  # no such file: loading says so, as for any other missing scenario
    if not stat.S_ISREG(found.st_mode) or found.st_size > MAX_SCENARIO_FILE_BYTES:
        raise invalid(field, f"a scenario file (a regular file of at most {MAX_SCENARIO_FILE_BYTES} bytes)")
    return str(resolved)


async def get_clock(call: Call) -> web.Response:
    clock = call.state.clock
    return json_response({"now": iso(clock.now()), "timestamp": clock.now(), "frozen": clock.frozen})


async def set_clock(call: Call) -> web.Response:
    """Body: {"time": ISO or Unix seconds, "frozen": bool} and/or {"advance": seconds}.
    Everything is checked before anything changes."""
    body = await call.json()
    if not isinstance(body, dict) or not ({"time", "advance"} & body.keys()):
        raise ApiError("invalid_request", "Expected {\"time\": \"2026-04-09T14:23:18Z\"} or {\"advance\": SECONDS}.")
    moment = None
    if "time" in body:
        try:
            moment = parse_time(body["time"])
        except (TypeError, ValueError, OverflowError):
            raise invalid("time", "an ISO 8601 time or Unix seconds between the years 1970 and 9899") from None
    frozen = body.get("frozen", True)
    if not isinstance(frozen, bool):
        raise invalid("frozen", "a boolean")
    seconds = body.get("advance", 0)
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not 0 <= seconds <= MAX_ADVANCE_S:
        raise invalid("advance", f"a number of seconds from 0 to {MAX_ADVANCE_S}")
    clock = call.state.clock
    start = clock.now() if moment is None else moment
    if start + seconds >= LAST_MOMENT:
        raise invalid("advance", f"a number of seconds that keeps the clock before {iso(LAST_MOMENT)}, the year 9899 "
                                 f"less a century of headroom (at most {max(0, int(LAST_MOMENT - start) - 1)} from {iso(start)})")
    if moment is not None:
        clock.set(moment, frozen)
    clock.advance(seconds)
    return await get_clock(call)


# --- stubs: one rule each, tried before the scenarios' (WireMock's stub mappings) ----------

async def list_stubs(call: Call) -> web.Response:
    stubs = [stub.to_json() for stub in call.state.playbook.stubs.newest_first()]
    return json_response({"stubs": stubs, "meta": {"total": len(stubs)}})


async def create_stub(call: Call) -> web.Response:
    """Body: {"match": {...}, "respond": ..., "times": N} (and an optional "name")."""
    state = call.state
    body = await call.json()
    try:
        rule, spec = _files().parse_stub(body, state.catalog.errors)
        stub = state.playbook.stubs.add(rule, spec)
    except ConfigError as e:
        raise ApiError("invalid_request", "Invalid stub: " + "; ".join(e.problems)) from None
    return json_response(stub.to_json(), status=201, headers={"Location": f"{call.prefix}/__admin/stubs/{stub.id}"})


async def delete_stubs(call: Call) -> web.Response:
    return json_response({"deleted": call.state.playbook.stubs.clear()})


async def get_stub(call: Call) -> web.Response:
    return json_response(_stub(call).to_json())


async def delete_stub(call: Call) -> web.Response:
    stub = _stub(call)
    call.state.playbook.stubs.remove(stub.id)
    return json_response(stub.to_json())


def _stub(call: Call) -> Stub:
    raw = call.params["stub_id"]
    stub = call.state.playbook.stubs.get(int(raw)) if ascii_digits(raw) else None
    if stub is None:
        raise ApiError("not_found", f"No stub with id '{raw[:40]}'.")
    return stub


def _files():
    """The scenario-file machinery (YAML, validation), imported on first use:
    most servers never switch scenarios, and it is a tenth of the import time."""
    from mockpoeti.scripting import loader

    return loader
