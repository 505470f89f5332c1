"""Non-streaming chat throughput, state recording on, against the bare aiohttp handler."""

from __future__ import annotations

import json

from .harness import Plan, Row, info, ratio_row, zero
from .processes import Load, Server, alternate, best, call, load_requests, mockpoeti_serve, reference_serve

SECTION = "throughput"
PATH = "/v1/chat/completions"
CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "What is the capital of France?"}]}


def cpu_per_request_us(loads: list[Load]) -> float:
    ok = sum(load.ok for load in loads)
    return sum(load.server_cpu_s for load in loads) / ok * 1e6 if ok else float("inf")


def run(plan: Plan) -> list[Row]:
    with Server("bare", reference_serve()) as bare, Server("mockpoeti", mockpoeti_serve()) as mock:
        for server in (bare, mock):
            status, body = call(server.url, "POST", PATH, CHAT, server.api_key)
            if status != 200 or json.loads(body).get("object") != "chat.completion":
                raise RuntimeError(f"{server.name} answered {status}: {body[:300]!r}")
        runs = alternate(plan, [bare, mock], lambda server, seconds: load_requests(server, PATH, CHAT, plan, seconds))
        status, body = call(mock.url, "GET", "/api/v1/request-traces/stats", None, mock.api_key)
        recorded = json.loads(body)["total_requests"] if status == 200 else -1
    answered = sum(load.ok for load in runs["mockpoeti"])
    if recorded < answered:
        raise RuntimeError(f"state recording is off: {answered} chat calls answered, {recorded} traced")
    m, b = best(runs["mockpoeti"]), best(runs["bare"])
    tool = f"wrk -t2 -c{plan.connections}" if plan.loadgen == "wrk" else f"load.py -c{plan.connections}"
    return [
        ratio_row(f"{SECTION}.rps", SECTION, f"non-streaming chat, traces recorded ({tool}, best of {plan.rounds})",
                  m.rps, b.rps, "req/s", at_least=0.85),
        zero(f"{SECTION}.errors", SECTION, "errors over all runs",
             sum(load.errors for load in runs["mockpoeti"]), sum(load.errors for load in runs["bare"])),
        info(f"{SECTION}.cpu", SECTION, "server CPU per chat call", cpu_per_request_us(runs["mockpoeti"]), "us",
             cpu_per_request_us(runs["bare"]), cpu_per_request_us(runs["mockpoeti"]) / cpu_per_request_us(runs["bare"])),
    ]
