"""API keys: list, create (the full key is shown only here), get, revoke.

Every lookup is scoped to the caller's account: another account's key id
answers 404 exactly like an id that never existed.
"""

from __future__ import annotations

import re

from aiohttp import web

from mockpoeti.base.errors import ApiError, invalid
from mockpoeti.books.ledger import ApiKey
from mockpoeti.http.call import Call
from mockpoeti.http.params import ascii_digits, number_field, page_params, text_field
from mockpoeti.http.wire import json_response

MAX_BUDGET_USD = 1_000_000_000
MAX_RATE_LIMIT = 1_000_000_000
# A name is a label shown in listings and dashboards: any script, emoji or mark is welcome,
# but not control characters (NUL, ESC...), line separators, or the explicit bidirectional
# overrides and isolates that make a name display as something other than what it is.
UNSHOWABLE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


async def list_keys(call: Call) -> web.Response:
    """All the account's keys (at most `--max-keys`), or one page of them with `page`/`page_size`."""
    keys = call.state.account_keys(call.account)
    if "page" in call.query or "page_size" in call.query:
        page, size = page_params(call.query)
        keys = keys[(page - 1) * size : page * size]
    return json_response({"code": 200, "data": [k.to_json() for k in keys]})


async def create_key(call: Call) -> web.Response:
    body = await call.json()
    if not isinstance(body, dict):
        raise ApiError("invalid_request", "Invalid value for 'body': expected a JSON object with 'name'.")
    name = text_field(body, "name", 1, 128)
    if UNSHOWABLE.search(name):
        raise invalid(
            "name",
            "a string without control characters (U+0000-U+001F, U+007F-U+009F), line separators "
            "or bidirectional overrides (U+202A-U+202E, U+2066-U+2069)",
        )
    budget = number_field(body, "monthly_budget", 0, MAX_BUDGET_USD)
    rate_limit = number_field(body, "rate_limit", 1, MAX_RATE_LIMIT, integer=True)
    key = call.state.create_key(
        call.account, name, None if budget is None else float(budget), rate_limit
    )
    return json_response({"code": 200, "data": key.to_json(reveal=True)})


async def get_key(call: Call) -> web.Response:
    return json_response({"code": 200, "data": _own_key(call).to_json()})


async def revoke_key(call: Call) -> web.Response:
    key = _own_key(call)
    key.is_active = False
    return json_response({"code": 200, "data": key.to_json()})


def _own_key(call: Call) -> ApiKey:
    raw = call.params["key_id"]
    key = call.state.account_key(call.account, int(raw)) if ascii_digits(raw) else None
    if key is None:
        raise ApiError("not_found", f"No API key with id '{raw}'.")
    return key
