"""The request log as a page: `GET /__admin/ui` (one self-contained HTML file shipped with
the package, `http/ui/index.html`), its live feed `GET /__admin/requests/stream`
(Server-Sent Events: the newest entries, then each new one as it is logged), and one
entry whole with its answer's body, `GET /__admin/requests/{request_id}`, which the page
fetches when a row is clicked.

Everything is read from `call.state` and the page's URLs are relative to the page, so
`/sessions/{id}/__admin/ui` shows that session and nothing else, with no code of its own.
"""

from __future__ import annotations

import base64
import hashlib
import re
from functools import cache
from itertools import islice
from pathlib import Path
from typing import Any

from aiohttp import web

from mockpoeti.base.errors import ApiError
from mockpoeti.base.jsonio import encode, parse_json
from mockpoeti.books.feed import CLEARED
from mockpoeti.books.journal import JournalEntry
from mockpoeti.books.ledger import usd
from mockpoeti.books.state import State
from mockpoeti.http.call import Call
from mockpoeti.http.params import ascii_digits
from mockpoeti.http.router import Router
from mockpoeti.http.wire import json_response

PAGE = Path(__file__).resolve().parents[1] / "ui" / "index.html"
SNAPSHOT_ENTRIES = 500  # the newest entries a feed starts with (the page shows at most as many)
HEARTBEAT_S = 15.0  # a comment line this often on a quiet feed, so a vanished page is noticed
RETRY_MS = 2000  # how soon a page's EventSource reconnects after its feed ended
FEED_HEADERS = {
    "Content-Type": "text/event-stream; charset=utf-8",
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",
}
# Left out of a row: the page fetches them with the entry when it is clicked.
DETAIL_ONLY = ("headers", "body", "response_headers", "query", "monotonic_s")


def add_routes(r: Router) -> None:
    r.add_get("/__admin/ui", show_page, name="admin_ui")
    r.add_get("/__admin/requests/stream", stream_requests, name="admin_requests_stream")
    r.add_get("/__admin/requests/{request_id}", get_request, name="admin_request")


@cache  # shipped with the package: it never changes while we run
def page() -> tuple[bytes, str]:
    """The page's bytes and its Content-Security-Policy: nothing may be fetched but from this
    server, and only the page's own script runs (by its hash: no injected markup can run code)."""
    html = PAGE.read_bytes()
    scripts = re.findall(rb"<script>(.*?)</script>", html, re.DOTALL)
    hashes = " ".join(f"'sha256-{base64.b64encode(hashlib.sha256(s).digest()).decode()}'" for s in scripts)
    policy = (f"default-src 'none'; script-src {hashes}; style-src 'unsafe-inline'; connect-src 'self'; "
              "img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
    return html, policy


async def show_page(call: Call) -> web.Response:
    html, policy = page()
    headers = {
        "Content-Security-Policy": policy,
        "Cache-Control": "no-store",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
    }
    return web.Response(body=html, content_type="text/html", charset="utf-8", headers=headers)


async def stream_requests(call: Call) -> web.StreamResponse:
    """The newest `SNAPSHOT_ENTRIES` entries as one `snapshot` event, then a `requests` event
    whenever entries were logged, `cleared` when the journal was emptied, `lagging` (and the
    end) when the page fell `LISTENER_BACKLOG` entries behind; each with the books' sums."""
    state = call.state
    listener = state.listen()
    try:
        response = web.StreamResponse(headers=FEED_HEADERS)
        call.stamp(response)
        await response.prepare(call.request)
        call.stream = response
        newest = list(islice(reversed(state.journal), SNAPSHOT_ENTRIES))
        snapshot = {"entries": [summary(e) for e in reversed(newest)], "total": state.journal_count, "books": books(state)}
        await response.write(b"retry: %d\n" % RETRY_MS + event("snapshot", snapshot))
        while True:
            items = await listener.next(HEARTBEAT_S)
            if listener.lagging:
                await response.write(event("lagging", {"backlog": "dropped"}))
            if listener.over:
                break
            await response.write(_events(items, state) if items else b": ping\n\n")
        await response.write_eof()
    except ConnectionError:  # the page went away mid-write: nothing left to tell it
        pass
    finally:
        state.unlisten(listener)
    return response


def _events(items: list[Any], state: State) -> bytes:
    out: list[bytes] = []
    entries: list[dict] = []
    for item in items:
        if item is CLEARED:
            entries.clear()
            out = [event("cleared", {})]
        else:
            entries.append(summary(item))
    out.append(event("requests", {"entries": entries, "total": state.journal_count, "books": books(state)}))
    return b"".join(out)


def event(name: str, data: Any) -> bytes:
    return b"".join((b"event: ", name.encode(), b"\ndata: ", encode(data), b"\n\n"))


def summary(entry: JournalEntry) -> dict:
    """What a row shows: the entry without its bodies and headers (`described`)."""
    shown = described(entry)
    for name in DETAIL_ONLY:
        shown.pop(name, None)
    return shown


def described(entry: JournalEntry) -> dict:
    """The journal's entry (masked as the journal masks it), with the model the request named."""
    shown = entry.to_json()
    body = shown.get("body")
    model = body.get("model") if isinstance(body, dict) else None
    shown["model"] = model if isinstance(model, str) else None
    shown["stream"] = isinstance(body, dict) and body.get("stream") is True
    shown["answer_bytes"] = entry.answer_size
    return shown


def books(state: State) -> dict:
    """The header line: the books' sums (chat calls traced, their tokens, cost and errors)."""
    total = state.totals()
    return {"calls": total.requests, "tokens": total.tokens, "cost_usd": usd(total.cost_nanos), "errors": total.errors}


async def get_request(call: Call) -> web.Response:
    """One journal entry whole, with the answer's body (keys masked as in the journal)."""
    raw = call.params["request_id"]
    entry = find_entry(call.state, int(raw)) if ascii_digits(raw) and len(raw) <= 18 else None
    if entry is None:
        raise ApiError("not_found", f"No request with id '{raw[:40]}' in the journal (it keeps the newest "
                                    f"{call.state.settings.max_journal}).")
    shown = {**described(entry), **entry.answer_json()}
    answer = shown["response_body"]
    if isinstance(answer, str) and answer.startswith("data: "):
        shown["response_text"] = streamed_text(answer)
    return json_response(shown)


def streamed_text(events: str) -> str:
    """The text a stream's first choice spelled out, chunk by chunk (as kept: maybe cut short)."""
    parts = []
    for line in events.splitlines():
        if not line.startswith("data: {"):
            continue
        try:
            chunk = parse_json(line[6:].encode())
        except ApiError:
            continue  # a malformed chunk (a fault), or one cut where the journal stopped keeping
        for choice in chunk.get("choices") or ():
            delta = choice.get("delta") if isinstance(choice, dict) and choice.get("index", 0) == 0 else None
            text = delta.get("content") if isinstance(delta, dict) else None
            if isinstance(text, str):
                parts.append(text)
    return "".join(parts)


def find_entry(state: State, entry_id: int) -> JournalEntry | None:
    """The journal holds consecutive ids, oldest first: the entry is found by its offset."""
    journal = state.journal
    if not journal:
        return None
    offset = entry_id - journal[0].id
    return journal[offset] if 0 <= offset < len(journal) else None
