"""Request traces: a filtered, paged listing (newest first), one trace by id, and
aggregate stats (answered from the running sums, unwrapped as the reference shows)."""

from __future__ import annotations

from itertools import islice

from aiohttp import web

from mockpoeti.base.clock import day_of
from mockpoeti.base.errors import ApiError
from mockpoeti.books.ledger import Sums, Trace, usd
from mockpoeti.http.call import Call
from mockpoeti.http.params import choice_param, date_range, int_param, page_params
from mockpoeti.http.wire import json_response


async def list_traces(call: Call) -> web.Response:
    query = call.query
    page, page_size = page_params(query)
    status = choice_param(query, "status", ("success", "error"))
    model, provider, key_id = query.get("model") or None, query.get("provider") or None, _key_id(query)
    day_from, day_to = date_range(query)

    def keep(t: Trace) -> bool:
        return (
            (status is None or t.status == status)
            and (model is None or t.model == model)
            and (provider is None or t.provider == provider)
            and (key_id is None or t.key_id == key_id)
            and (day_from is None or day_of(t.created_at) >= day_from)
            and (day_to is None or day_of(t.created_at) <= day_to)
        )

    state, account = call.state, call.account
    matching = state.account_traces(account, keep)
    start = (page - 1) * page_size
    if not any(f is not None for f in (status, model, provider, key_id, day_from, day_to)):
        # unfiltered: the count is kept, and the page is found without walking past it
        total = state.stored.get(account, 0)
        items = [t.to_json() for t in islice(matching, start, start + page_size)]
    else:
        total, items = 0, []
        for trace in matching:
            if start <= total < start + page_size:
                items.append(trace.to_json())
            total += 1
    return json_response({"code": 200, "data": {"items": items, "total": total, "page": page, "page_size": page_size}})


async def get_trace(call: Call) -> web.Response:
    trace_id = call.params["trace_id"]
    trace = call.state.find_trace(call.account, trace_id)
    if trace is None:
        raise ApiError("not_found", f"No request trace with id '{trace_id}'.")
    return json_response({"code": 200, "data": trace.to_json()})

async def get_stats(call: Call) -> web.Response:
    state = call.state
    query = call.query
    day_from, day_to = date_range(query)
    model, provider, key_id = query.get("model") or None, query.get("provider") or None, _key_id(query)
    models = state.catalog.models

    def keep(k: int, m: str | None) -> bool:
        if (key_id is not None and k != key_id) or (model is not None and m != model):
            return False
        return provider is None or (m in models and models[m].owned_by == provider)

    total = Sums()
    for sums in state.sums_by_model(call.account, day_from, day_to, keep).values():
        total.add(sums)
    n = total.requests
    return json_response({
        "total_requests": n,
        "success_count": total.successes,
        "error_count": total.errors,
        "total_tokens": total.tokens,
        "total_prompt_tokens": total.prompt_tokens,
        "total_completion_tokens": total.completion_tokens,
        "total_cost_usd": usd(total.cost_nanos),
        "avg_latency_ms": round(total.latency_ms / n) if n else 0,
        "avg_cost_per_request": usd(round(total.cost_nanos / n)) if n else 0.0,
        "success_rate": round(total.successes / n, 4) if n else 0.0,
    })

def _key_id(query) -> int | None:
    if query.get("key_id"):
        return int_param(query, "key_id", None, 1)
    return int_param(query, "api_key_id", None, 1)
