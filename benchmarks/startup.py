"""Startup: `mockpoeti serve` to its first answered call; the import; the first
in-process MockServer; the pytest fixture's per-test reset. Each run in a fresh
interpreter, so nothing is already imported or cached."""

from __future__ import annotations

import compileall
import json
import statistics
import subprocess
import sys
import time

from .harness import Plan, Row, at_most, info, ratio_row
from .processes import ROOT, Server, call, child_env, cpu_seconds_exact, mockpoeti_serve, reference_serve
from .throughput import CHAT, PATH

SECTION = "startup"
SERVE_RATIO = 1.3  # mockpoeti serve's start, against the bare reference's measured the same way
IMPORT_LIMIT_MS = 200.0
SERVER_UP_LIMIT_MS = 100.0
RESET_LIMIT_MS = 5.0
RESETS = 30
CALLS_PER_TEST = 3
CHILD_TIMEOUT_S = 60.0

# Runs in a fresh interpreter; prints its timings (seconds) as JSON.
IN_PROCESS = """
import time
t0, c0 = time.perf_counter(), time.process_time()
import mockpoeti
t1 = time.perf_counter()
mockpoeti.MockServer  # public names load on first use: this is the import a test pays for
t2, c2 = time.perf_counter(), time.process_time()
import http.client, json, statistics
with mockpoeti.MockServer() as server:
    t3 = time.perf_counter()
    connection = http.client.HTTPConnection("127.0.0.1", server.port)
    headers = {{"Authorization": "Bearer " + server.api_key, "Content-Type": "application/json"}}
    def test_body(expected=200):
        for _ in range({calls}):
            connection.request("POST", "/v1/chat/completions", {chat!r}, headers)
            response = connection.getresponse()
            response.read()
            assert expected is None or response.status == expected, response.status
    resets, scenario_resets = [], []
    for i in range({resets}):
        test_body()
        start = time.perf_counter()
        server.reset(seed=None, scenarios=[])  # what the poeti fixture does before each test
        resets.append(time.perf_counter() - start)
    for i in range({resets}):
        test_body(expected=None)  # the scenario answers some calls with errors
        start = time.perf_counter()
        server.reset(seed=None, scenarios=["retry-then-succeed"])  # a test marked poeti_scenario(...)
        scenario_resets.append(time.perf_counter() - start)
    connection.close()
print(json.dumps({{"import_lazy": t1 - t0, "import": t2 - t0, "import_cpu": c2 - c0, "server_up": t3 - t2,
                  "reset": statistics.median(resets), "reset_scenario": statistics.median(scenario_resets)}}))
"""

IMPORT_AIOHTTP = """
import json, time
t0, c0 = time.perf_counter(), time.process_time()
import aiohttp.web
print(json.dumps([time.perf_counter() - t0, time.process_time() - c0]))
"""


def python(code: str) -> str:
    """Run `code` in a fresh interpreter; the last line it printed."""
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=child_env(), capture_output=True, text=True,
                          timeout=CHILD_TIMEOUT_S, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"in-process startup run failed ({done.returncode}): {done.stderr[-2000:]}")
    lines = done.stdout.strip().splitlines()
    return lines[-1] if lines else ""


def first_answer(name: str, argv: list[str]) -> tuple[float, float, float]:
    """Seconds from spawning the server to its ready line and to its first 200 (a chat call),
    and the CPU seconds it had used by then: on a busy machine the steadier of the two."""
    with Server(name, argv) as server:
        status, body = call(server.url, "POST", PATH, CHAT, server.api_key)
        answered = time.perf_counter()
        cpu = cpu_seconds_exact(server.pid)
        if status != 200:
            raise RuntimeError(f"{name} answered {status}: {body[:300]!r}")
        return server.ready_at - server.started_at, answered - server.started_at, cpu


def run(plan: Plan) -> list[Row]:
    # Start-up as after `pip install`, which compiles the package's bytecode: an edited checkout
    # (or PYTHONDONTWRITEBYTECODE) would otherwise compile every changed module at each start.
    compileall.compile_dir(ROOT / "mockpoeti", quiet=1)
    runs = plan.startup_runs
    serve, bare = [], []
    for _ in range(runs):  # in turns: one's luck with the machine's noise is the other's too
        serve.append(first_answer("mockpoeti", mockpoeti_serve()))
        bare.append(first_answer("bare", reference_serve()))
    code = IN_PROCESS.format(calls=CALLS_PER_TEST, resets=RESETS, chat=json.dumps(CHAT))
    children, aiohttp_runs, interpreter = [], [], []
    for _ in range(runs):  # in turns too
        children.append(json.loads(python(code)))
        aiohttp_runs.append(json.loads(python(IMPORT_AIOHTTP)))
        start = time.perf_counter()
        python("pass")
        interpreter.append(time.perf_counter() - start)
    aiohttp_import, aiohttp_cpu = (statistics.median(r[i] for r in aiohttp_runs) for i in (0, 1))

    def ms(values) -> float:
        return statistics.median(values) * 1000

    def child(name: str) -> float:
        return ms(c[name] for c in children)

    median = f"median of {runs}"
    return [
        ratio_row(f"{SECTION}.serve", SECTION, f"mockpoeti serve → first 200 (a chat call; {median})",
                  ms(s[1] for s in serve), ms(b[1] for b in bare), "ms", at_most=SERVE_RATIO),
        ratio_row(f"{SECTION}.serve_cpu", SECTION, "CPU the server used by its first 200 (/proc schedstat)",
                  ms(s[2] for s in serve), ms(b[2] for b in bare), "ms"),
        info(f"{SECTION}.ready", SECTION, "mockpoeti serve → ready line", ms(s[0] for s in serve), "ms", ms(b[0] for b in bare)),
        info(f"{SECTION}.interpreter", SECTION, "python -c pass (the interpreter's own start)", ms(interpreter), "ms"),
        at_most(f"{SECTION}.import", SECTION, "import mockpoeti, with what MockServer needs (baseline: aiohttp.web)",
                child("import"), IMPORT_LIMIT_MS, "ms", aiohttp_import * 1000),
        ratio_row(f"{SECTION}.import_cpu", SECTION, "the same import's CPU (baseline: aiohttp.web's)",
                  child("import_cpu"), aiohttp_cpu * 1000, "ms"),
        info(f"{SECTION}.import_lazy", SECTION, "import mockpoeti alone (its names load on first use)",
             child("import_lazy"), "ms"),
        at_most(f"{SECTION}.server_up", SECTION, "first in-process MockServer up, after the import",
                child("server_up"), SERVER_UP_LIMIT_MS, "ms"),
        at_most(f"{SECTION}.reset", SECTION, f"MockServer.reset as the poeti fixture calls it (median of {RESETS})",
                child("reset"), RESET_LIMIT_MS, "ms"),
        info(f"{SECTION}.reset_scenario", SECTION, "reset with a poeti_scenario marker (loads its YAML)",
             child("reset_scenario"), "ms"),
    ]
