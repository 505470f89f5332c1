"""The request log as a page, in a real browser: Debian's headless chromium driven by
Playwright's Python API (never `playwright install`: `.ci/run` installs chromium). Traffic
comes from the official SDK; the tests assert what a person sees: rows that appear while
the page stays loaded, a stream's timeline with one mark per chunk and the fault where it
struck, near misses that name the field, the bodies on a click, filters, and a session's
page showing that session alone.

Without the browser these tests fail, loudly: they are not skipped.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright
from playwright.sync_api import Error as PlaywrightError

from mockpoeti import MockServer
from mockpoeti.books.feed import LISTENER_BACKLOG, MAX_LISTENERS
from mockpoeti.books.journal import JOURNAL_ANSWER_BYTES
from mockpoeti.books.timeline import MAX_MARKS

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
APPEAR_MS = 10_000  # generous, for a loaded machine: what is asserted is that no reload happened meanwhile
HI = [{"role": "user", "content": "hi"}]
PACED = {"chunk": "word", "first_chunk_ms": 20, "interval_ms": 10}


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (apt-get install -y chromium; .ci/run does)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        yield launched
        launched.close()


class Log:
    """The request-log page open in a tab, and what it did: navigations, requests, script errors."""

    def __init__(self, page: Page, url: str):
        self.page = page
        self.navigations = 0
        self.fetched: list[str] = []
        self.errors: list[str] = []
        page.on("framenavigated", lambda frame: self._navigated(frame))
        page.on("request", lambda request: self.fetched.append(request.url))
        page.on("pageerror", lambda error: self.errors.append(str(error)))
        self.response = page.goto(url + "/__admin/ui")

    def _navigated(self, frame) -> None:
        if frame == self.page.main_frame:
            self.navigations += 1

    def live(self) -> Log:
        expect(self.page.get_by_role("status", name="connection")).to_have_text("live", timeout=APPEAR_MS)
        self.page.evaluate("window.sameDocument = true")  # gone if the page were loaded again
        return self

    @property
    def rows(self):
        return self.page.locator("#rows tr")

    def row(self, trace_id: str):
        return self.page.locator("#rows tr", has=self.page.locator(f'td[data-cell="trace"]:text-is("{trace_id}")'))

    def cell(self, row, name: str) -> str:
        return row.locator(f'td[data-cell="{name}"]').inner_text()

    def never_reloaded(self) -> None:
        assert self.navigations == 1
        assert self.page.evaluate("window.sameDocument") is True
        assert not self.errors


@pytest.fixture
def open_log(browser) -> Iterator:
    """open_log(url, **context options) -> a Log, live; every tab closed after the test."""
    contexts = []

    def open_(url: str, **options) -> Log:
        context = browser.new_context(**{"viewport": {"width": 1400, "height": 900}, **options})
        contexts.append(context)
        return Log(context.new_page(), url)

    yield open_
    for context in contexts:
        context.close()


def traced(client: openai.OpenAI, **params) -> str:
    """A chat call whose answer is read whole; its X-Trace-ID."""
    raw = client.chat.completions.with_raw_response.create(**params)
    raw.parse()
    return raw.headers["X-Trace-ID"]


def streamed(client: openai.OpenAI, **params) -> tuple[str, int]:
    """A streamed chat call: its X-Trace-ID and how many chunks the SDK yielded."""
    with client.chat.completions.with_streaming_response.create(stream=True, **params) as raw:
        return raw.headers["X-Trace-ID"], sum(1 for _ in raw.parse())


def xs(marks) -> list[float]:
    """Where marks stand on their timeline (their x in pixels), in the order drawn."""
    return [float(x) for x in marks.evaluate_all("marks => marks.map(m => m.getAttribute('x1'))")]


# --- rows, live ---------------------------------------------------------------------------

def test_rows_appear_while_the_page_stays_loaded_newest_first(poeti, client, open_log):
    log = open_log(poeti.url).live()
    expect(log.page.get_by_text("No requests yet")).to_be_visible()

    started = time.monotonic()
    plain = traced(client, model="gpt-4o", messages=HI)
    expect(log.rows).to_have_count(1, timeout=APPEAR_MS)
    print(f"first row on the page {time.monotonic() - started:.3f} s after the call began")

    row = log.row(plain)
    assert log.cell(row, "status") == "200"
    assert log.cell(row, "model") == "gpt-4o"
    assert re.fullmatch(r"\d+(\.\d+)? ms", log.cell(row, "duration"))
    assert row.locator("td").nth(1).inner_text() == "POST"
    assert row.locator("td").nth(2).inner_text() == "/v1/chat/completions"

    poeti.stub({"error": "rate_limit_exceeded"}, message="throttle")
    poeti.stub({"content": "one two three four", "stream": PACED, "fault": {"kind": "disconnect", "after_chunks": 2}},
               message="cut")
    stream, _ = streamed(client, model="gpt-4o-mini", messages=HI)
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "throttle"}])
    with pytest.raises(openai.APIError):
        list(client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "cut"}], stream=True))

    expect(log.rows).to_have_count(4, timeout=APPEAR_MS)
    assert [log.cell(log.rows.nth(i), "status") for i in range(4)] == ["200", "429", "200", "200"]  # newest first
    assert log.cell(log.rows.nth(2), "trace") == stream
    assert "stream" in log.cell(log.rows.nth(2), "model")
    assert log.cell(log.rows.nth(1), "answered-by") == "stub#1"
    assert "fault: disconnect" in log.cell(log.rows.nth(0), "answered-by")
    log.never_reloaded()


def test_the_books_line_shows_calls_tokens_cost_and_errors_as_the_books_do(poeti, client, open_log):
    log = open_log(poeti.url).live()
    traced(client, model="gpt-4o", messages=HI)
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="no-such-model", messages=HI)
    expect(log.rows).to_have_count(2, timeout=APPEAR_MS)
    usage = httpx.get(poeti.url + "/api/v1/usage", headers={"Authorization": f"Bearer {poeti.api_key}"}).json()["data"]

    books = log.page.get_by_role("status", name="books")
    expect(books).to_contain_text("calls 2", timeout=APPEAR_MS)
    assert f"tokens {usage['total_tokens']:,}" in books.inner_text()
    assert f"cost ${usage['total_cost_usd']:g}" in books.inner_text()
    assert "errors 1" in books.inner_text()


# --- a stream's timeline ------------------------------------------------------------------

def test_a_streams_timeline_has_one_mark_per_chunk_as_it_went_out(poeti, client, open_log):
    log = open_log(poeti.url).live()
    poeti.stub({"content": "one two three four five six seven eight", "stream": PACED})
    trace_id, chunks = streamed(client, model="gpt-4o", messages=HI, stream_options={"include_usage": True})

    row = log.row(trace_id)
    marks = row.locator("svg .mark")
    expect(marks).to_have_count(chunks + 1, timeout=APPEAR_MS)  # every chunk the SDK read, and data: [DONE]
    assert row.locator('svg .mark[data-kind="content"]').count() == 8
    assert row.locator('svg .mark[data-kind="done"]').count() == 1
    assert row.locator("svg .planned").count() == 8  # the content chunks are the paced ones
    assert row.locator("svg").get_attribute("aria-label").startswith(f"timeline: {chunks + 1} chunks over ")
    drawn = xs(row.locator('svg .mark[data-kind="content"]'))
    line = next(e for e in httpx.get(poeti.url + "/__admin/requests").json()["requests"]
                if e["trace_id"] == trace_id)["delivery"]["timeline"]
    content = [m for m in line["marks"] if m[3]]  # each content chunk was one paced write
    assert len(content) == 8 and all(sent >= planned - 1 for sent, planned, _, _ in content)  # none before its time
    span = max([m[0] for m in line["marks"]] + [m[1] for m in line["marks"] if m[1] is not None]
               + [line["headers_ms"] or 0])
    assert drawn == pytest.approx([2 + 156 * sent / span for sent, *_ in content], abs=0.01)  # where and when it went out
    assert drawn == sorted(drawn)


def test_a_fault_is_marked_on_the_timeline_where_it_struck(poeti, client, open_log):
    log = open_log(poeti.url).live()
    poeti.stub({"content": "one two three four five six", "stream": PACED, "fault": {"kind": "disconnect", "after_chunks": 3}})
    received = 0
    with client.chat.completions.with_streaming_response.create(model="gpt-4o", messages=HI, stream=True) as raw:
        trace_id = raw.headers["X-Trace-ID"]
        with pytest.raises(openai.APIError):
            for _ in raw.parse():
                received += 1

    row = log.row(trace_id)
    expect(row.locator("svg .mark")).to_have_count(received, timeout=APPEAR_MS)  # the role chunk and three contents
    fault = row.locator("svg .fault")
    assert fault.get_attribute("data-fault") == "disconnect"
    last = max(xs(row.locator("svg .mark")))
    assert float(fault.get_attribute("x1")) >= last
    assert "fault disconnect at" in row.locator("svg").get_attribute("aria-label")


# --- what answered, and what came close -----------------------------------------------------

def test_a_near_miss_names_the_field_that_differed(poeti, client, open_log):
    log = open_log(poeti.url).live()
    poeti.stub("for the mini model only", model="gpt-4o-mini")
    trace_id = traced(client, model="gpt-4o", messages=HI)

    cell = log.row(trace_id).locator('td[data-cell="answered-by"]')
    expect(cell).to_contain_text("closest: stub#1", timeout=APPEAR_MS)
    assert "model: wanted gpt-4o-mini, got gpt-4o" in cell.inner_text()


def test_a_click_opens_the_request_and_the_answer_with_keys_masked(poeti, client, open_log):
    log = open_log(poeti.url).live()
    reply = client.chat.completions.with_raw_response.create(model="gpt-4o", messages=[{"role": "user", "content": "讲个故事"}])
    created = httpx.post(poeti.url + "/api/v1/api-keys", headers={"Authorization": f"Bearer {poeti.api_key}"},
                         json={"name": "ci"}).json()["data"]
    expect(log.rows).to_have_count(2, timeout=APPEAR_MS)

    log.rows.nth(1).click()
    details = log.page.get_by_role("complementary", name="request details")
    answer = details.get_by_label("answer body")
    expect(answer).to_contain_text(reply.parse().choices[0].message.content, timeout=APPEAR_MS)
    assert "讲个故事" in details.get_by_label("request body").inner_text()
    headers = details.get_by_label("request headers").inner_text()
    assert poeti.api_key not in headers and "Bearer sk-poeti-" in headers

    log.rows.nth(0).click()
    expect(details.get_by_role("heading", level=2)).to_have_text("POST /api/v1/api-keys → 200", timeout=APPEAR_MS)
    shown = details.get_by_label("answer body").inner_text()
    assert created["key"] not in shown and created["key_prefix"] in shown
    log.page.keyboard.press("Escape")
    expect(details).to_be_hidden()


def test_filters_by_status_model_and_endpoint(poeti, client, open_log):
    log = open_log(poeti.url).live()
    traced(client, model="gpt-4o", messages=HI)
    traced(client, model="gpt-4o-mini", messages=HI)
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="gpt-4o", messages=HI, temperature=9)
    client.models.list()
    expect(log.rows).to_have_count(4, timeout=APPEAR_MS)
    visible = log.page.locator("#rows tr:visible")

    log.page.get_by_label("status", exact=True).select_option("4")
    expect(visible).to_have_count(1)
    assert log.cell(visible.first, "status") == "400"
    log.page.get_by_label("status", exact=True).select_option("")
    log.page.get_by_label("model", exact=True).select_option("gpt-4o-mini")
    expect(visible).to_have_count(1)
    log.page.get_by_label("model", exact=True).select_option("")
    log.page.get_by_label("endpoint", exact=True).select_option("models")
    expect(visible).to_have_count(1)
    assert visible.first.locator("td").nth(2).inner_text() == "/v1/models"
    expect(log.page.get_by_role("status", name="shown")).to_have_text("1 of 4 shown")


def test_an_emptied_journal_empties_the_page(poeti, client, open_log):
    log = open_log(poeti.url).live()
    traced(client, model="gpt-4o", messages=HI)
    expect(log.rows).to_have_count(1, timeout=APPEAR_MS)

    httpx.delete(poeti.url + "/__admin/requests")
    expect(log.rows).to_have_count(0, timeout=APPEAR_MS)
    traced(client, model="gpt-4o", messages=HI)
    expect(log.rows).to_have_count(1, timeout=APPEAR_MS)
    httpx.post(poeti.url + "/__admin/reset")
    expect(log.rows).to_have_count(0, timeout=APPEAR_MS)
    log.never_reloaded()


# --- one session's page, and nobody else's --------------------------------------------------

def test_a_sessions_page_shows_that_session_alone(poeti, client, open_log):
    session = poeti.session()
    root_log = open_log(poeti.url).live()
    session_log = open_log(session.url).live()
    expect(session_log.page.locator("#where")).to_have_text(f"session {session.id} · request log")
    with openai.OpenAI(base_url=session.base_url, api_key=session.api_key, max_retries=0) as there:
        mine = traced(there, model="gpt-4o-mini", messages=HI)
        expect(session_log.rows).to_have_count(1, timeout=APPEAR_MS)
        theirs = traced(client, model="gpt-4o", messages=HI)
        expect(root_log.rows).to_have_count(1, timeout=APPEAR_MS)  # the root's row is out: the session's page had its chance
        mine_too = traced(there, model="gpt-4o-mini", messages=HI)
        expect(session_log.rows).to_have_count(2, timeout=APPEAR_MS)

    assert [session_log.cell(session_log.rows.nth(i), "trace") for i in range(2)] == [mine_too, mine]
    assert root_log.cell(root_log.rows.first, "trace") == theirs
    assert root_log.rows.count() == 1
    expect(session_log.page.get_by_role("status", name="books")).to_contain_text("calls 2")
    expect(root_log.page.get_by_role("status", name="books")).to_contain_text("calls 1")
    assert all(url.startswith(session.url + "/") for url in session_log.fetched)
    session_log.rows.first.click()  # the details come from the session's journal too
    expect(session_log.page.get_by_label("answer body")).to_contain_text("gpt-4o-mini", timeout=APPEAR_MS)
    assert httpx.get(poeti.url + "/__admin/requests/1").json()["trace_id"] == theirs


def test_the_admin_token_guards_the_page_and_a_browser_gets_in_with_it(open_log):
    with MockServer(admin_token="s3cret") as server:
        refused = httpx.get(server.url + "/__admin/ui")
        assert refused.status_code == 401
        assert refused.headers["WWW-Authenticate"].startswith("Basic ")  # a browser asks for the token
        with pytest.raises(PlaywrightError, match="ERR_INVALID_AUTH_CREDENTIALS"):  # ... and headless, nobody answers
            open_log(server.url)

        log = open_log(server.url, http_credentials={"username": "admin", "password": "s3cret"}).live()
        with openai.OpenAI(base_url=server.base_url, api_key=server.api_key, max_retries=0) as client:
            traced(client, model="gpt-4o", messages=HI)
        expect(log.rows).to_have_count(1, timeout=APPEAR_MS)
        log.rows.first.click()  # the details' fetch carries the token too
        expect(log.page.get_by_label("answer body")).to_contain_text("chat.completion", timeout=APPEAR_MS)
        for path in ("/__admin/ui", "/__admin/requests/stream", "/__admin/requests/1"):
            assert httpx.get(server.url + path, headers={"Authorization": f"Bearer {server.api_key}"}).status_code == 401


# --- what the page is made of ---------------------------------------------------------------

def test_the_page_fetches_nothing_but_from_its_server_and_shows_markup_as_text(poeti, client, open_log):
    log = open_log(poeti.url).live()
    answer = log.response
    assert answer.headers["content-type"] == "text/html; charset=utf-8"
    assert "default-src 'none'" in answer.headers["content-security-policy"]
    hostile = "<img src=x onerror=\"window.pwned=1\">"
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model=hostile, messages=HI)
    expect(log.rows).to_have_count(1, timeout=APPEAR_MS)

    assert log.cell(log.rows.first, "model") == hostile
    assert log.page.evaluate("window.pwned") is None
    assert log.page.locator("#rows img").count() == 0
    assert all(url.startswith(poeti.url + "/") for url in log.fetched), log.fetched
    log.never_reloaded()


def test_a_screenshot_of_the_page(poeti, client, open_log, tmp_path):
    poeti.stub({"content": "Once upon a time a small server streamed its answer one word at a time.", "stream": PACED},
               message="story")
    poeti.stub({"content": "one two three four five six", "stream": PACED, "fault": {"kind": "disconnect", "after_chunks": 3}},
               message="cut")
    poeti.stub({"error": "rate_limit_exceeded"}, model="gpt-4o-mini", message="busy")
    log = open_log(poeti.url, viewport={"width": 1600, "height": 900}).live()
    traced(client, model="gpt-4o", messages=[{"role": "user", "content": "Explain entanglement"}])
    streamed(client, model="gpt-4o", messages=[{"role": "user", "content": "story"}])
    with pytest.raises(openai.APIError):
        list(client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "cut"}], stream=True))
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "busy"}])
    traced(client, model="gpt-4o-mini", messages=[{"role": "user", "content": "summarise"}])
    expect(log.rows).to_have_count(5, timeout=APPEAR_MS)
    log.rows.nth(3).click()
    expect(log.page.get_by_label("answer text")).to_have_text(
        "Once upon a time a small server streamed its answer one word at a time.", timeout=APPEAR_MS)

    shot = tmp_path / "request-log.png"
    log.page.screenshot(path=str(shot), animations="disabled")  # a new row's highlight fast-forwarded to its end
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert shot.stat().st_size > 20_000


# --- the live feed and the entry behind a row, without a browser ------------------------------

def feed_events(lines: Iterator[str]) -> Iterator[tuple[str | None, dict]]:
    """(event name, data) of each SSE event of the feed."""
    name = None
    for line in lines:
        if line.startswith("event: "):
            name = line[len("event: "):]
        elif line.startswith("data: "):
            yield name, json.loads(line[len("data: "):])


def test_the_feed_starts_with_the_newest_entries_then_sends_each_new_one(poeti, client):
    for _ in range(3):
        traced(client, model="gpt-4o", messages=HI)
    with httpx.stream("GET", poeti.url + "/__admin/requests/stream", timeout=APPEAR_MS / 1000) as feed:
        assert feed.headers["Content-Type"] == "text/event-stream; charset=utf-8"
        events = feed_events(feed.iter_lines())
        name, snapshot = next(events)
        assert name == "snapshot"
        assert [entry["id"] for entry in snapshot["entries"]] == [1, 2, 3]
        assert snapshot["books"] == {"calls": 3, "tokens": sum(t["total_tokens"] for t in poeti.traces),
                                     "cost_usd": pytest.approx(sum(t["cost_usd"] for t in poeti.traces)), "errors": 0}
        assert not {"headers", "body", "response_headers"} & set(snapshot["entries"][0])  # fetched on a click

        fourth = traced(client, model="gpt-4o-mini", messages=HI)
        name, update = next(events)
        assert name == "requests"
        assert [(e["id"], e["trace_id"], e["model"]) for e in update["entries"]] == [(4, fourth, "gpt-4o-mini")]
        assert update["books"]["calls"] == 4


def test_the_feed_starts_with_the_newest_500_entries():
    with MockServer(max_journal=600) as server, httpx.Client(base_url=server.url) as http:
        for _ in range(520):
            http.get("/v1/models", headers={"Authorization": f"Bearer {server.api_key}"})
        with http.stream("GET", "/__admin/requests/stream") as feed:
            name, snapshot = next(feed_events(feed.iter_lines()))
    assert name == "snapshot"
    assert [e["id"] for e in snapshot["entries"]] == list(range(21, 521))
    assert snapshot["total"] == 520


def test_the_server_stops_at_once_and_cleanly_with_a_page_open():
    with MockServer() as server, httpx.stream("GET", server.url + "/__admin/requests/stream", timeout=10) as feed:
        lines = feed.iter_lines()
        assert next(feed_events(lines))[0] == "snapshot"
        started = time.monotonic()
        server.__exit__(None, None, None)  # stopped now, the feed still open (the `with` stops it again: a no-op)
        print(f"stopped in {time.monotonic() - started:.3f} s with a feed open")
        # the feed ended with its last chunk, not cut off when aiohttp gave up waiting (httpx would raise)
        assert [line for line in lines if line] == []


def test_an_ended_sessions_feed_ends(poeti):
    session = poeti.session()
    with httpx.stream("GET", session.url + "/__admin/requests/stream", timeout=10) as feed:
        lines = feed.iter_lines()
        assert next(feed_events(lines))[0] == "snapshot"
        session.close()
        assert [line for line in lines if line] == []


def test_a_reader_that_falls_behind_is_dropped_and_no_more_than_32_read_at_once(poeti):
    state = poeti.state

    def fill() -> tuple[bool, bool]:
        listener = state.listen()
        for _ in range(LISTENER_BACKLOG + 1):
            state.log_request(state.journal[-1])  # any entry: what a listener holds is a reference
        return listener.lagging, listener in state.listeners

    httpx.get(poeti.url + "/v1/models", headers={"Authorization": f"Bearer {poeti.api_key}"})
    assert poeti.call(fill) == (True, False)

    listeners = poeti.call(lambda: [state.listen() for _ in range(MAX_LISTENERS)])
    refused = httpx.get(poeti.url + "/__admin/requests/stream")
    assert refused.status_code == 503
    assert refused.json()["error"]["code"] == "service_unavailable"
    for listener in listeners:
        poeti.call(lambda listener=listener: state.unlisten(listener))
    with httpx.stream("GET", poeti.url + "/__admin/requests/stream") as feed:
        assert feed.status_code == 200


def test_the_entry_behind_a_row_has_the_answer_cut_at_32_kib(poeti, client):
    long = "word " * 10_000  # 50,000 bytes of content
    poeti.stub(long.strip())
    reply = client.chat.completions.with_raw_response.create(model="gpt-4o", messages=HI)
    size = len(reply.content)
    entry = httpx.get(poeti.url + "/__admin/requests/1").json()

    assert entry["trace_id"] == reply.headers["X-Trace-ID"]
    assert entry["response_body_truncated"] is True
    assert entry["response_body_bytes"] == size > JOURNAL_ANSWER_BYTES
    assert len(entry["response_body"].encode()) == JOURNAL_ANSWER_BYTES
    for missing in ("2", "0", "abc", "9" * 40):
        answer = httpx.get(poeti.url + f"/__admin/requests/{missing}")
        assert answer.status_code == 404
        assert answer.json()["error"]["code"] == "not_found"


def test_a_streams_marks_are_never_early_and_stop_at_1000(poeti, client):
    poeti.stub({"content": "one two three four five", "stream": PACED}, message="paced")
    poeti.stub({"content": "word " * 1_100, "stream": {"chunk": "word", "interval_ms": 0}}, message="long")
    streamed(client, model="gpt-4o", messages=[{"role": "user", "content": "paced"}])
    _, chunks = streamed(client, model="gpt-4o", messages=[{"role": "user", "content": "long"}])
    paced, long = (entry["delivery"] for entry in poeti.requests)

    planned = [(at, plan) for at, plan, _, _ in paced["timeline"]["marks"] if plan is not None]
    assert len(planned) == 5
    assert all(at >= plan - 1 for at, plan in planned)  # sent at its deadline or after (1 ms: the loop's clock)
    assert long["events_sent"] == chunks + 1
    assert len(long["timeline"]["marks"]) == MAX_MARKS
    assert long["timeline"]["marks_dropped"] == chunks + 1 - MAX_MARKS  # a write per chunk here
