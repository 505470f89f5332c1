"""Scale of state, in this process: stats and usage with a full trace store, memory
per stored trace, loading a large scenario file, and matching as rules grow."""

from __future__ import annotations

import dataclasses
import gc
import http.client
import statistics
import tempfile
import time
import tracemalloc
from pathlib import Path

from .harness import Plan, Row, at_most, info, ratio_row

SECTION = "state"
ANSWER_LIMIT_MS = 5.0
SCENARIO_LOAD_LIMIT_MS = 300.0
FLAT_RATIO = 1.5  # "matching cost stays flat": 100x the rules may not cost 1.5x the time
HISTORY_DAYS = 30
LOAD_RUNS = 3
DECIDE_REPEATS = 5
DECIDE_BUDGET_S = 0.1  # per repeat: slow cases stop early


def synthetic_traces(state, count: int, seed: int = 1) -> list:
    """`count` traces over the last 30 days on the default key, made by mockpoeti's own
    seeded history (history.py), with every catalog model equally likely."""
    from mockpoeti.base.catalog import HistorySpec
    from mockpoeti.books.history import generate_history

    spec = HistorySpec(seed=seed, days=HISTORY_DAYS, requests_per_day=-(-count // HISTORY_DAYS), error_rate=0.05,
                       accounts=(state.find_key(state.default_key).account,),
                       models=dict.fromkeys(state.catalog.models, 1.0))
    catalog = dataclasses.replace(state.catalog, history=spec)
    traces = generate_history(catalog, [state.find_key(state.default_key)], state.clock.now(), state.settings.routing_strategy)
    return traces[:count]


def bytes_per_trace(count: int) -> float:
    """Memory a stored trace holds (the trace, its strings, its index entry, the sums), by tracemalloc."""
    from mockpoeti.base.settings import Settings
    from mockpoeti.http.app import make_state

    state = make_state(Settings(seed=1, max_traces=count))
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        traces = synthetic_traces(state, count)
        for trace in traces:
            state.record(trace)
        del traces  # the state holds them now: what remains is what storing them costs
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    if len(state.traces) != count:
        raise RuntimeError(f"{len(state.traces)} traces stored; expected {count}")
    return (after - before) / count


def timed_get(port: int, path: str, api_key: str, times: int) -> float:
    """Median milliseconds of `times` GETs over one keep-alive connection (after a warm-up)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Authorization": f"Bearer {api_key}"}
    samples = []
    try:
        for i in range(times + 2):
            start = time.perf_counter()
            connection.request("GET", path, headers=headers)
            response = connection.getresponse()
            response.read()
            if response.status != 200:
                raise RuntimeError(f"GET {path} answered {response.status}")
            if i >= 2:
                samples.append((time.perf_counter() - start) * 1000)
    finally:
        connection.close()
    return statistics.median(samples)


def store_rows(plan: Plan) -> list[Row]:
    from mockpoeti import MockServer

    n, times = plan.traces, plan.timed_requests
    with MockServer(seed=1, max_traces=n) as server:
        traces = server.call(lambda: synthetic_traces(server.state, n))

        def record_all() -> float:
            start = time.perf_counter()
            for trace in traces:
                server.state.record(trace)
            return time.perf_counter() - start

        recording = server.call(record_all)
        traces.clear()  # the state holds them now; the list need not
        stored = server.call(lambda: len(server.state.traces))
        if stored != n:
            raise RuntimeError(f"{stored} traces stored; expected {n}")
        usage = timed_get(server.port, "/api/v1/usage", server.api_key, times)
        stats = timed_get(server.port, "/api/v1/request-traces/stats", server.api_key, times)
        listing = timed_get(server.port, "/api/v1/request-traces", server.api_key, times)
        models = timed_get(server.port, "/v1/models", server.api_key, times)
    per_trace = bytes_per_trace(n)
    return [
        at_most(f"{SECTION}.usage", SECTION, f"GET /api/v1/usage, {n:,} traces stored (median of {times})",
                usage, ANSWER_LIMIT_MS, "ms", models),
        at_most(f"{SECTION}.stats", SECTION, f"GET /api/v1/request-traces/stats, {n:,} traces (median of {times})",
                stats, ANSWER_LIMIT_MS, "ms", models),
        info(f"{SECTION}.list", SECTION, f"GET /api/v1/request-traces (page 1), {n:,} traces", listing, "ms", models),
        info(f"{SECTION}.trace_bytes", SECTION, f"memory per stored trace ({per_trace * n / 2**20:.0f} MB for {n:,})",
             per_trace, "B"),
        info(f"{SECTION}.record", SECTION, "State.record per trace", recording / n * 1e6, "us"),
    ]


# --- scenario files and matching -------------------------------------------------------

RULE_KINDS = (
    '  - name: "answer {i}"\n'
    '    match: {{endpoint: chat, model: "gpt-4o*", message: "question {i}"}}\n'
    '    respond: {{content: "Answer {i} from {{{{ model }}}}", latency_ms: {{median: 20, sigma: 0.5}}}}\n',
    '  - match: {{endpoint: chat, stream: true, message: "/topic-{i}\\\\b/"}}\n'
    '    respond: {{content: "Streamed answer {i}", stream: {{chunk: word, interval_ms: 10}}}}\n',
    '  - match: {{endpoint: usage, headers: {{x-rule: "{i}"}}}}\n'
    '    respond: {{error: service_unavailable, headers: {{Retry-After: "30"}}}}\n',
    '  - match: {{endpoint: chat, body: {{user: "user-{i}"}}}}\n'
    '    times: 2\n'
    '    respond:\n'
    '      - {{error: rate_limit_exceeded}}\n'
    '      - {{fault: {{kind: stall, after_chunks: 3, duration_ms: 100}}}}\n',
)


def write_scenario(folder: Path, name: str, rules: list[str]) -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(f"version: 1\nname: {name}\ndescription: benchmark rules\nrules:\n" + "".join(rules), encoding="utf-8")
    return path


def varied_rules(count: int) -> list[str]:
    return [RULE_KINDS[i % len(RULE_KINDS)].format(i=i) for i in range(count)]


def usage_rules(count: int, chat_rule: bool = True, endpoint: bool = True) -> list[str]:
    where = "endpoint: usage, " if endpoint else ""
    rules = [f'  - match: {{{where}headers: {{x-rule: "{i}"}}}}\n    respond: {{status: 200, body: {{rule: {i}}}}}\n'
             for i in range(count)]
    if chat_rule:
        rules.append('  - match: {endpoint: chat}\n    respond: {content: "hello"}\n')
    return rules


def decide_us(scenario: Path, codes: set[str], calls: int, near_misses: bool = False) -> float:
    """Best-of microseconds per Playbook.decide for a chat request (and near_misses, as an
    unanswered request costs)."""
    from mockpoeti.scripting.loader import load_scenario
    from mockpoeti.scripting.matching import Playbook
    from mockpoeti.scripting.view import view_of

    playbook = Playbook([load_scenario(scenario, codes)], seed=1)
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "What is the capital of France?"}]}
    view = view_of("chat", "POST", "/v1/chat/completions",
                   {"Authorization": "Bearer sk-poeti-x", "Content-Type": "application/json"}, body, "sk-poeti-x")
    best = float("inf")
    for _ in range(DECIDE_REPEATS):
        start = time.perf_counter()
        stop = start + DECIDE_BUDGET_S
        done = 0
        while done < calls and (done % 100 or time.perf_counter() < stop):
            if playbook.decide(view) is None and near_misses:
                playbook.near_misses(view)
            done += 1
        best = min(best, (time.perf_counter() - start) / done)
    return best * 1e6


def rules_rows(plan: Plan) -> list[Row]:
    from mockpoeti.base.catalog import load_catalog
    from mockpoeti.scripting.loader import load_scenario

    n, calls = plan.rules, plan.decide_calls
    few = 10
    codes = set(load_catalog().errors)
    with tempfile.TemporaryDirectory(prefix="mockpoeti-bench-") as name:
        folder = Path(name)
        big = write_scenario(folder, "many-rules", varied_rules(n))
        loads = []
        for _ in range(LOAD_RUNS):
            start = time.perf_counter()
            scenario = load_scenario(big, codes)
            loads.append((time.perf_counter() - start) * 1000)
        if len(scenario.rules) != n:
            raise RuntimeError(f"{len(scenario.rules)} rules loaded; expected {n}")
        small = decide_us(write_scenario(folder, "few", usage_rules(few)), codes, calls)
        large = decide_us(write_scenario(folder, "many", usage_rules(n)), codes, calls)
        anywhere = decide_us(write_scenario(folder, "anywhere", usage_rules(n, endpoint=False)), codes, calls)
        unanswered = decide_us(write_scenario(folder, "unanswered", usage_rules(n, chat_rule=False)), codes,
                               calls, near_misses=True)
    return [
        at_most(f"{SECTION}.scenario_load", SECTION, f"load a {n:,}-rule scenario file (median of {LOAD_RUNS})",
                statistics.median(loads), SCENARIO_LOAD_LIMIT_MS, "ms"),
        ratio_row(f"{SECTION}.match_flat", SECTION,
                  f"decide a chat call past {n:,} usage rules (baseline: past {few})", large, small, "us", at_most=FLAT_RATIO),
        info(f"{SECTION}.match_anywhere", SECTION, f"decide past {n:,} rules that name no endpoint",
             anywhere, "us", small, anywhere / small),
        info(f"{SECTION}.match_unanswered", SECTION, f"no rule answers, {n:,} rules: decide + near_misses",
             unanswered, "us", small, unanswered / small),
    ]


def run(plan: Plan) -> list[Row]:
    return store_rows(plan) + rules_rows(plan)
