"""Seeded trace history, so a fresh server's dashboards look lived-in.

Deterministic: fixtures/history.yaml's seed alone decides every trace, and the
history ends at the server clock's "now".
"""

from __future__ import annotations

import random

from mockpoeti.base.catalog import Catalog
from mockpoeti.base.secrets import key_prefix
from mockpoeti.books.ledger import ApiKey, Trace

DAY = 86_400


def generate_history(catalog: Catalog, keys: list[ApiKey], now: float, routing: str) -> list[Trace]:
    spec = catalog.history
    if spec is None:
        return []
    rnd = random.Random(spec.seed)
    models = [catalog.models[m] for m in spec.models if m in catalog.models]
    weights = [spec.models[m.id] for m in models]
    traces: list[Trace] = []
    for account in spec.accounts:
        active = [k for k in keys if k.account == account and k.is_active]
        if not active or not models:
            continue
        start = now - spec.days * DAY
        for _ in range(spec.days * spec.requests_per_day):
            model = rnd.choices(models, weights)[0]
            key = rnd.choice(active)
            failed = rnd.random() < spec.error_rate
            trace = Trace(
                trace_id="trace-poeti-" + format(rnd.getrandbits(64), "016x"),
                account=account,
                key_id=key.id,
                key_prefix=key_prefix(key.secret),
                created_at=float(int(rnd.uniform(start, now))),
                routing_strategy=routing,
                model=model.id,
                provider=model.owned_by,
                stream=rnd.random() < 0.4,
                latency_ms=int(rnd.lognormvariate(6.4, 0.5)),
            )
            if failed:
                trace.status, trace.http_status, trace.error_code = rnd.choice(
                    [("error", 429, "rate_limit_exceeded"), ("error", 502, "upstream_error"), ("error", 504, "upstream_timeout")]
                )
            else:
                trace.prompt_tokens = int(rnd.lognormvariate(5.5, 0.8))
                trace.completion_tokens = int(rnd.lognormvariate(5.3, 0.7))
                trace.price(model)
            traces.append(trace)
    traces.sort(key=lambda t: t.created_at)
    return traces
