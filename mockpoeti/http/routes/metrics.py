"""GET /metrics: the State's counters (`books/meters.py`) in the Prometheus text format.

prometheus_client writes the text, from metric families made of those counters when a
scrape asks (a custom collector: nothing of it runs while requests are served). It is
imported on the first scrape, so start-up does not pay its ~50 ms. A session's
/sessions/{id}/metrics reports the session's counters, the root's /metrics the root's.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from aiohttp import web

from mockpoeti.books.ledger import usd
from mockpoeti.books.meters import DURATION_BUCKETS_S, Meters
from mockpoeti.http.call import Call

# The text format every Prometheus reads (the names here need none of 1.0.0's escaping).
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


async def get_metrics(call: Call) -> web.Response:
    from prometheus_client.exposition import generate_latest

    body = generate_latest(Collector(call.state.meters))
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})


class Collector:
    """prometheus_client's collector protocol (`collect()`), over one State's counters."""

    def __init__(self, meters: Meters) -> None:
        self.meters = meters

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily
        from prometheus_client.utils import floatToGoString

        m = self.meters
        requests = CounterMetricFamily(
            "mockpoeti_requests", "Requests answered, by endpoint (route name; 'other' for an unknown path) and HTTP "
            "status (0: the client got no answer). The admin API and /metrics are not counted.",
            labels=["endpoint", "status"])
        for (endpoint, status), value in sorted(m.requests.items()):
            requests.add_metric([endpoint, str(status)], value)
        yield requests

        tokens = CounterMetricFamily(
            "mockpoeti_chat_tokens", "Tokens of traced chat calls as the traces bill them, by model ('' for a model "
            "outside the catalog) and kind (prompt, completion).", labels=["model", "kind"])
        for model in sorted(m.prompt_tokens):
            tokens.add_metric([model, "prompt"], m.prompt_tokens[model])
            tokens.add_metric([model, "completion"], m.completion_tokens[model])
        yield tokens

        cost = CounterMetricFamily(
            "mockpoeti_chat_cost_usd", "Cost of traced chat calls in US dollars, by model, summed as the books sum it.",
            labels=["model"])
        for model, nanos in sorted(m.cost_nanos.items()):
            cost.add_metric([model], usd(nanos))
        yield cost

        faults = CounterMetricFamily("mockpoeti_faults", "Requests a scripted fault struck, by fault kind.", labels=["kind"])
        for kind, value in sorted(m.faults.items()):
            faults.add_metric([kind], value)
        yield faults

        yield CounterMetricFamily(
            "mockpoeti_stream_chunks", "Server-Sent Events written to streamed answers, data: [DONE] included.",
            value=m.stream_chunks)

        durations = HistogramMetricFamily(
            "mockpoeti_request_duration_seconds", "Time from a request's arrival to its answer's end, by endpoint "
            "(as counted in mockpoeti_requests_total).", labels=["endpoint"])
        for endpoint, histogram in sorted(m.durations.items()):
            buckets, running = [], 0
            for bound, count in zip(DURATION_BUCKETS_S, histogram.counts, strict=False):
                running += count
                buckets.append((floatToGoString(bound), running))
            buckets.append(("+Inf", running + histogram.counts[-1]))
            durations.add_metric([endpoint], buckets, histogram.sum)
        yield durations
