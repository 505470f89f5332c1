"""What a run is asked to do (Plan) and what it found (Row), and the table they make."""

from __future__ import annotations

import shutil
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Plan:
    """How long and how big each section runs: the full benchmark, or the smoke test's quick one."""

    quick: bool
    loadgen: str  # "wrk" or "python"
    seconds: float  # per measured load run
    warmup_seconds: float
    rounds: int  # load runs per server, alternating bare and mockpoeti; the best counts
    connections: int
    stream_chunks: int
    paced_streams: int
    paced_streams_heavy: int
    paced_chunks: int
    paced_interval_ms: float
    paced_seconds: float
    startup_runs: int
    traces: int
    rules: int
    decide_calls: int
    timed_requests: int  # per endpoint, for the state-scale medians
    growth_requests: int  # chat calls per server in memory's growth runs
    profile_requests: int  # chat calls per server under cProfile (benchmarks/profile.py)

    @classmethod
    def make(cls, quick: bool, loadgen: str = "auto") -> Plan:
        if loadgen == "auto":
            loadgen = "wrk" if shutil.which("wrk") else "python"
        if quick:
            return cls(
                quick=True, loadgen=loadgen, seconds=1.0, warmup_seconds=0.0, rounds=1, connections=20,
                stream_chunks=100, paced_streams=20, paced_streams_heavy=50, paced_chunks=20,
                paced_interval_ms=10.0, paced_seconds=0.5, startup_runs=1, traces=10_000, rules=100,
                decide_calls=2_000, timed_requests=5, growth_requests=1_000, profile_requests=300,
            )
        return cls(
            quick=False, loadgen=loadgen, seconds=5.0, warmup_seconds=1.0, rounds=3, connections=50,
            stream_chunks=100, paced_streams=100, paced_streams_heavy=500, paced_chunks=100,
            paced_interval_ms=10.0, paced_seconds=4.0, startup_runs=5, traces=100_000, rules=1_000,
            decide_calls=20_000, timed_requests=20, growth_requests=100_000, profile_requests=10_000,
        )


@dataclass(frozen=True)
class Row:
    key: str  # stable id, e.g. "throughput.rps"
    section: str
    label: str
    value: float | None
    unit: str
    baseline: float | None = None  # the bare reference, or another baseline named in the label
    ratio: float | None = None  # value / baseline, when the target is a ratio or it helps reading
    target: str = ""  # e.g. "≥ 0.85x bare"; empty for figures that are only measured
    passed: bool | None = None  # None: no target

    @property
    def result(self) -> str:
        return "info" if self.passed is None else ("PASS" if self.passed else "FAIL")


def at_most(key: str, section: str, label: str, value: float, limit: float, unit: str, baseline: float | None = None) -> Row:
    return Row(key, section, label, value, unit, baseline, None, f"≤ {fmt(limit, unit)}", value <= limit)


def ratio_row(
    key: str, section: str, label: str, value: float, baseline: float, unit: str, *,
    at_least: float | None = None, at_most: float | None = None,
) -> Row:
    ratio = value / baseline if baseline else float("inf")
    if at_least is not None:
        return Row(key, section, label, value, unit, baseline, ratio, f"≥ {at_least:g}x", ratio >= at_least)
    if at_most is not None:
        return Row(key, section, label, value, unit, baseline, ratio, f"≤ {at_most:g}x", ratio <= at_most)
    return Row(key, section, label, value, unit, baseline, ratio)


def zero(key: str, section: str, label: str, value: int, baseline: int | None = None) -> Row:
    return Row(key, section, label, value, "count", baseline, None, "= 0", value == 0)


def info(
    key: str, section: str, label: str, value: float | None, unit: str, baseline: float | None = None, ratio: float | None = None
) -> Row:
    return Row(key, section, label, value, unit, baseline, ratio)


def fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "count":
        return f"{int(value):,}"
    if unit == "req/s":
        return f"{value:,.0f}/s"
    if unit == "ms":
        return f"{value:.3g} ms" if value < 10 else f"{value:,.0f} ms"
    if unit == "us":
        return f"{value:.3g} µs" if value < 100 else f"{value:,.0f} µs"
    if unit == "MB":
        return f"{value:.1f} MB"
    if unit == "B":
        return f"{value:,.0f} B"
    return f"{value:.2f} {unit}"


HEADINGS = ("section", "measure", "mockpoeti", "baseline", "ratio", "target", "result")


def table(rows: list[Row]) -> str:
    cells = [HEADINGS] + [
        (
            r.section,
            r.label,
            fmt(r.value, r.unit),
            fmt(r.baseline, r.unit),
            "-" if r.ratio is None else f"{r.ratio:.2f}x",
            r.target or "-",
            r.result,
        )
        for r in rows
    ]
    widths = [max(len(c[i]) for c in cells) for i in range(len(HEADINGS))]
    right = {2, 3, 4}
    lines = []
    for n, c in enumerate(cells):
        aligned = (s.rjust(w) if i in right else s.ljust(w) for i, (s, w) in enumerate(zip(c, widths, strict=True)))
        lines.append("  ".join(aligned).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def as_json(row: Row) -> dict:
    return {**asdict(row), "result": row.result}
