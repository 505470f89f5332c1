"""Paced streaming: content chunks due at absolute deadlines (send + i x interval).

At the normal load, lateness and drift have absolute limits. At the heavy load
both servers fall behind a little; mockpoeti must not fall further behind than
the bare reference that paces the same way, and must not drop a stream.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from .harness import Plan, Row, at_most, info, ratio_row, zero
from .processes import Load, Server, load_streams, mockpoeti_serve, reference_serve
from .streaming import PATH, check_frames, stream_request, stream_scenario

SECTION = "pacing"
LATENESS_LIMIT_MS = 5.0
DRIFT_LIMIT_MS = 5.0
HEAVY_NOISE = 1.1  # "no worse than bare", give or take the run-to-run noise of a p99


def paced_servers(folder: Path, plan: Plan) -> tuple[Server, Server, dict[str, str]]:
    scenario = stream_scenario(folder, plan.paced_chunks, plan.paced_interval_ms)
    paths = {
        "bare": f"/sse/paced?chunks={plan.paced_chunks}&interval={plan.paced_interval_ms:g}&first=0",
        "mockpoeti": PATH,
    }
    return Server("bare", reference_serve()), Server("mockpoeti", mockpoeti_serve("--scenario", str(scenario))), paths


def stream_load(plan: Plan, server: Server, path: str, streams: int, seconds: float) -> Load:
    """`streams` clients, their first streams staggered over one stream's length so the
    load is steady, streaming back to back for `seconds` after that."""
    ramp = plan.paced_chunks * plan.paced_interval_ms / 1000
    return load_streams(server, path, stream_request(plan.paced_chunks), streams=streams, chunks=plan.paced_chunks,
                        interval_ms=plan.paced_interval_ms, seconds=seconds, ramp=ramp)


def _p99_lateness(load: Load) -> float:
    p99 = load.detail["lateness_ms"]["p99"]
    return float("inf") if p99 is None else p99


def run(plan: Plan) -> list[Row]:
    n, heavy, chunks, every = plan.paced_streams, plan.paced_streams_heavy, plan.paced_chunks, plan.paced_interval_ms
    runs: dict[tuple[str, int], list[Load]] = {}
    with tempfile.TemporaryDirectory(prefix="mockpoeti-bench-") as folder:
        bare, mock, paths = paced_servers(Path(folder), plan)
        with bare, mock:
            for server in (bare, mock):
                check_frames(server, paths[server.name], stream_request(chunks), chunks + 3)
            for streams in (n, heavy):
                for _ in range(plan.rounds):
                    for server in (bare, mock):
                        load = stream_load(plan, server, paths[server.name], streams, plan.paced_seconds)
                        runs.setdefault((server.name, streams), []).append(load)
    # Each server's best run (lowest p99 lateness) speaks for it; errors count from every run.
    results = {key: min(loads, key=_p99_lateness) for key, loads in runs.items()}
    failed = {key: sum(load.errors for load in loads) for key, loads in runs.items()}

    def p99(name: str, streams: int, measure: str) -> float:
        value = results[name, streams].detail[measure]["p99"]
        if value is None:
            raise RuntimeError(f"{name}: no stream of {streams} completed")
        return value

    m = results["mockpoeti", n]
    mh, bh = results["mockpoeti", heavy], results["bare", heavy]
    return [
        at_most(f"{SECTION}.lateness", SECTION,
                f"p99 chunk lateness, {n} streams, a chunk every {every:g} ms (best of {plan.rounds})",
                p99("mockpoeti", n, "lateness_ms"), LATENESS_LIMIT_MS, "ms", p99("bare", n, "lateness_ms")),
        at_most(f"{SECTION}.drift", SECTION, f"p99 drift over {chunks} chunks, {n} streams",
                p99("mockpoeti", n, "drift_ms"), DRIFT_LIMIT_MS, "ms", p99("bare", n, "drift_ms")),
        info(f"{SECTION}.first_chunk", SECTION, f"p99 first-chunk lateness (send to chunk 0), {n} streams",
             p99("mockpoeti", n, "first_chunk_lateness_ms"), "ms", p99("bare", n, "first_chunk_lateness_ms")),
        zero(f"{SECTION}.errors", SECTION, f"errors, {n} streams ({m.ok:,} streams in the best run)",
             failed["mockpoeti", n], failed["bare", n]),
        zero(f"{SECTION}.heavy_errors", SECTION, f"errors, {heavy} streams ({mh.ok:,} streams in the best run)",
             failed["mockpoeti", heavy], failed["bare", heavy]),
        ratio_row(f"{SECTION}.heavy_lateness", SECTION, f"p99 chunk lateness, {heavy} streams",
                  p99("mockpoeti", heavy, "lateness_ms"), p99("bare", heavy, "lateness_ms"), "ms", at_most=HEAVY_NOISE),
        info(f"{SECTION}.heavy_drift", SECTION, f"p99 drift over {chunks} chunks, {heavy} streams",
             p99("mockpoeti", heavy, "drift_ms"), "ms", p99("bare", heavy, "drift_ms")),
        info(f"{SECTION}.heavy_cpu", SECTION,
             f"server CPU, {heavy} streams (client: {mh.client_cpu_s / mh.seconds:.2f} / {bh.client_cpu_s / bh.seconds:.2f})",
             mh.server_cpu_s / mh.seconds, "cores", bh.server_cpu_s / bh.seconds),
    ]
