"""Resident memory of the server process: idle, at the heavy paced-stream load, and
how it grows over many chat calls with the default caps and with small ones."""

from __future__ import annotations

import time

from .harness import Plan, Row, at_most, info, ratio_row
from .pacing import paced_servers, stream_load
from .processes import PeakRss, Server, call, load_count, mockpoeti_serve, rss_mb
from .streaming import check_frames, stream_request
from .throughput import CHAT, NEW_PROMPT, PATH

SECTION = "memory"
IDLE_LIMIT_MB = 60.0
SETTLE_S = 0.3
SMALL_CAPS = ("--max-traces", "1000", "--max-journal", "100")  # as tests/test_reliability.py's long run
GROWTH_CONNECTIONS = 20


def idle_rss(server: Server) -> float:
    """RSS after startup and one chat call (what a first call loads lazily counts)."""
    status, body = call(server.url, "POST", PATH, CHAT, server.api_key)
    if status != 200:
        raise RuntimeError(f"{server.name} answered {status}: {body[:300]!r}")
    time.sleep(SETTLE_S)
    return rss_mb(server.pid)


def growth_mb(plan: Plan, *caps: str) -> tuple[float, float]:
    """RSS after a fifth of `plan.growth_requests` chat calls (new prompts), and its growth over
    the rest (MB)."""
    first = plan.growth_requests // 5
    with Server("mockpoeti", mockpoeti_serve(*caps)) as server:
        done = load_count(server, PATH, NEW_PROMPT, GROWTH_CONNECTIONS, first)
        start = rss_mb(server.pid)
        rest = load_count(server, PATH, NEW_PROMPT, GROWTH_CONNECTIONS, plan.growth_requests - first)
        end = rss_mb(server.pid)
    if done.errors or rest.errors:
        raise RuntimeError(f"{done.errors + rest.errors} chat calls failed in the growth run {caps}")
    return start, end - start


def run(plan: Plan) -> list[Row]:
    heavy = plan.paced_streams_heavy
    peaks: dict[str, float] = {}
    idle: dict[str, float] = {}
    with paced_servers(plan) as (servers, paths):
        for server in servers:
            idle[server.name] = idle_rss(server)
            check_frames(server, paths[server.name], stream_request(plan.paced_chunks), plan.paced_chunks + 3)
        for server in servers:
            with PeakRss(server.pid) as peak:
                load = stream_load(plan, server, paths[server.name], heavy, plan.paced_seconds / 2)
            if load.ok == 0:
                raise RuntimeError(f"{server.name}: no stream of {heavy} completed")
            peaks[server.name] = peak.peak
    n, first = plan.growth_requests, plan.growth_requests // 5
    default_start, default_growth = growth_mb(plan)
    small_start, small_growth = growth_mb(plan, *SMALL_CAPS)
    return [
        at_most(f"{SECTION}.idle", SECTION, "idle RSS (after startup and one chat call)",
                idle["mockpoeti"], IDLE_LIMIT_MB, "MB", idle["bare"]),
        ratio_row(f"{SECTION}.heavy", SECTION, f"peak RSS, {heavy} concurrent paced streams",
                  peaks["mockpoeti"], peaks["bare"], "MB", at_most=1.3),
        info(f"{SECTION}.growth_default", SECTION,
             f"RSS growth from {first:,} to {n:,} chat calls, default caps ({default_start:.1f} MB at {first:,})",
             default_growth, "MB"),
        info(f"{SECTION}.growth_capped", SECTION,
             f"the same with {' '.join(SMALL_CAPS)} ({small_start:.1f} MB at {first:,})", small_growth, "MB"),
    ]
