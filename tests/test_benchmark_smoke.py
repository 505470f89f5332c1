"""The benchmark suite still runs: `python -m benchmarks --quick`, section by section,
every measure in its table.

No timing is asserted here (the quick figures mean nothing); the full run is
`python -m benchmarks`.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
TIMEOUT_S = 120

pytestmark = pytest.mark.skipif(not (ROOT / "benchmarks").is_dir(), reason="the benchmarks are in a checkout, not in the sdist")

MEASURES = {
    "throughput": ["rps", "rps_new_prompt", "scenario_miss", "stubs_miss", "errors", "cpu"],
    "streaming": ["time", "cpu", "errors"],
    "pacing": ["lateness", "drift", "first_chunk", "errors", "heavy_errors", "heavy_lateness", "heavy_drift", "heavy_cpu",
               "heavy_untuned_gc"],
    "startup": ["serve", "serve_cpu", "ready", "interpreter", "import", "import_cpu", "import_lazy", "server_up", "reset",
                "reset_scenario"],
    "state": ["usage", "stats", "list", "trace_bytes", "record", "scenario_load", "match_flat", "match_anywhere",
              "match_unanswered"],
    "memory": ["idle", "heavy", "growth_default", "growth_capped"],
    "sessions": ["create", "create_python", "create_http", "idle_bytes", "idle_rss", "cost", "rps"],
    "profile": ["total", "loop", "aiohttp", "own"],
    "metrics": ["count", "share", "cpu"],
    "stages": ["reference", "skeleton", "validation", "generation", "books", "total_pure", "total"],
}


def run_benchmarks(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess, dict]:
    results = tmp_path / "results.json"
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--json", str(results), *args],
        cwd=ROOT, capture_output=True, text=True, timeout=TIMEOUT_S, check=False,
    )
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done, json.loads(results.read_text(encoding="utf-8"))


def test_the_sections_are_the_ones_checked_here():
    done = subprocess.run([sys.executable, "-m", "benchmarks", "--help"], cwd=ROOT, capture_output=True, text=True,
                          timeout=TIMEOUT_S, check=True)
    listed = re.search(r"run only this section \(repeatable\): (\w+(?:, \w+)*)", " ".join(done.stdout.split()))
    assert listed, done.stdout
    assert listed.group(1).split(", ") == list(MEASURES)


@pytest.mark.parametrize("section", MEASURES)  # one run each: xdist shares them out
def test_every_section_reports_every_measure(tmp_path, section):
    done, results = run_benchmarks(tmp_path, "--only", section)

    assert results["errors"] == {}
    assert [row["key"] for row in results["rows"]] == [f"{section}.{name}" for name in MEASURES[section]]
    table = done.stdout
    for row in results["rows"]:
        assert row["label"] in table
        assert row["result"] in ("PASS", "FAIL", "info")
        assert row["value"] is not None, row


def test_the_aiohttp_load_generator_stands_in_for_wrk(tmp_path):
    done, results = run_benchmarks(tmp_path, "--loadgen", "python", "--only", "throughput")

    assert results["loadgen"] == "python"
    assert [row["key"] for row in results["rows"]] == [f"throughput.{name}" for name in MEASURES["throughput"]]
    assert "load.py" in done.stdout
