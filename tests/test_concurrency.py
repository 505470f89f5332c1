"""Truth under concurrency: calls fired all at once from many keys leave exactly
one trace each, and every counter and sum (per key, per model, per account) is
exact; keys created and revoked all at once lose no update.

The server is a `mockpoeti serve` process; the calls come from one aiohttp
session with no connection limit, all started together.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections import Counter, defaultdict

import aiohttp
import httpx
import pytest
from serving import DEFAULT_KEY, all_traces, serve

CHAT = "/v1/chat/completions"
KEYS = "/api/v1/api-keys"
ACME_KEY = "sk-poeti-acme-production-0001"
K = 12  # keys created for the test
N = 1200  # calls fired at once
RACE_S = 0.4  # the revocations go out this long after the burst starts; calls go at 0, this, and twice this
MODELS = ("gpt-4o", "gpt-4o-mini", "claude-3-5-haiku-20241022", "qwen-turbo")


@pytest.fixture
def server():
    with serve("--seed", "17", "--clock", "2026-04-09T14:23:18Z") as server:
        yield server


def client(server, key: str = DEFAULT_KEY) -> httpx.Client:
    return httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"})


async def chat(session: aiohttp.ClientSession, url: str, key: str, model: str, stream: bool, i: int) -> dict:
    """One call; what its caller saw: status, trace id and the usage it was told."""
    body = {"model": model, "messages": [{"role": "user", "content": f"call {i}"}]}
    if stream:
        body |= {"stream": True, "stream_options": {"include_usage": True}}
    async with session.post(url + CHAT, json=body, headers={"Authorization": f"Bearer {key}"}) as r:
        seen = {"status": r.status, "trace_id": r.headers["X-Trace-ID"], "key": key, "model": model,
                "prompt": 0, "completion": 0}
        if r.status != 200:
            await r.read()
            return seen
        if stream:
            frames = [line[6:] for line in (await r.text()).split("\n\n") if line.startswith("data: ")]
            assert frames[-1] == "[DONE]"
            usage = json.loads(frames[-2])["usage"]
        else:
            usage = (await r.json())["usage"]
    seen["prompt"], seen["completion"] = usage["prompt_tokens"], usage["completion_tokens"]
    return seen


async def burst(url: str, calls: list[tuple[str, str, bool]]) -> list[dict]:
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=60)) as session:
        return await asyncio.gather(*(chat(session, url, key, model, stream, i)
                                      for i, (key, model, stream) in enumerate(calls)))


async def test_n_concurrent_calls_from_k_keys_give_n_traces_and_exact_sums(server):
    with client(server) as http:
        created = [http.post(KEYS, json={"name": f"load key {k}"}).json()["data"] for k in range(K)]
        prices = {m["id"]: m["pricing"] for m in http.get("/v1/models").json()["data"]}
    secrets = [k["key"] for k in created] + [DEFAULT_KEY]
    rnd = random.Random(5)
    calls = [(secrets[i % len(secrets)], rnd.choice(MODELS), i % 4 == 0) for i in range(N)]
    calls += [(ACME_KEY, "gpt-4o", False)] * 50  # another account's traffic at the same time

    seen = await burst(server.url, calls)

    assert [s["status"] for s in seen] == [200] * len(calls)
    mine = [s for s in seen if s["key"] != ACME_KEY]
    with client(server) as http:
        traces = all_traces(http)
        keys = {k["id"]: k for k in http.get(KEYS).json()["data"]}
        usage = http.get("/api/v1/usage").json()["data"]
        stats = http.get("/api/v1/request-traces/stats").json()
        per_key_usage = {k["id"]: http.get(f"/api/v1/usage?key_id={k['id']}").json()["data"] for k in created}
    with client(server, ACME_KEY) as acme:
        acme_usage = acme.get("/api/v1/usage").json()["data"]

    assert len(traces) == N
    assert sorted(t["trace_id"] for t in traces) == sorted(s["trace_id"] for s in mine)
    by_id = {t["trace_id"]: t for t in traces}
    for s in mine:
        trace = by_id[s["trace_id"]]
        assert (trace["model"], trace["prompt_tokens"], trace["completion_tokens"]) == (s["model"], s["prompt"], s["completion"])

    id_of = {k["key"]: k["id"] for k in created} | {DEFAULT_KEY: next(i for i, k in keys.items() if k["name"] == "默认 Key")}
    calls_by_key = Counter(id_of[s["key"]] for s in mine)
    cost_by_key: dict[int, float] = defaultdict(float)
    for s in mine:
        price = prices[s["model"]]
        cost_by_key[id_of[s["key"]]] += s["prompt"] * price["input"] / 1e6 + s["completion"] * price["output"] / 1e6
    for key_id, count in calls_by_key.items():
        assert keys[key_id]["total_requests"] == count
        assert keys[key_id]["total_cost"] == pytest.approx(cost_by_key[key_id], abs=1e-8)
    for k in created:
        assert per_key_usage[k["id"]]["total_requests"] == calls_by_key[k["id"]]
        assert per_key_usage[k["id"]]["total_tokens"] == sum(s["prompt"] + s["completion"] for s in mine if s["key"] == k["key"])

    by_model: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    for s in mine:
        sums = by_model[s["model"]]
        sums[0] += 1
        sums[1] += s["prompt"]
        sums[2] += s["completion"]
    assert {r["model"]: [r["requests"], r["prompt_tokens"], r["completion_tokens"]] for r in usage["by_model"]} == by_model
    assert usage["total_requests"] == stats["total_requests"] == stats["success_count"] == N
    assert stats["total_tokens"] == usage["total_tokens"] == sum(s["prompt"] + s["completion"] for s in mine)
    assert acme_usage["total_requests"] == 50  # and none of it leaked into the default account's books
    print(f"\n{len(calls)} concurrent calls from {len(secrets) + 1} keys (two accounts): {N} traces in the default "
          f"account, every key counter and model sum exact")


async def test_keys_created_and_revoked_all_at_once_lose_no_update(server):
    with client(server) as http:
        doomed = [http.post(KEYS, json={"name": f"doomed {k}"}).json()["data"] for k in range(60)]
        before = {k["id"]: k for k in http.get(KEYS).json()["data"]}
    creations = 150

    async def create(session: aiohttp.ClientSession, i: int) -> dict:
        async with session.post(server.url + KEYS, json={"name": f"fresh {i}", "rate_limit": 1000 + i}) as r:
            assert r.status == 200, await r.text()
            return (await r.json())["data"]

    # "Before" and "after" are made sure of, not left to timing (a loaded machine can answer a call sent
    # at 0 s after a revocation sent at 0.4 s): a key's revocation goes once its first call is answered,
    # and its last call once the revocation is. Only the call sent at RACE_S races it.
    answered = {k["id"]: asyncio.Event() for k in doomed}
    gone = {k["id"]: asyncio.Event() for k in doomed}

    async def revoke(session: aiohttp.ClientSession, key_id: int) -> dict:
        await asyncio.sleep(RACE_S)
        await answered[key_id].wait()
        async with session.delete(f"{server.url}{KEYS}/{key_id}") as r:
            assert r.status == 200, await r.text()
            data = (await r.json())["data"]
        gone[key_id].set()
        return data

    async def use(session: aiohttp.ClientSession, secret: str, when: float, key_id: int | None = None) -> tuple[str, float, int]:
        """A call before, at the same moment as, or after its key's revocation: traced either way."""
        await asyncio.sleep(when)
        if key_id is not None and when == 2 * RACE_S:
            await gone[key_id].wait()
        body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": f"race {when}"}]}
        try:
            async with session.post(server.url + CHAT, json=body, headers={"Authorization": f"Bearer {secret}"}) as r:
                await r.read()
        finally:
            if key_id is not None and when == 0:
                answered[key_id].set()
        return secret, when, r.status

    connector = aiohttp.TCPConnector(limit=0)
    headers = {"Authorization": f"Bearer {DEFAULT_KEY}"}
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:
        work = [create(session, i) for i in range(creations)]
        work += [revoke(session, k["id"]) for k in doomed]
        work += [use(session, k["key"], when, k["id"]) for k in doomed for when in (0.0, RACE_S, 2 * RACE_S)]
        random.Random(9).shuffle(work)
        results = await asyncio.gather(*work)

    made = [r for r in results if isinstance(r, dict) and r["name"].startswith("fresh")]
    revoked = [r for r in results if isinstance(r, dict) and r["name"].startswith("doomed")]
    raced = [r for r in results if isinstance(r, tuple)]
    assert len(made) == creations and len(revoked) == len(doomed)
    assert len({k["id"] for k in made}) == creations and len({k["key"] for k in made}) == creations
    assert not {k["id"] for k in made} & set(before)
    assert all(not k["is_active"] for k in revoked)
    assert {status for _, when, status in raced if when == 0} == {200}  # answered before the revocation went
    assert {status for _, when, status in raced if when == 2 * RACE_S} == {401}  # sent after it was answered
    assert {status for _, when, status in raced if when == RACE_S} <= {200, 401}  # racing it

    with client(server) as http:
        after = {k["id"]: k for k in http.get(KEYS).json()["data"]}
        traces = all_traces(http)
    assert set(after) == set(before) | {k["id"] for k in made}
    for k in made:
        assert after[k["id"]]["is_active"] and after[k["id"]]["rate_limit"] == k["rate_limit"]
        assert after[k["id"]]["name"] == k["name"]
    for k in doomed:
        assert after[k["id"]]["is_active"] is False
        outcomes = Counter(status for secret, _, status in raced if secret == k["key"])
        assert after[k["id"]]["total_requests"] == outcomes[200] + outcomes[401]  # every call counted, once
        assert sum(t["api_key_id"] == k["id"] for t in traces) == outcomes[200] + outcomes[401]
        assert sum(t["api_key_id"] == k["id"] and t["status"] == "success" for t in traces) == outcomes[200]
    untouched = set(before) - {k["id"] for k in doomed}
    assert all(after[i] == before[i] for i in untouched)

    async with aiohttp.ClientSession() as session:
        checks = await asyncio.gather(*[use(session, k["key"], 0) for k in made[:20]],
                                      *[use(session, k["key"], 0) for k in doomed[:20]])
    assert [status for _, _, status in checks] == [200] * 20 + [401] * 20
    print(f"\n{creations} keys created and {len(doomed)} revoked at once, with {len(raced)} calls racing the "
          f"revocations ({sum(s == 200 for _, _, s in raced)} got in, {sum(s == 401 for _, _, s in raced)} refused): "
          "no update lost")
