"""Sessions: what making one costs (against the reset the pytest fixture pays per test),
what an idle one holds, and what a request through /sessions/{id} costs against the
same request at the root of the same server."""

from __future__ import annotations

import gc
import http.client
import json
import statistics
import time
import tracemalloc

from .harness import Plan, Row, at_most, info, ratio_row
from .processes import Server, alternate, best, call, load_requests, mockpoeti_serve, rss_mb
from .throughput import CHAT, NEW_PROMPT, PATH, cpu_per_request_us

SECTION = "sessions"
CREATE_LIMIT_MS = 2.0
REQUEST_COST_LIMIT = 1.05  # x the same request at the root
SETTLE_S = 0.3
# Both paths keep the same number of traces (a session keeps at most 10,000), so neither evicts more.
SERVE_ARGS = ("--max-traces", "10000")


def in_process_ms(runs: int) -> dict[str, float]:
    """Median milliseconds of: making a session in the registry, a State.reset (the work the
    pytest fixture does per test), and both as a test pays for them from its thread
    (`server.session()`, `server.reset()`)."""
    from mockpoeti import MockServer
    from mockpoeti.base.settings import Settings
    from mockpoeti.books.sessions import Sessions
    from mockpoeti.http.app import make_state

    samples: dict[str, list[float]] = {"create": [], "reset": [], "session": [], "server_reset": []}
    live = Sessions(make_state(Settings(seed=1)))
    for _ in range(runs):
        start = time.perf_counter()
        made = live.create()
        created = time.perf_counter()
        live.root.reset()
        samples["create"].append(created - start)
        samples["reset"].append(time.perf_counter() - created)
        live.end(made.id)
    with MockServer(seed=1) as server:
        for _ in range(runs):
            start = time.perf_counter()
            handle = server.session()
            samples["session"].append(time.perf_counter() - start)
            handle.close()
            start = time.perf_counter()
            server.reset()
            samples["server_reset"].append(time.perf_counter() - start)
    return {name: statistics.median(values) * 1000 for name, values in samples.items()}


def idle_bytes(count: int) -> float:
    """Memory an idle session holds (its State, keys, journal and playbook), by tracemalloc."""
    from mockpoeti.base.settings import Settings
    from mockpoeti.books.sessions import Sessions
    from mockpoeti.http.app import make_state

    live = Sessions(make_state(Settings(seed=1, max_sessions=count)))
    live.end(live.create().id)  # what the first one loads lazily is not a session's
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(count):
            live.create()
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    if len(live) != count:
        raise RuntimeError(f"{len(live)} sessions live; expected {count}")
    return (after - before) / count


def over_http(server: Server, count: int) -> tuple[float, float]:
    """Median milliseconds of POST /__admin/sessions + DELETE over one keep-alive connection;
    then the server's RSS growth per idle session for `count` made and left (KiB)."""
    host, port = server.url.removeprefix("http://").rsplit(":", 1)
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    samples = []

    def send(method: str, path: str) -> dict:
        connection.request(method, path, b"{}", {"Content-Type": "application/json"})
        response = connection.getresponse()
        body = json.loads(response.read())
        if response.status not in (200, 201):
            raise RuntimeError(f"{method} {path} answered {response.status}: {body}")
        return body

    try:
        for _ in range(min(count, 200)):
            start = time.perf_counter()
            made = send("POST", "/__admin/sessions")
            send("DELETE", f"/__admin/sessions/{made['id']}")
            samples.append((time.perf_counter() - start) * 1000)
        time.sleep(SETTLE_S)
        before = rss_mb(server.pid)
        for _ in range(count):
            send("POST", "/__admin/sessions")
        time.sleep(SETTLE_S)
        after = rss_mb(server.pid)
        send("DELETE", "/__admin/sessions")
    finally:
        connection.close()
    return statistics.median(samples), (after - before) * 1024 / count


class InSession:
    """The same server, seen through one of its sessions: what load_requests needs of a Server."""

    def __init__(self, server: Server, prefix: str):
        self.name, self.server, self.prefix = "session", server, prefix
        self.url, self.api_key, self.pid = server.url + prefix, server.api_key, server.pid

    def check_alive(self) -> None:
        self.server.check_alive()


def run(plan: Plan) -> list[Row]:
    runs = 50 if plan.quick else 500
    count = 200 if plan.quick else 1000
    made = in_process_ms(runs)
    per_session = idle_bytes(count)
    with Server("root", mockpoeti_serve(*SERVE_ARGS, "--max-sessions", str(count + 1))) as server:
        create_http, rss_kib = over_http(server, count)
        status, body = call(server.url, "POST", "/__admin/sessions", {})
        if status != 201:
            raise RuntimeError(f"POST /__admin/sessions answered {status}: {body[:300]!r}")
        session = InSession(server, "/sessions/" + json.loads(body)["id"])
        for prefix in ("", session.prefix):  # the fixtures' key answers in a session too: the same request
            status, body = call(server.url, "POST", prefix + PATH, CHAT, server.api_key)
            if status != 200 or json.loads(body).get("object") != "chat.completion":
                raise RuntimeError(f"{prefix + PATH} answered {status}: {body[:300]!r}")
        loads = alternate(plan, [server, session],  # type: ignore[list-item]  # InSession stands in for a Server
                          lambda where, seconds: load_requests(where, PATH, NEW_PROMPT, plan, seconds))
        errors = sum(load.errors for runs_ in loads.values() for load in runs_)
        if errors:
            raise RuntimeError(f"{errors} requests failed in the root/session runs")
    root_cpu, session_cpu = cpu_per_request_us(loads["root"]), cpu_per_request_us(loads["session"])
    rounds = f"new prompts, best of {plan.rounds}"
    return [
        at_most(f"{SECTION}.create", SECTION,
                f"make a session (registry, median of {runs}; baseline: State.reset, the fixture's per-test work)",
                made["create"], CREATE_LIMIT_MS, "ms", made["reset"]),
        info(f"{SECTION}.create_python", SECTION, "server.session() from the test's thread (baseline: server.reset())",
             made["session"], "ms", made["server_reset"], made["session"] / made["server_reset"]),
        info(f"{SECTION}.create_http", SECTION, "POST /__admin/sessions + DELETE, one keep-alive connection", create_http, "ms"),
        info(f"{SECTION}.idle_bytes", SECTION, f"memory per idle session (tracemalloc, {count:,} sessions)", per_session, "B"),
        info(f"{SECTION}.idle_rss", SECTION, f"serve's RSS growth per idle session ({count:,} made over HTTP)",
             rss_kib * 1024, "B"),
        ratio_row(f"{SECTION}.cost", SECTION, f"server CPU per chat call in a session (baseline: at the root; {rounds})",
                  session_cpu, root_cpu, "us", at_most=REQUEST_COST_LIMIT),
        ratio_row(f"{SECTION}.rps", SECTION, f"chat calls per second in a session (baseline: at the root; {rounds})",
                  best(loads["session"]).rps, best(loads["root"]).rps, "req/s"),
    ]
