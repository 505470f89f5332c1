"""Processes the benchmark starts: servers (mockpoeti and the bare reference) and
load generators (wrk, or benchmarks/load.py); and what /proc says about them.

Every process started here is stopped here: servers by their context manager
(tests/serving.py's `Served`, the runner the tests use too), load generators by
a timeout on `subprocess.run`.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

from tests.serving import Served

from .load import MARKER

ROOT = Path(__file__).resolve().parents[1]
LOAD_GRACE_S = 60.0
COUNT_LIMIT_S = 600.0  # a counted load run that takes longer has gone wrong
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def mockpoeti_command(*args: str) -> list[str]:
    """`mockpoeti serve ...`: the console script beside this interpreter, else `python -m mockpoeti`."""
    script = shutil.which("mockpoeti", path=os.path.dirname(sys.executable))
    return [script, *args] if script else [sys.executable, "-m", "mockpoeti", *args]


SERVE = ("serve", "--host", "127.0.0.1", "--port", "0", "--seed", "1")


def mockpoeti_serve(*args: str) -> list[str]:
    return mockpoeti_command(*SERVE, *args)


# `mockpoeti serve` without what cli._tune_gc does to the garbage collector at start-up (a
# private name, replaced here on purpose): what the tuning buys shows against this.
UNTUNED_GC = "import sys; from mockpoeti import cli; cli._tune_gc = lambda: None; sys.exit(cli.main())"


def mockpoeti_serve_untuned_gc(*args: str) -> list[str]:
    return [sys.executable, "-c", UNTUNED_GC, *SERVE, *args]


def pure(argv: list[str]) -> list[str]:
    """`argv` run on mockpoeti's Python build (MOCKPOETI_PURE=1), where a benchmark replaces names
    or profiles with cProfile: compiled modules call each other past the names, unseen."""
    return ["env", "MOCKPOETI_PURE=1", *argv]


def reference_serve() -> list[str]:
    return [sys.executable, "-m", "benchmarks.reference", "--host", "127.0.0.1", "--port", "0"]


def child_env() -> dict[str, str]:
    """This environment, unchanged. Children start in the repository's root (cwd=ROOT), where
    `python -m benchmarks...` finds the benchmarks, while `mockpoeti serve` runs the package as
    installed: the compiled build a wheel carries too (hatch_build.py), not the checkout's sources."""
    return dict(os.environ)


class Server(Served):
    """A server under benchmark (tests/serving.py's runner): named, started from the
    repository's root, up once it printed its ready line."""

    def __init__(self, name: str, argv: list[str]):
        self.name = name
        try:
            super().__init__(argv=argv, env=child_env(), cwd=ROOT)
        except AssertionError as e:  # the runner's way of saying it never came up
            raise RuntimeError(f"{name}: {e}") from None

    def __enter__(self) -> Server:
        return self

    def check_alive(self) -> None:
        if not self.alive():
            raise RuntimeError(f"{self.name} exited with {self.popen.returncode}: {self.stderr[-2000:]}")


# --- /proc ---------------------------------------------------------------------------

def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (utime + stime of /proc/PID/stat)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) "; comm may hold spaces
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def cpu_seconds_exact(pid: int) -> float:
    """CPU time of a process so far, to the nanosecond (the first field of /proc/PID/schedstat:
    what the scheduler ran it for), where /proc/PID/stat counts in ticks of 10 ms; stat's
    figure where the kernel keeps no schedstat."""
    try:
        return int(Path(f"/proc/{pid}/schedstat").read_text().split()[0]) / 1e9
    except (OSError, ValueError, IndexError):
        return cpu_seconds(pid)


def children_cpu_seconds() -> float:
    """CPU time of this process's finished children: around a load run, the load generator's."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def rss_mb(pid: int) -> float:
    """Resident set size (VmRSS of /proc/PID/status), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


class PeakRss:
    """Samples a process's RSS in a thread while the block runs; `peak` is the highest seen."""

    INTERVAL_S = 0.05

    def __init__(self, pid: int):
        self.pid = pid
        self.peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.is_set():
            try:
                self.peak = max(self.peak, rss_mb(self.pid))
            except (OSError, RuntimeError):
                return
            self._stop.wait(self.INTERVAL_S)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(1.0)
        with contextlib.suppress(OSError, RuntimeError):
            self.peak = max(self.peak, rss_mb(self.pid))


# --- load ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Load:
    """What one load run against one server achieved, and what it cost the server."""

    ok: int
    errors: int
    seconds: float
    server_cpu_s: float
    client_cpu_s: float
    detail: dict

    @property
    def rps(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0

    @property
    def cpu_per_request_s(self) -> float:
        return self.server_cpu_s / self.ok if self.ok else float("inf")

    @property
    def seconds_per_request(self) -> float:
        return self.seconds / self.ok if self.ok else float("inf")


def alternate(plan, servers: list[Server], measure) -> dict[str, list[Load]]:
    """Warm each server, then load them in turns (bare, mockpoeti, bare, ...): one's
    luck with the machine's noise is the other's too."""
    if plan.warmup_seconds:
        for server in servers:
            measure(server, plan.warmup_seconds)
    runs: dict[str, list[Load]] = {s.name: [] for s in servers}
    for _ in range(plan.rounds):
        for server in servers:
            runs[server.name].append(measure(server, plan.seconds))
    return runs


def best(loads: list[Load]) -> Load:
    return max(loads, key=lambda load: load.rps)


WRK_SCRIPT = """\
wrk.method = "POST"
wrk.body = [==[{body}]==]
{headers}
{vary}
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("WRK_RESULT %d %d %d %d %d %d %d %d %d\\n", summary.requests, summary.duration,
    e.connect, e.read, e.write, e.status, e.timeout, latency:percentile(50), latency:percentile(99)))
end
"""

# A new prompt per request: each thread numbers its requests, and the body's marker
# (load.py's MARKER) becomes "thread-number". Only when the body holds the marker:
# wrk's own request, built once, is cheaper than a Lua call per request.
WRK_VARY = """\
local head, tail = [==[{head}]==], [==[{tail}]==]
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("id", threads)
end
local n = 0
request = function()
  n = n + 1
  return wrk.format(nil, nil, nil, head .. id .. "-" .. n .. tail)
end
"""


def load_requests(
    server: Server, path: str, body: dict, plan, seconds: float, *, expect_frames: int | None = None,
    loadgen: str | None = None,
) -> Load:
    """Send POSTs of `body` over `plan.connections` connections for `seconds`, with wrk or load.py;
    where the body holds load.py's MARKER, a new prompt per request."""
    headers = {"Content-Type": "application/json"}
    if server.api_key:
        headers["Authorization"] = f"Bearer {server.api_key}"
    url = server.url + path
    text = json.dumps(body)
    loadgen = loadgen or plan.loadgen
    server.check_alive()
    cpu_before, client_before = cpu_seconds(server.pid), children_cpu_seconds()
    if loadgen == "wrk":
        ok, errors, elapsed, detail = _wrk(url, text, headers, plan.connections, seconds)
    else:
        argv = [sys.executable, "-m", "benchmarks.load", "requests", "--url", url, "--body", text,
                "--connections", str(plan.connections), "--duration", str(seconds)]
        argv += [a for name, value in headers.items() for a in ("--header", f"{name}: {value}")]
        if expect_frames is not None:
            argv += ["--expect-frames", str(expect_frames)]
        detail = _run_json(argv, seconds)
        ok, errors, elapsed = detail["ok"], detail["errors"], detail["seconds"]
    cpu, client = cpu_seconds(server.pid) - cpu_before, children_cpu_seconds() - client_before
    server.check_alive()
    return Load(ok, errors, elapsed, cpu, client, detail)


# The next request number load_count hands out: a counted run after a warm-up sends prompts the
# warm-up did not (numbering from 1 each run, a memo of answers served the counted run).
_next_number = 1


def load_count(server: Server, path: str, body: dict, connections: int, count: int) -> Load:
    """About `count` POSTs (load.py stops within `connections` of it) over `connections` connections;
    where the body has load.py's MARKER, numbered after every earlier run's."""
    global _next_number
    first, _next_number = _next_number, _next_number + count + connections
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {server.api_key}"} if server.api_key else {})}
    argv = [sys.executable, "-m", "benchmarks.load", "requests", "--url", server.url + path, "--body", json.dumps(body),
            "--connections", str(connections), "--duration", str(COUNT_LIMIT_S), "--max-requests", str(count),
            "--first", str(first)]
    argv += [a for name, value in headers.items() for a in ("--header", f"{name}: {value}")]
    server.check_alive()
    cpu_before, client_before = cpu_seconds(server.pid), children_cpu_seconds()
    detail = _run_json(argv, COUNT_LIMIT_S)
    cpu, client = cpu_seconds(server.pid) - cpu_before, children_cpu_seconds() - client_before
    server.check_alive()
    return Load(detail["ok"], detail["errors"], detail["seconds"], cpu, client, detail)


def _wrk(url: str, body: str, headers: dict[str, str], connections: int, seconds: float) -> tuple[int, int, float, dict]:
    lines = "\n".join(f'wrk.headers["{name}"] = "{value}"' for name, value in headers.items())
    head, marker, tail = body.partition(MARKER)
    vary = WRK_VARY.format(head=head, tail=tail) if marker else ""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(WRK_SCRIPT.format(body=body, headers=lines, vary=vary))
    try:
        argv = ["wrk", "-t2", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--timeout", "10s", "-s", script.name, url]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + LOAD_GRACE_S, check=False)
    finally:
        os.unlink(script.name)
    found = re.search(r"WRK_RESULT ([\d ]+)", done.stdout)
    if done.returncode != 0 or not found:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stdout[-1000:]} {done.stderr[-1000:]}")
    requests, duration_us, connect, read, write, status, timeout, p50, p99 = map(int, found.group(1).split())
    errors = connect + read + write + status + timeout
    detail = {"connect": connect, "read": read, "write": write, "status": status, "timeout": timeout,
              "p50_us": p50, "p99_us": p99}
    ok = max(0, requests - status)  # wrk's requests are the answers it read, bad statuses included
    return ok, errors, duration_us / 1e6, detail


def load_streams(server: Server, path: str, body: dict, *, streams: int, chunks: int, interval_ms: float,
                 seconds: float, ramp: float) -> Load:
    """Paced streams from load.py: lateness and drift of every content chunk."""
    headers = {"Content-Type": "application/json"}
    if server.api_key:
        headers["Authorization"] = f"Bearer {server.api_key}"
    argv = [sys.executable, "-m", "benchmarks.load", "streams", "--url", server.url + path, "--body", json.dumps(body),
            "--streams", str(streams), "--chunks", str(chunks), "--interval-ms", str(interval_ms),
            "--duration", str(seconds), "--ramp", str(ramp)]
    argv += [a for name, value in headers.items() for a in ("--header", f"{name}: {value}")]
    server.check_alive()
    cpu_before, client_before = cpu_seconds(server.pid), children_cpu_seconds()
    detail = _run_json(argv, seconds + ramp + chunks * interval_ms / 1000)
    cpu, client = cpu_seconds(server.pid) - cpu_before, children_cpu_seconds() - client_before
    server.check_alive()
    return Load(detail["ok"], detail["errors"], detail["seconds"], cpu, client, detail)


def _run_json(argv: list[str], seconds: float) -> dict:
    done = subprocess.run(argv, cwd=ROOT, env=child_env(), capture_output=True, text=True,
                          timeout=seconds + LOAD_GRACE_S, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:4])} failed ({done.returncode}): {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def call(
    url: str, method: str, path: str, body: dict | None = None, api_key: str = "", timeout: float = 10.0
) -> tuple[int, bytes]:
    """One request over a fresh connection: (status, body)."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    connection = http.client.HTTPConnection(host, int(port), timeout=timeout)
    headers = {"Content-Type": "application/json"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    try:
        connection.request(method, path, None if body is None else json.dumps(body), headers)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()
