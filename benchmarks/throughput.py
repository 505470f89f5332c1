"""Non-streaming chat throughput, traces and journal on, against the bare aiohttp handler
(which parses and writes JSON with orjson, as mockpoeti does).

Measured three ways, in alternating rounds:
- the same body every time (what a memo of answers can serve);
- a new prompt in every request (load.py's MARKER numbered per request), on both servers;
- mockpoeti with a scenario active whose rules answer none of the requests, against
  mockpoeti without one (both with new prompts): what an unanswered request costs;
- mockpoeti with 100 stubs (added through `POST /__admin/stubs`) that answer none of them,
  against mockpoeti without: what a test suite that registers many stubs pays on every call.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from .harness import Plan, Row, info, ratio_row, zero
from .load import MARKER
from .processes import Load, Server, alternate, best, call, load_requests, mockpoeti_serve, reference_serve

SECTION = "throughput"
PATH = "/v1/chat/completions"
CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "What is the capital of France?"}]}
NEW_PROMPT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": f"What is the capital of France? ({MARKER})"}]}
NEW_PROMPT_TARGET = 0.60  # issue 10.6: x the bare handler
SCENARIO_MISS_TARGET = 0.90  # issue 10.6: x mockpoeti without a scenario
STUBS_MISS_TARGET = 0.85  # issue 20: x mockpoeti without stubs
MISSING_STUBS = 100

# Rules that answer none of the benchmark's calls, each missing in another way (model,
# message, header, stream, key, body, endpoint): the near-misses an unanswered request has.
MISSING_RULES = """\
version: 1
name: bench-no-answer
rules:
  - {match: {endpoint: chat, model: "claude-*"}, respond: {content: "claude"}}
  - {match: {endpoint: chat, message: "refund"}, respond: {content: "refund"}}
  - {match: {endpoint: chat, message: "/^order [0-9]+$/"}, respond: {content: "order"}}
  - {match: {endpoint: chat, headers: {x-tenant: "acme-*"}}, respond: {content: "acme"}}
  - {match: {endpoint: chat, stream: true}, respond: {content: "streamed"}}
  - {match: {endpoint: chat, key: "sk-poeti-acme-*"}, respond: {content: "acme key"}}
  - {match: {endpoint: chat, body: {user: "alice"}}, respond: {content: "alice"}}
  - {match: {endpoint: chat, last_role: tool}, respond: {content: "after a tool"}}
  - {match: {endpoint: usage}, respond: {error: service_unavailable}}
  - {match: {endpoint: chat, model: "gpt-4o", message: "capital"}, respond: {content: "gpt-4o only"}}
"""


# Stubs that answer none of the benchmark's calls, stub i missing the way MISSING_RULES[i % 10] does
# (a stub without an endpoint answers chat calls), with values of its own where the rule has one.
STUB_KINDS = (
    lambda i: {"match": {"model": f"claude-{i}-*"}, "respond": "claude"},
    lambda i: {"match": {"message": f"refund {i}"}, "respond": "refund"},
    lambda i: {"match": {"message": f"/^order {i}-[0-9]+$/"}, "respond": "order"},
    lambda i: {"match": {"headers": {"x-tenant": f"acme-{i}-*"}}, "respond": "acme"},
    lambda i: {"match": {"stream": True}, "respond": "streamed"},
    lambda i: {"match": {"key": f"sk-poeti-acme{i}-*"}, "respond": "acme key"},
    lambda i: {"match": {"body": {"user": f"alice-{i}"}}, "respond": "alice"},
    lambda i: {"match": {"last_role": "tool"}, "respond": "after a tool"},
    lambda i: {"match": {"endpoint": "usage"}, "respond": {"error": "service_unavailable"}},
    lambda i: {"match": {"model": "gpt-4o", "message": "capital"}, "respond": "gpt-4o only"},
)


def missing_stubs(count: int) -> list[dict]:
    return [STUB_KINDS[i % len(STUB_KINDS)](i) for i in range(count)]


def add_stubs(server: Server, stubs: list[dict]) -> None:
    for stub in stubs:
        status, data = call(server.url, "POST", "/__admin/stubs", stub, server.api_key)
        if status != 201:
            raise RuntimeError(f"{server.name}: a stub was refused ({status}): {data[:300]!r}")


def cpu_per_request_us(loads: list[Load]) -> float:
    ok = sum(load.ok for load in loads)
    return sum(load.server_cpu_s for load in loads) / ok * 1e6 if ok else float("inf")


def check_answers(server: Server, body: dict) -> None:
    status, data = call(server.url, "POST", PATH, body, server.api_key)
    if status != 200 or json.loads(data).get("object") != "chat.completion":
        raise RuntimeError(f"{server.name} answered {status}: {data[:300]!r}")


def recorded(server: Server) -> int:
    status, data = call(server.url, "GET", "/api/v1/request-traces/stats", None, server.api_key)
    return json.loads(data)["total_requests"] if status == 200 else -1


def run(plan: Plan) -> list[Row]:
    with tempfile.TemporaryDirectory(prefix="mockpoeti-bench-") as folder:
        scenario = Path(folder) / "no-answer.yaml"
        scenario.write_text(MISSING_RULES, encoding="utf-8")
        with Server("bare", reference_serve()) as bare, Server("mockpoeti", mockpoeti_serve()) as mock, \
                Server("scenario", mockpoeti_serve("--scenario", str(scenario))) as missed, \
                Server("stubs", mockpoeti_serve()) as stubbed:
            add_stubs(stubbed, missing_stubs(MISSING_STUBS))
            for server in (bare, mock, missed, stubbed):
                check_answers(server, CHAT)
            same = alternate(plan, [bare, mock], lambda server, seconds: load_requests(server, PATH, CHAT, plan, seconds))
            new = alternate(plan, [bare, mock, missed, stubbed],
                            lambda server, seconds: load_requests(server, PATH, NEW_PROMPT, plan, seconds))
            for server, runs in ((mock, same["mockpoeti"] + new["mockpoeti"]), (missed, new["scenario"]),
                                 (stubbed, new["stubs"])):
                answered, traced = sum(load.ok for load in runs), recorded(server)
                if traced < answered:
                    raise RuntimeError(f"{server.name}: state recording is off: {answered} chat calls answered, {traced} traced")
            for server in (missed, stubbed):
                status, data = call(server.url, "GET", "/__admin/requests", None, server.api_key)
                if status != 200 or any(entry.get("rule") for entry in json.loads(data)["requests"]):
                    raise RuntimeError(f"{server.name}: its rules answered some requests: {data[:300]!r}")
    tool = f"wrk -t2 -c{plan.connections}" if plan.loadgen == "wrk" else f"load.py -c{plan.connections}"
    rounds = f"best of {plan.rounds}"
    errors = {name: sum(load.errors for load in same.get(name, []) + new[name]) for name in new}
    return [
        ratio_row(f"{SECTION}.rps", SECTION, f"non-streaming chat, the same body every time ({tool}, {rounds})",
                  best(same["mockpoeti"]).rps, best(same["bare"]).rps, "req/s"),
        ratio_row(f"{SECTION}.rps_new_prompt", SECTION, f"non-streaming chat, a new prompt per request ({rounds})",
                  best(new["mockpoeti"]).rps, best(new["bare"]).rps, "req/s", at_least=NEW_PROMPT_TARGET),
        ratio_row(f"{SECTION}.scenario_miss", SECTION,
                  "new prompts, a scenario whose 10 rules answer none (baseline: no scenario)",
                  best(new["scenario"]).rps, best(new["mockpoeti"]).rps, "req/s", at_least=SCENARIO_MISS_TARGET),
        ratio_row(f"{SECTION}.stubs_miss", SECTION,
                  f"new prompts, {MISSING_STUBS} stubs that answer none (baseline: no stubs)",
                  best(new["stubs"]).rps, best(new["mockpoeti"]).rps, "req/s", at_least=STUBS_MISS_TARGET),
        zero(f"{SECTION}.errors", SECTION,
             f"errors over all runs (scenario: {errors['scenario']}, stubs: {errors['stubs']})",
             errors["mockpoeti"] + errors["scenario"] + errors["stubs"], errors["bare"]),
        info(f"{SECTION}.cpu", SECTION, "server CPU per chat call, new prompts", cpu_per_request_us(new["mockpoeti"]), "us",
             cpu_per_request_us(new["bare"]), cpu_per_request_us(new["mockpoeti"]) / cpu_per_request_us(new["bare"])),
    ]
