"""GET /metrics: the Prometheus text format, with the series SPEC names, counters that agree
exactly with the books (usage, traces) and the journal, a session's its own, guarded by
the admin token; prometheus_client loaded only when a scrape first asks for it."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter, defaultdict

import httpx
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from mockpoeti import MockServer
from mockpoeti.books.meters import DURATION_BUCKETS_S, Meters

SERIES = {
    "mockpoeti_requests": "counter",
    "mockpoeti_chat_tokens": "counter",
    "mockpoeti_chat_cost_usd": "counter",
    "mockpoeti_faults": "counter",
    "mockpoeti_stream_chunks": "counter",
    "mockpoeti_request_duration_seconds": "histogram",
}
HI = [{"role": "user", "content": "hi"}]


def scrape(url: str, **headers: str) -> dict[str, dict[tuple, float]]:
    """The exposition parsed: sample name -> {sorted label pairs: value}."""
    answer = httpx.get(url + "/metrics", headers=headers)
    assert answer.status_code == 200, answer.text
    samples: dict[str, dict[tuple, float]] = defaultdict(dict)  # a family without samples has no lines
    for family in text_string_to_metric_families(answer.text):
        for sample in family.samples:
            samples[sample.name][tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def by(samples: dict[tuple, float], label: str) -> dict[str, float]:
    """Values summed by one label."""
    out: dict[str, float] = {}
    for labels, value in samples.items():
        out[dict(labels)[label]] = out.get(dict(labels)[label], 0) + value
    return out


def test_the_metrics_are_prometheus_text_with_the_series_spec_names(poeti, client):
    client.chat.completions.create(model="gpt-4o", messages=HI)
    answer = httpx.get(poeti.url + "/metrics")

    assert answer.status_code == 200
    assert answer.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert answer.headers["X-Trace-ID"]
    families = {family.name: family.type for family in text_string_to_metric_families(answer.text)}
    assert families == SERIES
    samples = scrape(poeti.url)
    assert samples["mockpoeti_requests_total"] == {(("endpoint", "chat"), ("status", "200")): 1}
    assert samples["mockpoeti_stream_chunks_total"] == {(): 0}
    assert by(samples["mockpoeti_chat_tokens_total"], "kind").keys() == {"prompt", "completion"}


def test_the_counters_equal_the_books_after_mixed_traffic(poeti, client):
    poeti.stub({"error": "rate_limit_exceeded"}, message="throttle me")
    poeti.stub({"content": "one two three four five", "stream": {"chunk": "word"},
                "fault": {"kind": "disconnect", "after_chunks": 2}}, message="cut me")
    poeti.stub({"content": "alpha beta gamma", "fault": {"kind": "error_event", "after_chunks": 1}}, message="break me")
    poeti.stub({"content": "a whole body", "fault": {"kind": "malformed"}}, message="mangle me")
    streamed_events = 0
    for model in ("gpt-4o", "gpt-4o", "gpt-4o-mini", "deepseek-chat"):
        client.chat.completions.create(model=model, messages=HI)
    for model in ("gpt-4o", "gpt-4o-mini"):
        with httpx.stream("POST", poeti.base_url + "/chat/completions", headers={"Authorization": f"Bearer {poeti.api_key}"},
                          json={"model": model, "messages": HI, "stream": True, "stream_options": {"include_usage": True}}) as s:
            streamed_events += sum(1 for line in s.iter_lines() if line.startswith("data: "))
    for prompt, error in [("throttle me", openai.RateLimitError), ("cut me", openai.APIError),
                          ("break me", openai.APIError), ("mangle me", json.JSONDecodeError)]:
        with pytest.raises(error):
            stream = prompt in ("cut me", "break me")
            answer = client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": prompt}], stream=stream)
            if stream:
                list(answer)
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="no-such-model", messages=HI)
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="gpt-4o", messages=HI, temperature=9)
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=poeti.base_url, api_key="sk-poeti-nobody-knows-this-one", max_retries=0).chat.completions.create(
            model="gpt-4o", messages=HI)
    with httpx.Client(base_url=poeti.url, headers={"Authorization": f"Bearer {poeti.api_key}"}) as http:
        http.get("/v1/models")
        http.get("/nowhere")
        usage = http.get("/api/v1/usage").json()["data"]
        traces = http.get("/api/v1/request-traces", params={"page_size": 100}).json()["data"]["items"]
    journal = poeti.requests

    samples = scrape(poeti.url)

    tokens = samples["mockpoeti_chat_tokens_total"]
    cost = samples["mockpoeti_chat_cost_usd_total"]
    for row in usage["by_model"]:  # models outside the catalog: null in usage, "" in the metrics
        model = row["model"] or ""
        assert tokens[(("kind", "prompt"), ("model", model))] == row["prompt_tokens"]
        assert tokens[(("kind", "completion"), ("model", model))] == row["completion_tokens"]
        assert cost[(("model", model),)] == row["cost_usd"]
    assert len(tokens) == 2 * len(usage["by_model"])
    assert sum(tokens.values()) == usage["total_tokens"] == sum(t["total_tokens"] for t in traces)
    assert sum(cost.values()) == pytest.approx(usage["total_cost_usd"], abs=1e-9)

    requests = samples["mockpoeti_requests_total"]
    seen = Counter((e["endpoint"] or "other", str(e["status"] or 0)) for e in journal)  # every request but admin ones
    assert {tuple(v for _, v in labels): value for labels, value in requests.items()} == seen
    unknown_key = requests[(("endpoint", "chat"), ("status", "401"))]
    assert unknown_key == 1
    assert by(requests, "endpoint")["chat"] - unknown_key == len(traces) == usage["total_requests"] == 12

    faults = samples["mockpoeti_faults_total"]
    assert by(faults, "kind") == Counter(t["error_code"].removeprefix("fault_") for t in traces
                                         if (t["error_code"] or "").startswith("fault_"))
    assert by(faults, "kind") == {"disconnect": 1, "error_event": 1, "malformed": 1}

    chunks = samples["mockpoeti_stream_chunks_total"][()]
    assert chunks == sum(e.get("delivery", {}).get("events_sent", 0) for e in journal)
    assert streamed_events == chunks - 3 - 3  # and the faulted streams: role + 2 chunks; role + 1 chunk + the error event

    durations = samples["mockpoeti_request_duration_seconds_count"]
    assert by(durations, "endpoint") == by(requests, "endpoint")
    for endpoint, total in by(samples["mockpoeti_request_duration_seconds_sum"], "endpoint").items():
        measured = sum(e["duration_ms"] for e in journal if (e["endpoint"] or "other") == endpoint) / 1000
        assert total == pytest.approx(measured, abs=1e-6 * len(journal))  # the journal rounds to the microsecond


def test_the_histogram_has_cumulative_buckets_ending_at_the_count(poeti, client):
    for _ in range(3):
        client.chat.completions.create(model="gpt-4o", messages=HI)
    buckets = scrape(poeti.url)["mockpoeti_request_duration_seconds_bucket"]
    chat = sorted(((float(dict(labels)["le"]), value) for labels, value in buckets.items()
                   if dict(labels)["endpoint"] == "chat"))

    assert [le for le, _ in chat] == [*DURATION_BUCKETS_S, float("inf")]
    counts = [value for _, value in chat]
    assert counts == sorted(counts) and counts[-1] == 3


def test_a_bucket_counts_what_is_at_most_its_bound():
    meters = Meters()
    meters.request("chat", 200, 0.001)
    meters.request("chat", 200, 0.0010001)
    meters.request("chat", 200, 3600.0)

    counts = meters.durations["chat"].counts
    assert counts[0] == 1 and counts[1] == 1 and counts[-1] == 1
    assert meters.requests == {("chat", 200): 3}


def test_scrapes_and_admin_calls_are_not_counted_and_a_reset_starts_over(poeti, client):
    client.chat.completions.create(model="gpt-4o", messages=HI)
    httpx.get(poeti.url + "/__admin/health")
    scrape(poeti.url)
    assert scrape(poeti.url)["mockpoeti_requests_total"] == {(("endpoint", "chat"), ("status", "200")): 1}

    httpx.post(poeti.url + "/__admin/reset")

    after = scrape(poeti.url)
    assert after["mockpoeti_requests_total"] == {}
    assert after["mockpoeti_chat_tokens_total"] == {}


def test_a_sessions_metrics_are_its_own_and_the_roots_show_none_of_them(poeti):
    session = poeti.session()
    with openai.OpenAI(base_url=session.base_url, api_key=session.api_key, max_retries=0) as there:
        there.chat.completions.create(model="gpt-4o-mini", messages=HI)
        there.chat.completions.create(model="gpt-4o-mini", messages=HI, stream=True).close()
    in_session, at_root = scrape(session.url), scrape(poeti.url)

    assert by(in_session["mockpoeti_requests_total"], "endpoint") == {"chat": 2}
    assert set(by(in_session["mockpoeti_chat_tokens_total"], "model")) == {"gpt-4o-mini"}
    assert at_root["mockpoeti_requests_total"] == {}
    assert at_root["mockpoeti_chat_tokens_total"] == {}
    session.close()
    assert httpx.get(session.url + "/metrics").status_code == 404  # an ended session has no metrics


def test_the_admin_token_guards_the_metrics_of_the_root_and_of_every_session():
    with MockServer(admin_token="s3cret") as server:
        session = server.session()
        for url in (server.url, session.url):
            missing = httpx.get(url + "/metrics")
            api_key = httpx.get(url + "/metrics", headers={"Authorization": f"Bearer {server.api_key}"})
            wrong = httpx.get(url + "/metrics", auth=("prometheus", "guess"))
            for refused in (missing, api_key, wrong):
                assert refused.status_code == 401
                assert refused.json()["error"]["code"] == "invalid_api_key"
                assert refused.headers["WWW-Authenticate"].startswith("Basic ")
            assert httpx.get(url + "/metrics", headers={"X-Admin-Token": "s3cret"}).status_code == 200
            assert httpx.get(url + "/metrics", headers={"Authorization": "Bearer s3cret"}).status_code == 200
            assert httpx.get(url + "/metrics", auth=("prometheus", "s3cret")).status_code == 200  # basic_auth in a scrape config


def test_prometheus_client_is_imported_on_the_first_scrape_not_at_start_up():
    program = """
import sys, httpx
from mockpoeti import MockServer
with MockServer() as server:
    httpx.post(server.base_url + "/chat/completions", headers={"Authorization": f"Bearer {server.api_key}"},
               json={"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]})
    print("before", "prometheus_client" in sys.modules)
    httpx.get(server.url + "/metrics")
    print("after", "prometheus_client" in sys.modules)
"""
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.split() == ["before", "False", "after", "True"]
