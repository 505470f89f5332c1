"""Resident memory of the server process: idle, and at the heavy paced-stream load."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from .harness import Plan, Row, at_most, ratio_row
from .pacing import paced_servers, stream_load
from .processes import PeakRss, Server, call, rss_mb
from .streaming import check_frames, stream_request
from .throughput import CHAT, PATH

SECTION = "memory"
IDLE_LIMIT_MB = 60.0
SETTLE_S = 0.3


def idle_rss(server: Server) -> float:
    """RSS after startup and one chat call (what a first call loads lazily counts)."""
    status, body = call(server.url, "POST", PATH, CHAT, server.api_key)
    if status != 200:
        raise RuntimeError(f"{server.name} answered {status}: {body[:300]!r}")
    time.sleep(SETTLE_S)
    return rss_mb(server.pid)


def run(plan: Plan) -> list[Row]:
    heavy = plan.paced_streams_heavy
    peaks: dict[str, float] = {}
    idle: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="mockpoeti-bench-") as folder:
        bare, mock, paths = paced_servers(Path(folder), plan)
        with bare, mock:
            for server in (bare, mock):
                idle[server.name] = idle_rss(server)
                check_frames(server, paths[server.name], stream_request(plan.paced_chunks), plan.paced_chunks + 3)
            for server in (bare, mock):
                with PeakRss(server.pid) as peak:
                    load = stream_load(plan, server, paths[server.name], heavy, plan.paced_seconds / 2)
                if load.ok == 0:
                    raise RuntimeError(f"{server.name}: no stream of {heavy} completed")
                peaks[server.name] = peak.peak
    return [
        at_most(f"{SECTION}.idle", SECTION, "idle RSS (after startup and one chat call)",
                idle["mockpoeti"], IDLE_LIMIT_MB, "MB", idle["bare"]),
        ratio_row(f"{SECTION}.heavy", SECTION, f"peak RSS, {heavy} concurrent paced streams",
                  peaks["mockpoeti"], peaks["bare"], "MB", at_most=1.3),
    ]
