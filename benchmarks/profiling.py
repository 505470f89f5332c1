"""Where a chat call's time goes, in both servers: the split of its CPU time between the
event loop and sockets, aiohttp, and the server's own code. mockpoeti runs its Python build
(MOCKPOETI_PURE=1): cProfile does not see compiled functions.

    python -m benchmarks.profiling [--requests 10000] [--same-prompt] [--top 15]

prints the split and mockpoeti's own functions that cost most; `python -m benchmarks`
runs it too (section `profile`) at its plan's size.

How: each server runs in a process of its own; after a warm-up, `requests` chat calls
(new prompts, load.py) measure its CPU per call from /proc, unprofiled; then cProfile,
started and stopped by signals so start-up is left out, records as many calls again.
The profile gives each category's share, /proc the total: a category's figure is its
share times the unprofiled CPU per call. (cProfile's own figures are two to three times
those, inflated most where Python calls are most; the shares are an estimate, the total
is measured.) The profiler reads the thread's CPU clock: a wall clock would charge a
socket call for the time the load generator ran while the server was descheduled in it.

Time is attributed to the code that asked for it: a function in asyncio, selectors or
socket counts as the loop, one in aiohttp (or multidict, yarl, propcache) as aiohttp, one
in mockpoeti (or the reference's handler) as the server's own; the time of everything
else (C builtins such as orjson.dumps or socket.send, the stdlib's re, Faker) goes to
whoever called it, in proportion to the calls' time.
"""

from __future__ import annotations

import argparse
import os
import pstats
import signal
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from .harness import Plan, Row, info
from .processes import SERVE, Server, call, load_count, pure
from .throughput import CHAT, NEW_PROMPT, PATH

SECTION = "profile"
CONNECTIONS = 10
WARMUP_CALLS = 200  # lazy imports, first-call caches: not what a call costs
DUMP_TIMEOUT_S = 60.0
POLL_S = 0.05
IDLE = "<method 'poll' of 'select.epoll' objects>"  # waiting for the next event is not work
AIOHTTP_PARTS = ("/aiohttp/", "/multidict/", "/yarl/", "/propcache/", "/aiohappyeyeballs/", "/aiosignal/", "/frozenlist/")
LOOP_PARTS = ("/asyncio/", "/selectors.py", "/socket.py", "/ssl.py")
MOCKPOETI_OWN = "/mockpoeti/"
REFERENCE_OWN = "/benchmarks/reference.py"
CATEGORIES = {
    "loop": "the event loop and sockets (asyncio, selectors, socket)",
    "aiohttp": "aiohttp (with multidict, yarl, propcache)",
    "own": "the server's own code (mockpoeti; the reference's handler) and what it calls",
    "other": "the rest (the profiler's signal handlers)",
}

# Runs `python -m MODULE ARGS` with a profiler on the thread's CPU clock, which SIGUSR1
# starts and SIGUSR2 stops and writes to OUT (atomically): the servers' code is not
# touched. Both run their event loop in the main thread, where the handlers run.
DRIVER = """
import cProfile, os, runpy, signal, sys, time
out, module, *args = sys.argv[1:]
profile = cProfile.Profile(time.thread_time)
def stop(*_):
    profile.disable()
    profile.dump_stats(out + ".part")
    os.replace(out + ".part", out)
signal.signal(signal.SIGUSR1, lambda *_: profile.enable())
signal.signal(signal.SIGUSR2, stop)
sys.argv = [module, *args]
runpy.run_module(module, run_name="__main__", alter_sys=True)
"""

Func = tuple[str, int, str]


def category(func: Func, own: str) -> str | None:
    """The category of code in this file, or None for code whose time goes to its callers."""
    filename = func[0]
    if own in filename:
        return "own"
    if any(part in filename for part in AIOHTTP_PARTS):
        return "aiohttp"
    if any(part in filename for part in LOOP_PARTS):
        return "loop"
    return None


def attribute(stats: dict, own: str) -> dict[Func, float]:
    """Each categorised function's seconds: its own, plus its share of what it called that is not."""
    memo: dict[Func, dict[Func, float]] = {}

    def owners(func: Func, seen: frozenset) -> dict[Func, float]:
        if func in memo:
            return memo[func]
        callers = stats[func][4]
        if category(func, own) is not None or not callers or func in seen:
            return {func: 1.0}
        shares = {caller: entry[2] for caller, entry in callers.items()}  # the callee's tottime when called from each
        total = sum(shares.values())
        if total <= 0:
            shares = {caller: entry[1] for caller, entry in callers.items()}  # no time measured: by calls
            total = sum(shares.values()) or 1
        found: dict[Func, float] = {}
        for caller, share in shares.items():
            for owner, fraction in owners(caller, seen | {func}).items():
                found[owner] = found.get(owner, 0.0) + fraction * share / total
        memo[func] = found
        return found

    seconds: dict[Func, float] = {}
    for func, (_, _, tottime, _, _) in stats.items():
        if func[2] == IDLE:
            continue
        for owner, fraction in owners(func, frozenset()).items():
            seconds[owner] = seconds.get(owner, 0.0) + tottime * fraction
    return seconds


@dataclass(frozen=True)
class Profile:
    """One server's calls: CPU per call measured unprofiled, and the profile's attributed seconds."""

    own: str  # what in a file name marks the server's own code
    cpu_us: float  # per call, from /proc, without the profiler
    seconds: dict[Func, float]  # attributed, over `calls` profiled calls
    calls: int

    @property
    def profiled_us(self) -> float:
        return sum(self.seconds.values()) / self.calls * 1e6

    def split_us(self) -> dict[str, float]:
        """Each category's share of the profile, times the unprofiled CPU per call."""
        totals = dict.fromkeys(CATEGORIES, 0.0)
        for func, value in self.seconds.items():
            totals[category(func, self.own) or "other"] += value
        whole = sum(totals.values()) or 1.0
        return {name: value / whole * self.cpu_us for name, value in totals.items()}

    def top(self, count: int) -> list[tuple[float, Func]]:
        """The server's own functions that cost most: estimated microseconds per call, and the function."""
        scale = self.cpu_us / (sum(self.seconds.values()) or 1.0)
        found = sorted(((v * scale, f) for f, v in self.seconds.items() if category(f, self.own) == "own"), reverse=True)
        return found[:count]


def profile_server(name: str, module: list[str], own: str, requests: int, body: dict, python: bool = False) -> Profile:
    """`python -m MODULE...`: warmed up, then `requests` calls unprofiled and `requests` profiled
    (`python`: on mockpoeti's Python build)."""
    with tempfile.TemporaryDirectory(prefix="mockpoeti-profile-") as folder:
        out = Path(folder) / f"{name}.prof"
        argv = [sys.executable, "-c", DRIVER, str(out), *module]
        with Server(name, pure(argv) if python else argv) as server:
            load_count(server, PATH, body, CONNECTIONS, WARMUP_CALLS)
            plain = load_count(server, PATH, body, CONNECTIONS, requests)
            os.kill(server.pid, signal.SIGUSR1)
            status, data = call(server.url, "POST", PATH, CHAT, server.api_key)  # answered after the handler ran
            if status != 200:
                raise RuntimeError(f"{name} answered {status}: {data[:300]!r}")
            profiled = load_count(server, PATH, body, CONNECTIONS, requests)
            os.kill(server.pid, signal.SIGUSR2)
            deadline = time.monotonic() + DUMP_TIMEOUT_S
            while not out.is_file():
                server.check_alive()
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{name} wrote no profile within {DUMP_TIMEOUT_S:g} s")
                time.sleep(POLL_S)
        stats = pstats.Stats(str(out)).stats  # type: ignore[attr-defined]
    if plain.errors or profiled.errors:
        raise RuntimeError(f"{name}: {plain.errors + profiled.errors} chat calls failed")
    return Profile(own, plain.cpu_per_request_s * 1e6, attribute(stats, own), profiled.ok + 1)


def measure(requests: int, body: dict) -> dict[str, Profile]:
    return {
        "bare": profile_server("bare", ["benchmarks.reference", "--host", "127.0.0.1", "--port", "0"],
                               REFERENCE_OWN, requests, body),
        # the Python build: cProfile does not see compiled functions, and would charge their time to aiohttp
        "mockpoeti": profile_server("mockpoeti", ["mockpoeti", *SERVE], MOCKPOETI_OWN, requests, body, python=True),
    }


def run(plan: Plan) -> list[Row]:
    found = measure(plan.profile_requests, NEW_PROMPT)
    bare, mock = found["bare"], found["mockpoeti"]
    bare_split, mock_split = bare.split_us(), mock.split_us()
    rows = [info(f"{SECTION}.total", SECTION,
                 f"server CPU per chat call, unprofiled (the Python build; {plan.profile_requests:,} calls, new prompts)",
                 mock.cpu_us, "us", bare.cpu_us, mock.cpu_us / bare.cpu_us)]
    for name, label in CATEGORIES.items():
        if name != "other":  # the profiler's own handlers: next to nothing
            rows.append(info(f"{SECTION}.{name}", SECTION, f"  of which {label}, by cProfile's shares",
                             mock_split[name], "us", bare_split[name]))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.profiling", description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=Plan.make(False).profile_requests, help="chat calls per server")
    parser.add_argument("--same-prompt", action="store_true", help="the same body every time (default: a new prompt each)")
    parser.add_argument("--top", type=int, default=15, help="how many of mockpoeti's functions to list")
    args = parser.parse_args()
    found = measure(args.requests, CHAT if args.same_prompt else NEW_PROMPT)
    bare, mock = found["bare"], found["mockpoeti"]
    bare_split, mock_split = bare.split_us(), mock.split_us()
    print(f"{args.requests:,} chat calls per server ({'the same prompt' if args.same_prompt else 'new prompts'}): "
          "CPU microseconds per call, split by cProfile's shares\n")
    print(f"{'':<78}{'bare':>8}{'mockpoeti':>11}")
    for name, label in CATEGORIES.items():
        print(f"{label:<78}{bare_split[name]:>8.1f}{mock_split[name]:>11.1f}")
    print(f"{'CPU per call, unprofiled (/proc)':<78}{bare.cpu_us:>8.1f}{mock.cpu_us:>11.1f}")
    print(f"{'the same under cProfile (its own figure)':<78}{bare.profiled_us:>8.1f}{mock.profiled_us:>11.1f}")
    print("\nmockpoeti's own functions that cost most (µs per call, with what they call beyond mockpoeti, aiohttp, asyncio):")
    for value, (filename, line, function) in mock.top(args.top):
        where = filename[filename.rindex(MOCKPOETI_OWN) + 1 :] if MOCKPOETI_OWN in filename else filename
        print(f"{value:>8.1f}  {where}:{line}({function})")


if __name__ == "__main__":
    main()
