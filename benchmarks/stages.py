"""The cost model of a chat call: what each stage costs, measured by taking stages away,
against the budget that reaches the throughput target.

    python -m benchmarks --only stages

Five servers, loaded in turns with new prompts: the bare reference, and mockpoeti cut
after each stage (`benchmarks/stage_server.py`): the skeleton (route, auth and admission,
the body read and parsed, a constant answer, stamping), then + validation, + generation,
+ books (the whole server). A stage's cost is the difference between the server that has
it and the one before; CPU per call is read from /proc, unprofiled, best of the rounds.

The full run counts the same in instructions too (callgrind, when valgrind is installed:
`apt-get install valgrind`), which a busy machine does not move; `python -m
benchmarks.stages` prints those alone.

The budgets are shares of the reference's own CPU per call, so they hold on any machine:
with everything within budget, mockpoeti's CPU per call is 1 + the budgets' sum times
the reference's, and its throughput (CPU-bound, one core each) about the inverse of that.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
import tempfile

from .harness import Plan, Row, info
from .processes import SERVE, Server, alternate, load_count, mockpoeti_command, pure, reference_serve
from .throughput import CHAT, NEW_PROMPT, NEW_PROMPT_TARGET, PATH, check_answers, cpu_per_request_us

SECTION = "stages"
# Each stage's budget, as a share of the reference's CPU per call (their sum, 0.64, gives
# 1 / 1.64 = 0.61x the reference: the new-prompt target of 0.60x).
BUDGETS = {"skeleton": 0.15, "validation": 0.15, "generation": 0.22, "books": 0.12}
LABELS = {
    "skeleton": "skeleton: route, auth, admission, body read and parsed, stamping",
    "validation": "validation: the request checked (parse_chat_request)",
    "generation": "generation: the answer built and written",
    "books": "books: the trace, the sums, the journal entry",
}


def stage_serve(stage: str) -> list[str]:
    """The server cut after `stage`, on the Python build: the stages are cut by replacing names
    (stage_server.py), which compiled modules do not see; the compiled whole call is set beside."""
    if stage == "books":  # the whole server, as users run it
        return pure(mockpoeti_command(*SERVE))
    return pure([sys.executable, "-m", "benchmarks.stage_server", stage, *SERVE])


def run(plan: Plan) -> list[Row]:
    from .processes import load_requests

    servers = [Server("bare", reference_serve())] + [Server(stage, stage_serve(stage)) for stage in BUDGETS] + \
        [Server("compiled", mockpoeti_command(*SERVE))]
    try:
        for server in servers:
            check_answers(server, CHAT)
        loads = alternate(plan, servers, lambda server, seconds: load_requests(server, PATH, NEW_PROMPT, plan, seconds))
    finally:
        for server in servers:
            server.__exit__(None, None, None)
    cpu = {name: cpu_per_request_us(runs) for name, runs in loads.items()}
    reference = cpu["bare"]
    rows = [info(f"{SECTION}.reference", SECTION, "bare reference: CPU per chat call (new prompts)", reference, "us")]
    before = reference
    for stage, budget in BUDGETS.items():
        cost = max(0.0, cpu[stage] - before)
        share = cost / reference
        rows.append(Row(f"{SECTION}.{stage}", SECTION, LABELS[stage], cost, "us", reference, share,
                        f"≤ {budget:g}x", share <= budget))
        before = cpu[stage]
    whole = cpu["books"] / reference
    rows.append(info(f"{SECTION}.total_pure", SECTION, "the whole call, pure Python: CPU per call against the reference's",
                     cpu["books"], "us", reference, whole))
    whole = cpu["compiled"] / reference
    rows.append(Row(f"{SECTION}.total", SECTION, "the whole call, compiled as installed: CPU per call against the reference's",
                    cpu["compiled"], "us", reference, whole, f"≤ {1 / NEW_PROMPT_TARGET:.3g}x", whole <= 1 / NEW_PROMPT_TARGET))
    if not plan.quick:  # the same model in instructions: a minute more, and the same figures on a busy machine
        rows += instruction_rows()
    return rows


# --- instructions per call, deterministic (callgrind) ----------------------------------

INSTRUMENTED_CALLS = 400  # under callgrind a call costs ~50x: enough to average, quick enough to run


def instructions_per_call(name: str, argv: list[str], calls: int = INSTRUMENTED_CALLS) -> float:
    """Instructions a server executes per chat call (new prompts), counted by callgrind with
    instrumentation switched on only around the counted calls: the same figure on a busy
    machine as on a quiet one, for comparing stages and designs."""
    with tempfile.TemporaryDirectory(prefix="mockpoeti-callgrind-") as folder:
        out = os.path.join(folder, "cg.out")
        valgrind = ["valgrind", "--tool=callgrind", "--trace-children=yes", "--instr-atstart=no", f"--callgrind-out-file={out}"]
        with Server(name, valgrind + argv) as server:
            load_count(server, PATH, NEW_PROMPT, 4, calls)  # warm, uninstrumented: lazy imports, caches
            for step in (["-i", "on"], None, ["-i", "off"], ["-d"]):
                if step is None:
                    load_count(server, PATH, NEW_PROMPT, 4, calls)
                else:
                    subprocess.run(["callgrind_control", *step, str(server.pid)], check=True, capture_output=True, timeout=60)
        total = 0
        for dump in glob.glob(out + "*"):
            with open(dump, errors="replace") as f:
                total += sum(int(line.split()[1]) for line in f if line.startswith("totals:"))
    return total / calls


def instruction_rows() -> list[Row]:
    """The cost model in instructions: the stages' shares without the machine's noise."""
    if not shutil.which("valgrind") or not shutil.which("callgrind_control"):
        return [info(f"{SECTION}.instructions", SECTION, "instructions per call: valgrind is not installed", None, "count")]
    counts = {"bare": instructions_per_call("bare", reference_serve())}
    counts.update({stage: instructions_per_call(stage, stage_serve(stage)) for stage in BUDGETS})
    counts["compiled"] = instructions_per_call("compiled", mockpoeti_command(*SERVE))
    reference, before = counts["bare"], counts["bare"]
    rows = [info(f"{SECTION}.instructions.reference", SECTION, "bare reference: instructions per chat call", reference, "count")]
    for stage, budget in BUDGETS.items():
        share = max(0.0, counts[stage] - before) / reference
        rows.append(Row(f"{SECTION}.instructions.{stage}", SECTION, f"{stage}, in instructions (callgrind)",
                        counts[stage] - before, "count", reference, share, f"≤ {budget:g}x", share <= budget))
        before = counts[stage]
    rows.append(info(f"{SECTION}.instructions.total_pure", SECTION, "the whole call, pure Python, in instructions (callgrind)",
                     counts["books"], "count", reference, counts["books"] / reference))
    whole = counts["compiled"] / reference
    rows.append(Row(f"{SECTION}.instructions.total", SECTION, "the whole call, compiled, in instructions (callgrind)",
                    counts["compiled"], "count", reference, whole, f"≤ {1 / NEW_PROMPT_TARGET:.3g}x",
                    whole <= 1 / NEW_PROMPT_TARGET))
    return rows


if __name__ == "__main__":  # python -m benchmarks.stages: the instruction counts alone
    from .harness import table

    print(table(instruction_rows()))
