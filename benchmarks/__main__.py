"""python -m benchmarks [--quick] [--only SECTION] [--loadgen auto|wrk|python] [--json FILE]

Prints one table: each measure's figure for mockpoeti, its baseline (the bare
aiohttp reference, or the baseline the measure names), the ratio, the target
(issue 10.6's, where it sets one) and PASS/FAIL. Exit status 0 whatever the figures (the benchmark reports, it
does not gate); 1 when a section could not run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import traceback
from pathlib import Path

from . import memory, metrics, pacing, profiling, sessions, stages, startup, state_scale, streaming, throughput
from .harness import Plan, Row, as_json, table

SECTIONS = {
    "throughput": throughput.run,
    "streaming": streaming.run,
    "pacing": pacing.run,
    "startup": startup.run,
    "state": state_scale.run,
    "memory": memory.run,
    "sessions": sessions.run,
    "profile": profiling.run,
    "metrics": metrics.run,
    "stages": stages.run,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description="mockpoeti against a bare aiohttp reference")
    parser.add_argument("--quick", action="store_true", help="a few seconds per section: the smoke test's run")
    parser.add_argument("--only", action="append", choices=list(SECTIONS), metavar="SECTION",
                        help=f"run only this section (repeatable): {', '.join(SECTIONS)}")
    parser.add_argument("--loadgen", choices=("auto", "wrk", "python"), default="auto",
                        help="wrk when installed (auto), or the aiohttp-client load generator")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    args = parser.parse_args(argv)

    plan = Plan.make(args.quick, args.loadgen)
    names = args.only or list(SECTIONS)
    print(f"mockpoeti benchmarks: {'quick (smoke; figures not comparable to targets)' if plan.quick else 'full'} run, "
          f"load generator {plan.loadgen}, Python {platform.python_version()}, {os.cpu_count()} cores, "
          f"load average {os.getloadavg()[0]:.2f} at the start", flush=True)
    rows: list[Row] = []
    failures: dict[str, str] = {}
    started = time.perf_counter()
    for name in names:
        section_start = time.perf_counter()
        try:
            found = SECTIONS[name](plan)
        except Exception:  # a section that cannot run is reported; the others still run
            failures[name] = traceback.format_exc()
            print(f"[{name}] ERROR\n{failures[name]}", file=sys.stderr, flush=True)
            continue
        rows.extend(found)
        print(f"[{name}] {len(found)} measures in {time.perf_counter() - section_start:.1f} s", flush=True)

    print()
    print(table(rows))
    for name in failures:
        print(f"{name:<10}  ERROR: {failures[name].strip().splitlines()[-1]}")
    if plan.loadgen == "python" and any(r.section in ("throughput", "streaming") for r in rows):
        print("note: load.py (aiohttp's client) drives from one Python core and may not saturate the bare server;"
              " ratios come out closer to 1 than wrk's")
    passed = sum(r.passed is True for r in rows)
    failed = sum(r.passed is False for r in rows)
    print(f"\n{passed} PASS, {failed} FAIL, {len(failures)} section errors, in {time.perf_counter() - started:.0f} s")
    if args.json:
        Path(args.json).write_text(json.dumps({
            "quick": plan.quick,
            "loadgen": plan.loadgen,
            "rows": [as_json(r) for r in rows],
            "errors": failures,
        }, indent=2, ensure_ascii=False), encoding="utf-8")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
