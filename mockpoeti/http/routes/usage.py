"""GET /api/v1/usage: token and cost totals for a date range, by model.

Read from the running sums, never by scanning traces: O(days x models).
"""

from __future__ import annotations

from datetime import date, timedelta

from aiohttp import web

from mockpoeti.base.clock import day_of
from mockpoeti.books.ledger import Sums, usd
from mockpoeti.http.call import Call
from mockpoeti.http.params import date_range, int_param
from mockpoeti.http.wire import json_response


async def get_usage(call: Call) -> web.Response:
    state = call.state
    day_from, day_to = date_range(call.query)
    if day_from is None and day_to is None:
        day_from, day_to = month_of(day_of(state.clock.now()))
    key_id = int_param(call.query, "key_id", None, 1)
    by_model = state.sums_by_model(
        call.account, day_from, day_to, lambda k, m: key_id is None or k == key_id
    )
    total = Sums()
    for sums in by_model.values():
        total.add(sums)
    rows = sorted(by_model.items(), key=lambda item: (-item[1].requests, item[0] or ""))
    return json_response({"code": 200, "data": {
        "date_from": day_from,
        "date_to": day_to,
        "total_requests": total.requests,
        "total_prompt_tokens": total.prompt_tokens,
        "total_completion_tokens": total.completion_tokens,
        "total_tokens": total.tokens,
        "total_cost_usd": usd(total.cost_nanos),
        "by_model": [
            {
                "model": model,
                "requests": s.requests,
                "prompt_tokens": s.prompt_tokens,
                "completion_tokens": s.completion_tokens,
                "tokens": s.tokens,
                "cost_usd": usd(s.cost_nanos),
            }
            for model, s in rows
        ],
    }})


def month_of(day: str) -> tuple[str, str]:
    """The first and last day of the calendar month that contains `day`."""
    first = date.fromisoformat(day).replace(day=1)
    last = (first + timedelta(days=32)).replace(day=1) - timedelta(days=1)
    return first.isoformat(), last.isoformat()
