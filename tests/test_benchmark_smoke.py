"""The benchmark suite still runs: `python -m benchmarks --quick`, every measure in its table.

No timing is asserted here (the quick figures mean nothing); the full run is
`python -m benchmarks`.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[1]
TIMEOUT_S = 120

MEASURES = {
    "throughput": ["rps", "errors", "cpu"],
    "streaming": ["time", "cpu", "errors"],
    "pacing": ["lateness", "drift", "first_chunk", "errors", "heavy_errors", "heavy_lateness", "heavy_drift", "heavy_cpu"],
    "startup": ["serve", "ready", "interpreter", "import", "import_lazy", "server_up", "reset", "reset_scenario"],
    "state": ["usage", "stats", "list", "trace_bytes", "record", "scenario_load", "match_flat", "match_anywhere",
              "match_unanswered"],
    "memory": ["idle", "heavy"],
}


def run_benchmarks(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess, dict]:
    results = tmp_path / "results.json"
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--json", str(results), *args],
        cwd=ROOT, capture_output=True, text=True, timeout=TIMEOUT_S, check=False,
    )
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done, json.loads(results.read_text(encoding="utf-8"))


def test_every_section_reports_every_measure(tmp_path):
    done, results = run_benchmarks(tmp_path)

    assert results["errors"] == {}
    keys = [row["key"] for row in results["rows"]]
    assert keys == [f"{section}.{name}" for section, names in MEASURES.items() for name in names]
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
