"""What counting for GET /metrics costs a chat call (the budget: 3% of its throughput).

Measured two ways:
- in process: `pipeline.count`, the finishing stage's counting, timed on a chat call's
  figures (best of five rounds) and set against the server CPU a chat call costs,
  measured below: the share of a call it takes. This is the figure held to the budget;
- on the wire: `mockpoeti serve` as it is against one whose `pipeline.count` is a no-op
  (a name replaced on purpose, as processes.UNTUNED_GC does), server CPU per chat call
  from /proc under the same load (new prompts), in alternating rounds, the lowest of
  each. A 1% difference is within this machine's noise: this row shows no more than that
  the two agree.

Both measure the pure-Python build (MOCKPOETI_PURE=1): compiled, `pipeline.count` is called
from C and cannot be switched off by replacing its name.
"""

from __future__ import annotations

import os
import subprocess
import sys
import timeit

from .harness import Plan, Row, info
from .processes import ROOT, SERVE, Server, child_env, load_count, mockpoeti_serve, pure
from .throughput import NEW_PROMPT, PATH, check_answers

SECTION = "metrics"
BUDGET_PERCENT = 3.0  # issue 23: recording the counters costs at most this share of throughput
CONNECTIONS = 10
COUNTING_OFF = "import sys; from mockpoeti.http import pipeline; pipeline.count = lambda *a: None; " \
               "from mockpoeti import cli; sys.exit(cli.main())"


def count_us(calls: int) -> float:
    """Microseconds `pipeline.count` takes for one traced, unfaulted chat call: the best of five
    rounds, in a pure-Python interpreter of its own."""
    if not os.environ.get("MOCKPOETI_PURE"):
        done = subprocess.run(pure([sys.executable, "-c", f"from benchmarks.metrics import count_us; print(count_us({calls}))"]),
                              env=child_env(), cwd=ROOT, capture_output=True, text=True, check=True)
        return float(done.stdout.split()[-1])
    from aiohttp.test_utils import make_mocked_request

    from mockpoeti.books.ledger import Trace
    from mockpoeti.books.meters import Meters
    from mockpoeti.http.app import make_state
    from mockpoeti.http.call import Call
    from mockpoeti.http.pipeline import count

    state = make_state()
    call = Call(make_mocked_request("POST", PATH), state, 0.0, PATH, "")
    call.endpoint = "chat"
    trace = Trace("trace-poeti-0", "acct", 1, "sk-poeti-xxxx...", 0.0, "round-robin", model="gpt-4o-mini",
                  prompt_tokens=14, completion_tokens=60, cost_nanos=37_000)
    meters = Meters()
    rounds = timeit.repeat(lambda: count(call, meters, 200, 0.31, trace), number=calls, repeat=5)
    return min(rounds) / calls * 1e6


def cpu_us(plan: Plan) -> dict[str, float]:
    """Server CPU per chat call (new prompts), counting on and off: the lowest of the rounds."""
    found: dict[str, list[float]] = {"counting": [], "off": []}
    calls = plan.profile_requests
    with Server("counting", pure(mockpoeti_serve())) as on, \
            Server("off", pure([sys.executable, "-c", COUNTING_OFF, *SERVE])) as off:
        for server in (on, off):
            check_answers(server, NEW_PROMPT)
            load_count(server, PATH, NEW_PROMPT, CONNECTIONS, calls // 5)  # warm-up
        for _ in range(plan.rounds):
            for server in (on, off):
                load = load_count(server, PATH, NEW_PROMPT, CONNECTIONS, calls)
                if load.errors:
                    raise RuntimeError(f"{server.name}: {load.errors} chat calls failed")
                found[server.name].append(load.cpu_per_request_s * 1e6)
    return {name: min(values) for name, values in found.items()}


def run(plan: Plan) -> list[Row]:
    counting = count_us(20_000 if plan.quick else 200_000)
    cpu = cpu_us(plan)
    share = counting / cpu["counting"] * 100
    return [
        info(f"{SECTION}.count", SECTION, "counting for /metrics in the finishing stage, per chat call (in process, pure Python)",
             counting, "us"),
        Row(f"{SECTION}.share", SECTION, "  its share of a chat call's server CPU (in process / measured below)",
            share, "%", None, None, f"≤ {BUDGET_PERCENT:g}%", share <= BUDGET_PERCENT),
        info(f"{SECTION}.cpu", SECTION,
             f"server CPU per chat call (pure Python), counting on (baseline: off; {plan.profile_requests:,} calls, "
             f"lowest of {plan.rounds})",
             cpu["counting"], "us", cpu["off"], cpu["counting"] / cpu["off"]),
    ]
