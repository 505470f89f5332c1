"""Retry verdicts: the request journal grouped into logical calls, and whether the
client's retries were sound (the reference's strategy: back off exponentially on
429 and 5xx, honour Retry-After, never retry other 4xx, give up after a few).

Pure: it reads journal entries (the dicts of `GET /__admin/requests`), where
`monotonic_s` is the server's clock at a request's arrival and `duration_ms`
how long its answer took.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

RETRY_COUNT = "x-stainless-retry-count"  # the OpenAI SDKs number their retries with it
WINDOW_S = 30.0  # an identical request this soon after a failure is a retry of it
RETRIABLE = (429, 500, 502, 503, 504)
HONOURED_UP_TO_S = 60.0  # the OpenAI SDKs follow a Retry-After up to this; beyond, a client may give up
# Leniency: timers, and the SDKs' jitter (up to 25% less than 0.5 s * 2^n, capped at 8 s).
EARLY_S, EARLY_SHARE = 0.05, 0.05  # a wait may fall short of a Retry-After by the larger of these
GROWTH = 1.3  # each backoff at least this times the one before (2x less 25% jitter is 1.5x)
CAPPED_S = 6.0  # from here a backoff may stop growing (the SDKs' 8 s cap, less jitter)
AT_ONCE_S = 0.02  # a retry sooner than this did not back off at all


def answered_at(entry: Mapping[str, Any]) -> float:
    """When the answer of a journal entry ended, on the server's monotonic clock."""
    return entry["monotonic_s"] + (entry.get("duration_ms") or 0) / 1000


def failed(entry: Mapping[str, Any]) -> bool:
    status = entry.get("status")
    return status is None or status >= 400


def group_attempts(entries: Iterable[Mapping[str, Any]], window_s: float = WINDOW_S) -> list[list[dict]]:
    """The journal as logical calls, oldest first; each a list of its attempts (copies of the
    entries) with `wait_s`: seconds from the previous attempt's answer to this request.

    A request continues a call when it carries `x-stainless-retry-count` > 0, or when the
    same key sent the same request (method, path, query, body) after that call's last
    attempt failed, less than `window_s` earlier (plus what that failure's Retry-After
    asked for). Requests that overlap are never one call.
    """
    calls: list[list[dict]] = []
    by_signature: dict[str, list[int]] = {}  # the calls whose requests repeat this, oldest first
    for entry in sorted(entries, key=lambda e: (e["monotonic_s"], e.get("id", 0))):
        attempt = dict(entry)
        same = by_signature.setdefault(_signature(entry), [])
        i = _continued(calls, same, attempt, window_s)
        if i is None:
            attempt["wait_s"] = None
            same.append(len(calls))
            calls.append([attempt])
        else:
            attempt["wait_s"] = round(attempt["monotonic_s"] - answered_at(calls[i][-1]), 3)
            calls[i].append(attempt)
    return calls


def _continued(calls: list[list[dict]], same: list[int], entry: dict, window_s: float) -> int | None:
    """Which of the calls that sent the same request this one retries, if any."""
    count = _retry_count(entry)
    if count:
        # the SDK says this is retry number `count`: its call has made `count` attempts so far
        return next((i for i in same if len(calls[i]) == count), same[-1] if same else None)
    for i in reversed(same):
        last = calls[i][-1]
        # a client that honours a long Retry-After is still retrying after it
        window = window_s + (retry_after(last) or 0)
        if failed(last) and 0 <= entry["monotonic_s"] - answered_at(last) < window:
            return i
    return None


def _signature(entry: Mapping[str, Any]) -> str:
    """What a retry repeats: the request and the (masked) key it was sent with."""
    headers = {str(k).lower(): v for k, v in (entry.get("headers") or {}).items()}
    parts = [entry.get("method"), entry.get("path"), entry.get("query"), headers.get("authorization"), entry.get("body")]
    return json.dumps(parts, sort_keys=True, default=str, ensure_ascii=False)


def _retry_count(entry: Mapping[str, Any]) -> int | None:
    for name, value in (entry.get("headers") or {}).items():
        if str(name).lower() == RETRY_COUNT:
            try:
                return int(value)
            except (TypeError, ValueError):
                return None
    return None


# --- what an answer asked for ---------------------------------------------------------

def retry_after(entry: Mapping[str, Any]) -> float | None:
    """The seconds an answer's Retry-After (or Retry-After-Ms) asked for, if it said so in seconds."""
    headers = entry.get("response_headers") or {}
    lower = {str(k).lower(): v for k, v in headers.items()}
    for name, scale in (("retry-after-ms", 1000), ("retry-after", 1)):
        seconds = _number(lower.get(name))
        if seconds is not None:
            return seconds / scale
    return None


def _number(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return None  # an HTTP date: not something a test double sends
    return seconds if seconds == seconds and seconds >= 0 else None


# --- the verdict ----------------------------------------------------------------------

def judge(
    calls: list[list[dict]],
    *,
    max_attempts: int | None = None,
    honours_retry_after: bool = True,
    backoff: str = "exponential",
    retries_only_on: Iterable[int] = RETRIABLE,
) -> list[str]:
    """What was wrong with the retries, one sentence per fault; empty when they were sound."""
    if backoff not in ("exponential", "any"):
        raise ValueError(f"backoff must be 'exponential' or 'any', not {backoff!r}")
    if max_attempts is not None and max_attempts < 1:
        raise ValueError(f"max_attempts must be at least 1, not {max_attempts!r}")
    worth = frozenset(retries_only_on)
    problems: list[str] = []
    for n, call in enumerate(calls, 1):
        first = call[0]
        if len(call) == 1 and _retriable(first, worth) and (max_attempts is None or max_attempts > 1):
            problems.append(f"call {n} gave up after {_outcome(first)} without retrying")
        if max_attempts is not None and len(call) > max_attempts:
            problems.append(f"call {n} made {len(call)} attempts; at most {max_attempts} were allowed")
        for k in range(1, len(call)):
            problems += _judge_retry(n, call, k, worth, honours_retry_after, backoff)
    if not problems and not any(failed(attempt) for call in calls for attempt in call):
        problems.append(f"no request failed, so nothing was retried ({_count(calls, 'call')} in the journal): "
                        "is the failing stub or scenario active?")
    return problems


def _judge_retry(n: int, call: list[dict], k: int, worth: frozenset[int], honours: bool, backoff: str) -> list[str]:
    before, attempt = call[k - 1], call[k]
    where, what, wait = f"call {n}: attempt {k + 1}", _outcome(before), attempt["wait_s"]
    status = before.get("status")
    if status is not None and status < 400:
        return []  # a retry after an answer the client never saw in full (a timeout, say): nothing to judge
    if status is not None and status not in worth:
        allowed = ", ".join(str(s) for s in sorted(worth)) or "nothing"
        return [f"{where} retried {what}, which retrying cannot fix (only {allowed} are worth retrying)"]
    asked = retry_after(before)
    if asked is not None and 0 < asked <= HONOURED_UP_TO_S:  # the server set the pace, not the backoff
        if honours and wait < asked - max(EARLY_S, EARLY_SHARE * asked):
            return [f"{where} came {_s(wait)} s after {what} that said Retry-After: {asked:g}"]
        return []
    if backoff != "exponential":
        return []
    if wait < AT_ONCE_S:
        return [f"{where} came {_s(wait)} s after {what}: a retry at once, with no backoff"]
    earlier = call[k - 1]["wait_s"]
    paced_by_server = k >= 2 and retry_after(call[k - 2]) is not None
    if k >= 2 and not paced_by_server and AT_ONCE_S <= earlier < CAPPED_S and wait < GROWTH * earlier:
        return [f"{where} came {_s(wait)} s after {what}, {wait / earlier:.1f} times the {_s(earlier)} s before "
                f"attempt {k}: exponential backoff should about double each wait"]
    return []


def _retriable(entry: Mapping[str, Any], worth: frozenset[int]) -> bool:
    return entry.get("status") is None or entry["status"] in worth


def _outcome(entry: Mapping[str, Any]) -> str:
    status = entry.get("status")
    return "a dropped connection" if status is None else f"a {status}"


def _s(seconds: float) -> str:
    return f"{seconds:.3f}" if abs(seconds) < 0.01 else f"{seconds:.2f}".rstrip("0").rstrip(".")


def _count(items: list, noun: str) -> str:
    return f"{len(items)} {noun}{'' if len(items) == 1 else 's'}"


def account(calls: list[list[dict]], numbers: Iterable[int]) -> list[str]:
    """One line per call: what each attempt got, and the waits between them."""
    lines = []
    for n in numbers:
        call = calls[n - 1]
        steps = []
        for attempt in call:
            if attempt["wait_s"] is not None:
                steps.append(f"{_s(attempt['wait_s'])} s")
            asked = retry_after(attempt)
            steps.append(_outcome(attempt).removeprefix("a ") + (f" (Retry-After: {asked:g})" if asked is not None else ""))
        lines.append(f"call {n} ({call[0].get('method')} {call[0].get('path')}): " + " -> ".join(steps))
    return lines


def verdict(calls: list[list[dict]], **options: Any) -> str | None:
    """The AssertionError text for `assert_retried`, or None when the retries were sound."""
    problems = judge(calls, **options)
    if not problems:
        return None
    faulty = sorted({int(p.split()[1].rstrip(":")) for p in problems if p.startswith("call ")})
    return "\n".join([*problems, *(["attempts:"] + ["  " + line for line in account(calls, faulty)] if faulty else [])])
