"""What `GET /metrics` reports, counted as requests finish: plain integers in dicts on the
State, so the hot path pays a few dict updates and nothing else. The Prometheus text is
written from them only when someone asks (`http/routes/metrics.py`).

Every label has a bounded set of values: endpoints are route names, statuses HTTP codes,
models the catalog's (anything else counts under ""), fault kinds the catalogue's.
"""

from __future__ import annotations

from bisect import bisect_left
from typing import Final

# Upper bounds (`le`) of the request-duration histogram, in seconds; +Inf is implied.
# (Of any length to mypyc: a tuple of fixed length is native data, made into a new Python tuple of
# new floats each time bisect reads it.)
DURATION_BUCKETS_S: Final[tuple[float, ...]] = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
)
OTHER_ENDPOINT: Final = "other"  # a path no route answers (a scenario may still have answered it)


class Histogram:
    """Counts per bucket (not cumulative: the exposition adds them up) and the sum."""

    __slots__ = ("counts", "sum")

    def __init__(self) -> None:
        self.counts = [0] * (len(DURATION_BUCKETS_S) + 1)
        self.sum = 0.0


class Meters:
    """The counters of one State (a session's are its own), since it started or was reset."""

    __slots__ = ("completion_tokens", "cost_nanos", "durations", "faults", "prompt_tokens", "requests", "stream_chunks")

    def __init__(self) -> None:
        self.requests: dict[tuple[str, int], int] = {}  # (endpoint, status) -> requests; status 0: none was sent
        self.durations: dict[str, Histogram] = {}  # endpoint -> request durations
        self.prompt_tokens: dict[str, int] = {}  # model -> tokens, as the traces bill them
        self.completion_tokens: dict[str, int] = {}
        self.cost_nanos: dict[str, int] = {}  # model -> nano-dollars, summed as the books sum them
        self.faults: dict[str, int] = {}  # fault kind -> requests it struck
        self.stream_chunks = 0  # SSE events written to streamed answers, `data: [DONE]` included

    def request(self, endpoint: str | None, status: int | None, seconds: float) -> None:
        """One request answered (or not: status None) in `seconds`."""
        endpoint = endpoint or OTHER_ENDPOINT
        key = (endpoint, status or 0)
        requests = self.requests
        requests[key] = requests.get(key, 0) + 1
        histogram = self.durations.get(endpoint)
        if histogram is None:
            histogram = self.durations[endpoint] = Histogram()
        histogram.counts[bisect_left(DURATION_BUCKETS_S, seconds)] += 1
        histogram.sum += seconds

    def chat(self, model: str, prompt_tokens: int, completion_tokens: int, cost_nanos: int) -> None:
        """One traced chat call, with the trace's own figures (so the sums agree with the books)."""
        prompt, completion, cost = self.prompt_tokens, self.completion_tokens, self.cost_nanos
        prompt[model] = prompt.get(model, 0) + prompt_tokens
        completion[model] = completion.get(model, 0) + completion_tokens
        cost[model] = cost.get(model, 0) + cost_nanos

    def fault(self, kind: str) -> None:
        self.faults[kind] = self.faults.get(kind, 0) + 1
