"""`mockpoeti serve` (or another subcommand, or any server that prints its URL) as a
process of its own: the one way tests and benchmarks start one. Port 0, the
ready line's URL and key, stdout and stderr kept, and the process always
stopped (killed if it must be) when the block ends.

Stdlib only: the benchmarks import it too (`from tests.serving import Served`,
run from the repository's root).
"""

from __future__ import annotations

import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO

READY_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 10.0
READY = re.compile(r"http://(127\.0\.0\.1|\[::1\]|[\w.:-]+):(\d+)")
API_KEY = re.compile(r"\(API key: (\S+)\)")
DEFAULT_KEY = "sk-poeti-mockpoeti-default-key"

# For a pytest run in a test: plugins installed beside mockpoeti here that no inline test uses.
# Loading them costs seconds per pytest process (langsmith's client, schemathesis with Hypothesis,
# Faker's fixtures...); blocking them by name leaves mockpoeti loaded by its entry point, as for a
# user, and does nothing where they are not installed.
UNUSED_PLUGINS = ("langsmith_plugin", "schemathesis", "hypothesispytest", "faker", "benchmark", "codspeed",
                  "recording", "syrupy", "socket")
PYTEST_OPTIONS = ("-p", "no:cacheprovider", *(arg for name in UNUSED_PLUGINS for arg in ("-p", f"no:{name}")),
                  "-o", "asyncio_default_fixture_loop_scope=function")  # pytest-asyncio's default, without its warning


def console_script() -> str:
    """The `mockpoeti` script beside this interpreter (else on the PATH)."""
    found = shutil.which("mockpoeti", path=os.path.dirname(sys.executable)) or shutil.which("mockpoeti")
    assert found, "the `mockpoeti` console script is installed"
    return found


class Served:
    """A running server process, up once it printed a line with its URL.

    `Served(("--port", "0"))` runs `mockpoeti serve --port 0`; `command="record"` another
    subcommand; `argv=[...]` any program with a ready line (the benchmarks' reference).
    Stdout and stderr are read by threads, so neither pipe fills. The environment drops
    PYTHONUNBUFFERED: the ready line must be flushed by the server itself.
    Use it as a context manager (or `serve()`), so the process never outlives the test.
    """

    def __init__(
        self,
        args: Sequence[str] = (),
        *,
        command: str = "serve",
        argv: Sequence[str] | None = None,
        env: Mapping[str, str] | None = None,
        cwd: str | Path | None = None,
        ready_timeout: float = READY_TIMEOUT_S,
    ):
        self.argv = list(argv) if argv is not None else [console_script(), command, *args]
        environment = dict(os.environ if env is None else env)
        environment.pop("PYTHONUNBUFFERED", None)
        self.started_at = time.perf_counter()
        self.popen = subprocess.Popen(
            self.argv, cwd=cwd, env=environment, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True, encoding="utf-8", errors="replace",
        )
        self.pid = self.popen.pid
        self.lines: queue.Queue[str | None] = queue.Queue()
        self._stdout: list[str] = []
        self._stderr: list[str] = []
        self._readers = [
            threading.Thread(target=self._pump, args=(self.popen.stdout, self._stdout, self.lines), daemon=True),
            threading.Thread(target=self._pump, args=(self.popen.stderr, self._stderr, None), daemon=True),
        ]
        for reader in self._readers:
            reader.start()
        try:
            self.ready_line = self._wait_ready(ready_timeout)
        except BaseException:
            self.close()
            raise
        self.ready_at = time.perf_counter()
        match = READY.search(self.ready_line)
        assert match is not None
        self.host, self.port = match.group(1), int(match.group(2))
        self.url = f"http://{self.host}:{self.port}"
        key = API_KEY.search(self.ready_line)
        self.api_key = key.group(1) if key else ""

    @staticmethod
    def _pump(stream: IO[str], sink: list[str], lines: queue.Queue | None) -> None:
        for line in stream:
            sink.append(line)
            if lines is not None:
                lines.put(line)
        if lines is not None:
            lines.put(None)

    def _wait_ready(self, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"{self.argv[:3]}: no ready line within {timeout:g} s: {self.stderr[-2000:]}") from None
            if line is None:
                self.popen.wait(timeout=STOP_TIMEOUT_S)
                raise AssertionError(f"{self.argv[:3]} exited with {self.popen.returncode} before it was ready: {self.stderr}")
            if READY.search(line):
                return line

    @property
    def stdout(self) -> str:
        return "".join(self._stdout)

    @property
    def stderr(self) -> str:
        return "".join(self._stderr)

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> tuple[int, float]:
        """Send `sig`; the exit code and the seconds it took to exit (stdout and stderr read to their end)."""
        started = time.monotonic()
        self.popen.send_signal(sig)
        code = self.popen.wait(timeout=STOP_TIMEOUT_S)
        took = time.monotonic() - started
        self.join()
        return code, took

    def join(self) -> None:
        for reader in self._readers:
            reader.join(timeout=STOP_TIMEOUT_S)

    def close(self) -> None:
        """Kill it if it still runs, and close the pipes. Safe to call twice."""
        if self.alive():
            self.popen.kill()
        self.popen.wait(timeout=STOP_TIMEOUT_S)
        self.join()
        for stream in (self.popen.stdout, self.popen.stderr):
            if stream is not None:
                stream.close()

    def __enter__(self) -> Served:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def rss_kib(self) -> int:
        return _status_field(self.pid, "VmRSS")

    def open_fds(self) -> int:
        return len(os.listdir(f"/proc/{self.pid}/fd"))

    def cpu_s(self) -> float:
        """CPU seconds the process has used (user + system): what its own work cost, however busy
        the machine was (its wall-clock times are not)."""
        with open(f"/proc/{self.pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _status_field(pid: int, name: str) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(name + ":"):
                return int(line.split()[1])
    raise LookupError(name)


@contextmanager
def serve(*args: str, command: str = "serve") -> Iterator[Served]:
    """`mockpoeti COMMAND --port 0 ARGS` (COMMAND: serve unless told), stopped (SIGKILL if
    still running) when the block ends."""
    with Served(("--port", "0", *args) if "--port" not in args else args, command=command) as process:
        yield process


def tcp_states(port: int) -> dict[str, int]:
    """How many IPv4 sockets with local port `port` are in each TCP state (from /proc/net/tcp)."""
    names = {"01": "ESTABLISHED", "06": "TIME_WAIT", "08": "CLOSE_WAIT", "0A": "LISTEN", "04": "FIN_WAIT1",
             "05": "FIN_WAIT2", "07": "CLOSE", "09": "LAST_ACK", "0B": "CLOSING", "02": "SYN_SENT", "03": "SYN_RECV"}
    suffix = f":{port:04X}"
    seen: dict[tuple[str, str], str] = {}  # the file is read in pieces, not as one snapshot: a socket may show twice
    with open("/proc/net/tcp") as table:
        next(table)
        for line in table:
            fields = line.split()
            if fields[1].endswith(suffix):
                seen[fields[1], fields[2]] = names.get(fields[3], fields[3])
    counts: dict[str, int] = {}
    for state in seen.values():
        counts[state] = counts.get(state, 0) + 1
    return counts


def listen_drops() -> dict[str, int]:
    """The kernel's count of connections a full listen queue refused (TcpExt in /proc/net/netstat)."""
    with open("/proc/net/netstat") as netstat:
        lines = netstat.read().splitlines()
    for names, values in zip(lines[::2], lines[1::2], strict=False):
        if names.startswith("TcpExt:"):
            table = dict(zip(names.split()[1:], (int(v) for v in values.split()[1:]), strict=False))
            return {"ListenOverflows": table["ListenOverflows"], "ListenDrops": table["ListenDrops"]}
    raise LookupError("TcpExt")


def all_traces(client, query: str = "") -> list[dict]:
    """Every page of a trace listing (an httpx.Client with a key), newest first."""
    items, page = [], 1
    while True:
        data = client.get(f"/api/v1/request-traces?page_size=100&page={page}&{query}").json()["data"]
        items += data["items"]
        if len(items) >= data["total"] or not data["items"]:
            return items
        page += 1
