"""The management endpoints tell the truth about the traffic the server served.

Real calls go through the OpenAI SDK; traces, usage, stats and key counters
must then agree with what those calls returned, exactly.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields

import httpx
import openai
import pytest
from serving import all_traces

from mockpoeti import MockServer
from mockpoeti.books.ledger import Sums

CLOCK = "2026-04-09T14:23:18Z"
DEFAULT_KEY = "sk-poeti-mockpoeti-default-key"
ACME_KEY = "sk-poeti-acme-production-0001"
RETIRED_KEY = "sk-poeti-acme-retired-0003"
UNKNOWN_KEY = "sk-poeti-nobody-knows-this-key"
HELLO = [{"role": "user", "content": "Explain quantum entanglement in two sentences."}]
NIHAO = [{"role": "user", "content": "解释量子纠缠"}]


@dataclass
class Call:
    """One chat call as its caller saw it."""

    trace_id: str
    key: str
    model: str | None
    day: str
    http_status: int = 200
    prompt_tokens: int = 0
    completion_tokens: int = 0
    error_code: str | None = None

    @property
    def status(self) -> str:
        return "success" if self.http_status == 200 else "error"


class Caller:
    """Clients for one server, one per key, reused: what a long-lived app would hold."""

    def __init__(self, server: MockServer):
        self.server = server
        self.admin = httpx.Client(base_url=server.url)
        self._sdks: dict[str, openai.OpenAI] = {}
        self._apis: dict[str, httpx.Client] = {}

    def sdk(self, key: str = DEFAULT_KEY) -> openai.OpenAI:
        if key not in self._sdks:
            self._sdks[key] = openai.OpenAI(base_url=self.server.base_url, api_key=key, max_retries=0)
        return self._sdks[key]

    def api(self, key: str = DEFAULT_KEY) -> httpx.Client:
        if key not in self._apis:
            self._apis[key] = httpx.Client(base_url=self.server.url, headers={"Authorization": f"Bearer {key}"})
        return self._apis[key]

    def today(self) -> str:
        return self.admin.get("/__admin/clock").json()["now"][:10]

    def set_clock(self, **body) -> None:
        self.admin.put("/__admin/clock", json=body).raise_for_status()

    def chat(self, key: str = DEFAULT_KEY, **request) -> Call:
        """A chat call through the SDK, success or failure, as a Call."""
        request.setdefault("messages", HELLO)
        call = Call(trace_id="", key=key, model=request.get("model"), day=self.today())
        try:
            raw = self.sdk(key).chat.completions.with_raw_response.create(**request)
        except openai.APIStatusError as e:
            call.trace_id = e.response.headers["X-Trace-ID"]
            call.http_status, call.error_code = e.status_code, e.code
            return call
        call.trace_id = raw.headers["X-Trace-ID"]
        reply = raw.parse()
        if request.get("stream"):
            usages = [chunk.usage for chunk in reply if chunk.usage is not None]
            assert len(usages) == 1, "include_usage streams end with exactly one usage chunk"
            usage = usages[0]
        else:
            usage = reply.usage
        call.prompt_tokens, call.completion_tokens = usage.prompt_tokens, usage.completion_tokens
        return call

    def close(self) -> None:
        for client in [self.admin, *self._sdks.values(), *self._apis.values()]:
            client.close()


@contextmanager
def serving(**options) -> Iterator[Caller]:
    with MockServer(**options) as server:
        caller = Caller(server)
        try:
            yield caller
        finally:
            caller.close()


def models(client: httpx.Client) -> dict[str, dict]:
    return {m["id"]: m for m in client.get("/v1/models").json()["data"]}


def expected_cost(catalog: dict, model: str | None, prompt_tokens: int, completion_tokens: int) -> float:
    """What the catalog's prices (USD per 1M tokens) make of a call's usage."""
    if model not in catalog:
        return 0.0
    pricing = catalog[model]["pricing"]
    return prompt_tokens * pricing["input"] / 1e6 + completion_tokens * pricing["output"] / 1e6


@pytest.fixture
def caller() -> Iterator[Caller]:
    with serving(seed=7, clock=CLOCK) as c:
        yield c


@pytest.fixture
def catalog(caller) -> dict:
    return models(caller.api())


@dataclass
class Traffic:
    calls: list[Call]  # every call, oldest first, the unknown key's included
    second_key: str  # a key created for the default account
    second_key_id: int
    default_key_id: int

    def of(self, *keys: str) -> list[Call]:
        return [c for c in self.calls if c.key in keys]

    @property
    def default_account(self) -> list[Call]:
        return self.of(DEFAULT_KEY, self.second_key)


@pytest.fixture
def traffic(caller) -> Traffic:
    """A mix of real calls over two days: several models, streams, failures, two accounts."""
    (default_key,) = caller.api().get("/api/v1/api-keys").json()["data"]
    created = caller.api().post("/api/v1/api-keys", json={"name": "second"}).json()["data"]
    second = created["key"]
    chat = caller.chat
    calls = [
        chat(model="gpt-4o"),
        chat(model="gpt-4o-mini", messages=NIHAO, stream=True, stream_options={"include_usage": True}),
        chat(model="claude-3-5-sonnet-20241022", n=2),
        chat(model="no-such-model"),  # 404 model_not_found
        chat(model="gpt-4o", temperature="hot"),  # 400 invalid_request
        chat(second, model="deepseek-chat", stream=True, stream_options={"include_usage": True}),
        chat(ACME_KEY, model="gemini-2.0-flash"),
        chat(RETIRED_KEY, model="gpt-4o"),  # 401: revoked, traced for acct-acme
        chat(UNKNOWN_KEY, model="gpt-4o"),  # 401: unknown, traced for nobody
    ]
    caller.set_clock(advance=86_400)
    calls += [
        chat(model="gpt-4o", messages=NIHAO, max_tokens=5),
        chat(second, model="claude-3-5-haiku-20241022"),
        chat(model="qwen-plus", stream=True, stream_options={"include_usage": True}, n=3),
        chat(model="gpt-4o-mini", messages=[{"role": "user", "content": 42}]),  # 400 invalid_request
    ]
    assert [(c.http_status, c.error_code) for c in calls if c.status == "error"] == [
        (404, "model_not_found"), (400, "invalid_request"), (401, "invalid_api_key"),
        (401, "invalid_api_key"), (400, "invalid_request"),
    ]
    return Traffic(calls, second, created["id"], default_key["id"])


# --- traces ------------------------------------------------------------------

def test_every_call_with_a_known_key_is_traced_and_no_other(caller, traffic):
    known = [c for c in traffic.calls if c.key != UNKNOWN_KEY]
    assert caller.admin.get("/__admin/health").json()["traces"] == len(known) == 12
    listed = all_traces(caller.api()) + all_traces(caller.api(ACME_KEY))
    assert sorted(t["trace_id"] for t in listed) == sorted(c.trace_id for c in known)


def test_each_trace_describes_the_call_that_returned_its_id(caller, traffic, catalog):
    for call in traffic.calls:
        if call.key in (UNKNOWN_KEY, RETIRED_KEY):
            continue  # not traced / has a test of its own below
        owner = ACME_KEY if call.key == ACME_KEY else DEFAULT_KEY
        response = caller.api(owner).get(f"/api/v1/request-traces/{call.trace_id}")
        assert response.status_code == 200, call
        trace = response.json()["data"]
        assert trace["trace_id"] == call.trace_id
        assert trace["model"] == call.model
        assert trace["provider"] == (catalog[call.model]["owned_by"] if call.model in catalog else None)
        assert trace["status"] == call.status
        assert trace["http_status"] == call.http_status
        assert trace["error_code"] == call.error_code
        assert trace["prompt_tokens"] == call.prompt_tokens
        assert trace["completion_tokens"] == call.completion_tokens
        assert trace["total_tokens"] == call.prompt_tokens + call.completion_tokens
        assert trace["cost_usd"] == pytest.approx(
            expected_cost(catalog, call.model, call.prompt_tokens, call.completion_tokens), rel=1e-9, abs=1e-12
        )
        assert trace["created_at"] == call.day + "T14:23:18Z"
        assert trace["routing_strategy"] == "comprehensive"
        assert isinstance(trace["latency_ms"], int) and trace["latency_ms"] >= 0
        if call.key == DEFAULT_KEY:
            assert trace["api_key_id"] == traffic.default_key_id
        if call.key == traffic.second_key:
            assert trace["api_key_id"] == traffic.second_key_id
        if call.status == "success":
            assert call.prompt_tokens > 0 and call.completion_tokens > 0 and trace["cost_usd"] > 0


def test_a_revoked_keys_call_is_traced_for_its_account_with_its_model(caller, traffic):
    revoked = next(c for c in traffic.calls if c.key == RETIRED_KEY)
    assert caller.api().get(f"/api/v1/request-traces/{revoked.trace_id}").status_code == 404
    errors = all_traces(caller.api(ACME_KEY), "status=error")
    assert [t["trace_id"] for t in errors] == [revoked.trace_id]
    assert (errors[0]["http_status"], errors[0]["error_code"]) == (401, "invalid_api_key")
    assert (errors[0]["prompt_tokens"], errors[0]["completion_tokens"], errors[0]["cost_usd"]) == (0, 0, 0)
    assert (errors[0]["model"], errors[0]["provider"]) == ("gpt-4o", "openai")


def test_trace_listing_is_newest_first(caller, traffic):
    listed = [t["trace_id"] for t in all_traces(caller.api())]
    assert listed == [c.trace_id for c in reversed(traffic.default_account)]


def test_trace_listing_pages(caller, traffic):
    mine = [c.trace_id for c in reversed(traffic.default_account)]
    assert len(mine) == 10
    pages = [caller.api().get(f"/api/v1/request-traces?page={p}&page_size=3").json()["data"] for p in (1, 2, 3, 4, 5)]
    assert [[t["trace_id"] for t in p["items"]] for p in pages] == [mine[0:3], mine[3:6], mine[6:9], mine[9:], []]
    assert [(p["page"], p["page_size"], p["total"]) for p in pages] == [(n, 3, 10) for n in (1, 2, 3, 4, 5)]
    default_page = caller.api().get("/api/v1/request-traces").json()["data"]
    assert (default_page["page"], default_page["page_size"], default_page["total"]) == (1, 20, 10)
    assert [t["trace_id"] for t in default_page["items"]] == mine


LISTING_FILTERS = [
    ("status=success", lambda c, t: c.status == "success"),
    ("status=error", lambda c, t: c.status == "error"),
    ("model=gpt-4o", lambda c, t: c.model == "gpt-4o"),
    ("model=no-such-model", lambda c, t: c.model == "no-such-model"),
    ("provider=anthropic", lambda c, t: c.model.startswith("claude")),
    ("provider=openai&status=success", lambda c, t: c.model.startswith("gpt") and c.status == "success"),
    ("key_id={second}", lambda c, t: c.key == t.second_key),
    ("key_id={default}", lambda c, t: c.key == DEFAULT_KEY),
    ("date_from=2026-04-10", lambda c, t: c.day >= "2026-04-10"),
    ("date_to=2026-04-09", lambda c, t: c.day <= "2026-04-09"),
    ("date_from=2026-04-09&date_to=2026-04-09", lambda c, t: c.day == "2026-04-09"),
    ("date_from=2026-04-11", lambda c, t: False),
    ("date_to=2026-04-08", lambda c, t: False),
    ("date_from=2026-04-10&model=gpt-4o&status=success",
     lambda c, t: c.day == "2026-04-10" and c.model == "gpt-4o" and c.status == "success"),
]


@pytest.mark.parametrize(("query", "wanted"), LISTING_FILTERS, ids=[q for q, _ in LISTING_FILTERS])
def test_trace_listing_filters(caller, traffic, query, wanted):
    query = query.format(second=traffic.second_key_id, default=traffic.default_key_id)
    data = caller.api().get(f"/api/v1/request-traces?page_size=100&{query}").json()["data"]
    expected = [c.trace_id for c in reversed(traffic.default_account) if wanted(c, traffic)]
    assert [t["trace_id"] for t in data["items"]] == expected
    assert data["total"] == len(expected)


def test_a_missing_trace_is_not_found(caller, traffic):
    response = caller.api().get("/api/v1/request-traces/trace-poeti-0000000000000000")
    assert response.status_code == 404
    assert response.json() == {"error": {"code": "not_found", "message": response.json()["error"]["message"], "status": 404}}
    assert response.headers["X-Trace-ID"]


# --- aggregates ----------------------------------------------------------------

def sums_by_model(traces: list[dict], catalog: dict) -> dict:
    """Per model of the catalog; calls naming any other model count under None."""
    rows: dict = defaultdict(lambda: {"requests": 0, "prompt_tokens": 0, "completion_tokens": 0, "cost_usd": 0.0})
    for t in traces:
        row = rows[t["model"] if t["model"] in catalog else None]
        row["requests"] += 1
        row["prompt_tokens"] += t["prompt_tokens"]
        row["completion_tokens"] += t["completion_tokens"]
        row["cost_usd"] += t["cost_usd"]
    return rows


def test_usage_is_the_sum_of_the_traces(caller, traffic, catalog):
    traces = all_traces(caller.api())
    usage = caller.api().get("/api/v1/usage").json()["data"]
    assert usage["total_requests"] == len(traces) == 10
    assert usage["total_prompt_tokens"] == sum(t["prompt_tokens"] for t in traces)
    assert usage["total_completion_tokens"] == sum(t["completion_tokens"] for t in traces)
    assert usage["total_tokens"] == usage["total_prompt_tokens"] + usage["total_completion_tokens"]
    assert usage["total_cost_usd"] == pytest.approx(sum(t["cost_usd"] for t in traces), rel=1e-9)
    assert any(t["model"] not in catalog for t in traces)  # the traffic names an unknown model
    expected = sums_by_model(traces, catalog)
    assert sorted(map(str, (row["model"] for row in usage["by_model"]))) == sorted(map(str, expected))
    for row in usage["by_model"]:
        want = expected[row["model"]]
        assert row["requests"] == want["requests"], row
        assert row["prompt_tokens"] == want["prompt_tokens"], row
        assert row["completion_tokens"] == want["completion_tokens"], row
        assert row["tokens"] == want["prompt_tokens"] + want["completion_tokens"], row
        assert row["cost_usd"] == pytest.approx(want["cost_usd"], rel=1e-9, abs=1e-12), row


def test_usage_agrees_with_what_the_calls_returned(caller, traffic, catalog):
    mine = traffic.default_account
    usage = caller.api().get("/api/v1/usage").json()["data"]
    assert usage["total_prompt_tokens"] == sum(c.prompt_tokens for c in mine)
    assert usage["total_completion_tokens"] == sum(c.completion_tokens for c in mine)
    assert usage["total_cost_usd"] == pytest.approx(
        sum(expected_cost(catalog, c.model, c.prompt_tokens, c.completion_tokens) for c in mine), rel=1e-9
    )
    second = traffic.of(traffic.second_key)
    by_key = caller.api().get(f"/api/v1/usage?key_id={traffic.second_key_id}").json()["data"]
    assert by_key["total_requests"] == len(second) == 2
    assert by_key["total_tokens"] == sum(c.prompt_tokens + c.completion_tokens for c in second)


@pytest.mark.parametrize("day", ["2026-04-09", "2026-04-10"])
def test_usage_for_a_date_range(caller, traffic, day):
    usage = caller.api().get(f"/api/v1/usage?date_from={day}&date_to={day}").json()["data"]
    calls = [c for c in traffic.default_account if c.day == day]
    assert (usage["date_from"], usage["date_to"]) == (day, day)
    assert usage["total_requests"] == len(calls)
    assert usage["total_tokens"] == sum(c.prompt_tokens + c.completion_tokens for c in calls)


def test_stats_are_sums_and_averages_of_the_traces(caller, traffic):
    traces = all_traces(caller.api())
    stats = caller.api().get("/api/v1/request-traces/stats").json()
    n = len(traces)
    total_cost = sum(t["cost_usd"] for t in traces)
    assert stats["total_requests"] == n == 10
    assert stats["success_count"] == sum(t["status"] == "success" for t in traces) == 7
    assert stats["error_count"] == sum(t["status"] == "error" for t in traces) == 3
    assert stats["total_tokens"] == sum(t["total_tokens"] for t in traces)
    assert stats["total_cost_usd"] == pytest.approx(total_cost, rel=1e-9)
    assert abs(stats["avg_latency_ms"] - sum(t["latency_ms"] for t in traces) / n) <= 0.5
    assert stats["avg_cost_per_request"] == pytest.approx(total_cost / n, rel=1e-6, abs=1e-9)


def test_key_counters_grow_exactly_with_calls(caller, catalog):
    def counters() -> dict[int, tuple[int, float]]:
        return {k["id"]: (k["total_requests"], k["total_cost"]) for k in caller.api().get("/api/v1/api-keys").json()["data"]}

    key = caller.api().post("/api/v1/api-keys", json={"name": "counted"}).json()["data"]
    before = counters()
    assert before[key["id"]] == (0, 0.0)
    spent = 0.0
    requests = [
        {"model": "gpt-4o"},
        {"model": "claude-3-7-sonnet-20250219", "stream": True, "stream_options": {"include_usage": True}},
        {"model": "no-such-model"},
        {"model": "gpt-4.1-mini", "n": 2},
    ]
    for n, request in enumerate(requests, start=1):
        call = caller.chat(key["key"], **request)
        spent += expected_cost(catalog, call.model, call.prompt_tokens, call.completion_tokens)
        now = counters()
        assert now[key["id"]][0] == n
        assert now[key["id"]][1] == pytest.approx(spent, rel=1e-9, abs=1e-12)
        assert {k: v for k, v in now.items() if k != key["id"]} == {k: v for k, v in before.items() if k != key["id"]}


def test_usage_defaults_to_the_current_month_by_the_server_clock(caller):
    april = caller.api().get("/api/v1/usage").json()["data"]
    assert (april["date_from"], april["date_to"]) == ("2026-04-01", "2026-04-30")
    assert april["total_requests"] == 0
    in_april = caller.chat(model="gpt-4o")
    caller.set_clock(time="2026-05-02T08:00:00Z")
    in_may = caller.chat(model="gpt-4o-mini")
    may = caller.api().get("/api/v1/usage").json()["data"]
    april = caller.api().get("/api/v1/usage?date_from=2026-04-01&date_to=2026-04-30").json()["data"]
    assert (may["date_from"], may["date_to"]) == ("2026-05-01", "2026-05-31")
    assert may["total_requests"] == 1
    assert may["total_tokens"] == in_may.prompt_tokens + in_may.completion_tokens
    assert [row["model"] for row in may["by_model"]] == ["gpt-4o-mini"]
    assert april["total_requests"] == 1
    assert april["total_tokens"] == in_april.prompt_tokens + in_april.completion_tokens


@pytest.mark.parametrize(
    ("now", "month"),
    [
        ("2026-04-09T14:23:18Z", ("2026-04-01", "2026-04-30")),
        ("2026-02-01T00:00:00Z", ("2026-02-01", "2026-02-28")),
        ("2028-02-29T12:00:00Z", ("2028-02-01", "2028-02-29")),
        ("2026-12-31T23:59:59Z", ("2026-12-01", "2026-12-31")),
    ],
)
def test_the_default_usage_month_follows_the_clock(caller, now, month):
    caller.set_clock(time=now)
    usage = caller.api().get("/api/v1/usage").json()["data"]
    assert (usage["date_from"], usage["date_to"]) == month


STATS_FILTERS = [
    ("model=gpt-4o", lambda c, t: c.model == "gpt-4o"),
    ("provider=anthropic", lambda c, t: c.model.startswith("claude")),
    ("key_id={second}", lambda c, t: c.key == t.second_key),
    ("date_from=2026-04-10", lambda c, t: c.day >= "2026-04-10"),
    ("date_to=2026-04-09&provider=openai", lambda c, t: c.day <= "2026-04-09" and c.model.startswith("gpt")),
]


@pytest.mark.parametrize(("query", "wanted"), STATS_FILTERS, ids=[q for q, _ in STATS_FILTERS])
def test_filtered_stats_agree_with_the_filtered_listing(caller, traffic, query, wanted):
    query = query.format(second=traffic.second_key_id)
    traces = all_traces(caller.api(), query)
    stats = caller.api().get(f"/api/v1/request-traces/stats?{query}").json()
    assert [t["trace_id"] for t in traces] == [c.trace_id for c in reversed(traffic.default_account) if wanted(c, traffic)]
    assert stats["total_requests"] == len(traces) > 0
    assert stats["success_count"] == sum(t["status"] == "success" for t in traces)
    assert stats["error_count"] == sum(t["status"] == "error" for t in traces)
    assert stats["total_tokens"] == sum(t["total_tokens"] for t in traces)
    assert stats["total_cost_usd"] == pytest.approx(sum(t["cost_usd"] for t in traces), rel=1e-9, abs=1e-12)


def test_evicted_traces_still_count_in_usage_stats_and_keys():
    with serving(seed=3, clock=CLOCK, max_traces=3) as caller:
        calls = [caller.chat(model=m) for m in ("gpt-4o", "gpt-4o-mini", "gpt-4o", "deepseek-chat", "no-such-model")]
        client = caller.api()
        listing = client.get("/api/v1/request-traces").json()["data"]
        oldest = client.get(f"/api/v1/request-traces/{calls[0].trace_id}")
        newest = client.get(f"/api/v1/request-traces/{calls[-1].trace_id}")
        usage = client.get("/api/v1/usage").json()["data"]
        stats = client.get("/api/v1/request-traces/stats").json()
        (key,) = client.get("/api/v1/api-keys").json()["data"]
        catalog = models(client)
    assert listing["total"] == 3
    assert [t["trace_id"] for t in listing["items"]] == [c.trace_id for c in reversed(calls[-3:])]
    assert oldest.status_code == 404
    assert newest.status_code == 200
    tokens = sum(c.prompt_tokens + c.completion_tokens for c in calls)
    cost = sum(expected_cost(catalog, c.model, c.prompt_tokens, c.completion_tokens) for c in calls)
    assert usage["total_requests"] == stats["total_requests"] == key["total_requests"] == 5
    assert usage["total_tokens"] == stats["total_tokens"] == tokens
    assert (stats["success_count"], stats["error_count"]) == (4, 1)
    assert usage["total_cost_usd"] == pytest.approx(cost, rel=1e-9)
    assert stats["total_cost_usd"] == pytest.approx(cost, rel=1e-9)
    assert key["total_cost"] == pytest.approx(cost, rel=1e-9)
    assert {row["model"]: row["requests"] for row in usage["by_model"]} == {
        "gpt-4o": 2, "gpt-4o-mini": 1, "deepseek-chat": 1, None: 1,  # models outside the catalog count as one
    }


# --- seeded history ------------------------------------------------------------

def lived_in_view(caller: Caller) -> dict:
    client = caller.api()
    return {
        "first_page": client.get("/api/v1/request-traces?page_size=50").json()["data"],
        "usage": client.get("/api/v1/usage").json()["data"],
        "all_usage": client.get("/api/v1/usage?date_from=2026-01-01&date_to=2026-12-31").json()["data"],
        "stats": client.get("/api/v1/request-traces/stats").json(),
        "errors": client.get("/api/v1/request-traces?status=error&page_size=100").json()["data"],
        "keys": client.get("/api/v1/api-keys").json()["data"],
    }


def test_history_makes_a_lived_in_server_the_same_every_time():
    with serving(clock=CLOCK, history=True) as one, serving(clock=CLOCK, history=True) as two:
        first, second = lived_in_view(one), lived_in_view(two)
    assert first == second
    assert first["first_page"]["total"] > 0
    assert first["usage"]["total_requests"] > 0
    assert first["usage"]["total_cost_usd"] > 0
    assert first["errors"]["total"] > 0
    assert first["stats"]["total_requests"] == first["first_page"]["total"] == first["all_usage"]["total_requests"]
    assert first["stats"]["error_count"] == first["errors"]["total"]
    assert sum(k["total_requests"] for k in first["keys"]) == first["stats"]["total_requests"]
    created = [t["created_at"] for t in first["first_page"]["items"]]
    assert created == sorted(created, reverse=True)
    assert all(day <= CLOCK for day in created)


def test_history_traces_agree_with_their_prices():
    with serving(clock=CLOCK, history=True) as caller:
        catalog = models(caller.api())
        traces = all_traces(caller.api(), "status=success")[:200]
    assert traces
    for t in traces:
        assert t["cost_usd"] == pytest.approx(
            expected_cost(catalog, t["model"], t["prompt_tokens"], t["completion_tokens"]), rel=1e-9
        )


def test_history_is_off_by_default(caller):
    assert caller.api().get("/api/v1/request-traces").json()["data"]["total"] == 0
    assert caller.api().get("/api/v1/request-traces/stats").json()["total_requests"] == 0


def test_sums_add_adds_every_field():
    """`Sums.add` names its fields one by one (compiled, a loop over the slots is refused):
    a field added to `Sums` and not to `add` fails here."""
    names = [f.name for f in fields(Sums)]
    total = Sums(*range(1, len(names) + 1))
    total.add(Sums(*(100 * k for k in range(1, len(names) + 1))))
    assert [getattr(total, name) for name in names] == [101 * k for k in range(1, len(names) + 1)]
