"""Load and faults, bounded and self-stopping, on 127.0.0.1: a burst of a thousand
clients, five hundred clients hanging up mid-stream, a hundred thousand requests in
capped memory, and clean shutdown on SIGTERM and SIGINT.

Each test runs its own server (a `mockpoeti serve` process, or a MockServer in a
thread where the test counts the server's asyncio tasks) and prints the figure it
reached, so the README can quote it (`pytest -s tests/test_reliability.py`).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import time
from collections import Counter
from pathlib import Path

import aiohttp
import httpx
import pytest
import yaml
from serving import DEFAULT_KEY, listen_drops, serve, tcp_states

from mockpoeti import MockServer
from mockpoeti.server import LISTEN_BACKLOG

CHAT = "/v1/chat/completions"
WORDS = " ".join(f"word{i}" for i in range(24))  # a stream of 24 word chunks
CLOCK = "2026-04-09T14:23:18Z"  # frozen, so the usage month cannot change under a run
SETTLE_S = 5.0  # the longest we wait for the server to notice what clients did


def write_scenario(tmp_path: Path, name: str, rules: list[dict]) -> str:
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"name": name, "rules": rules}, sort_keys=False), encoding="utf-8")
    return str(path)


def chat_request(port: int, body: dict, key: str = DEFAULT_KEY) -> bytes:
    raw = json.dumps(body).encode()
    return (f"POST {CHAT} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {key}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(raw)}\r\n\r\n").encode() + raw


def sse_frames(text: str) -> list[str]:
    return [event.removeprefix("data: ") for event in text.split("\n\n") if event.startswith("data: ")]


async def settle(condition, timeout: float = SETTLE_S, every: float = 0.05) -> bool:
    """Poll until `condition()` holds or `timeout` passes (the server notices a hang-up on its
    next write, not at once); whether it held. The caller asserts on what it then reads."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(every)
    return True


def somaxconn() -> int:
    return int(Path("/proc/sys/net/core/somaxconn").read_text())


def listen_backlog(port: int) -> int | None:
    """The accept-queue limit the kernel gave the listening socket (`ss` shows it as Send-Q)."""
    try:
        out = subprocess.run(["ss", "-ltnH", f"sport = :{port}"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    sizes = [int(line.split()[2]) for line in out.splitlines() if line.strip()]
    return max(sizes) if sizes else None


# --- a thousand clients at once ---------------------------------------------------------------

CLIENTS = 1000


@pytest.fixture
def held(tmp_path) -> str:
    """Answers that each hold their connection about a second: all thousand clients are in flight at once."""
    return write_scenario(tmp_path, "held", [
        {"match": {"endpoint": "chat", "stream": True},
         "respond": {"content": WORDS, "stream": {"chunk": "word", "first_chunk_ms": 600, "interval_ms": 25}}},
        {"match": {"endpoint": "chat", "stream": False}, "respond": {"latency_ms": 1200}},
    ])


async def test_a_thousand_concurrent_clients_mixing_streams_and_plain_calls(held):
    backlog_limit = min(LISTEN_BACKLOG, somaxconn())
    with serve("--scenario", held, "--seed", "3", "--clock", CLOCK) as server:
        granted = listen_backlog(server.port)
        if granted is not None:  # measured, not assumed: what the kernel actually gave the socket
            assert granted == backlog_limit
        drops_before = listen_drops()
        peak = 0

        async def watch(stop: asyncio.Event) -> None:
            nonlocal peak
            while not stop.is_set():
                peak = max(peak, tcp_states(server.port).get("ESTABLISHED", 0))
                await asyncio.sleep(0.02)

        async def client(session: aiohttp.ClientSession, i: int) -> tuple[str, int, int, str] | str:
            stream = i % 2 == 1
            body = {"model": "gpt-4o-mini" if i % 3 else "gpt-4o", "messages": [{"role": "user", "content": f"client {i}"}]}
            if stream:
                body |= {"stream": True, "stream_options": {"include_usage": True}}
            try:
                async with session.post(server.url + CHAT, json=body, headers={"Authorization": f"Bearer {DEFAULT_KEY}"}) as r:
                    text = await r.text()
                    trace_id = r.headers.get("X-Trace-ID", "")
                    if r.status != 200:
                        return f"client {i}: status {r.status}: {text[:100]}"
            except (TimeoutError, aiohttp.ClientError, OSError) as e:
                return f"client {i}: {type(e).__name__}: {e}"
            if stream:
                frames = sse_frames(text)
                if frames[-1] != "[DONE]":
                    return f"client {i}: the stream did not end with [DONE]"
                content = "".join(c["choices"][0]["delta"].get("content") or ""
                                  for c in map(json.loads, frames[:-1]) if c["choices"])
                if content != WORDS:
                    return f"client {i}: the stream's content was cut: {content[-40:]!r}"
                usage = json.loads(frames[-2])["usage"]
            else:
                usage = json.loads(text)["usage"]
            return trace_id, usage["prompt_tokens"], usage["completion_tokens"], body["model"]

        stop = asyncio.Event()
        watcher = asyncio.create_task(watch(stop))
        connector = aiohttp.TCPConnector(limit=0, force_close=True)  # no pool: every client its own connection
        started = time.monotonic()
        async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=30)) as session:
            results = await asyncio.gather(*(client(session, i) for i in range(CLIENTS)))
        took = time.monotonic() - started
        stop.set()
        await watcher
        drops_after = listen_drops()

        errors = [r for r in results if isinstance(r, str)]
        assert errors == [], f"{len(errors)} of {CLIENTS} clients failed, e.g. {errors[:3]}"
        assert drops_after == drops_before, (
            f"the kernel dropped connections: {drops_before} -> {drops_after}; the listen backlog is "
            f"min(LISTEN_BACKLOG={LISTEN_BACKLOG}, net.core.somaxconn={somaxconn()}) = {backlog_limit}")
        assert peak >= CLIENTS * 0.95, f"only {peak} connections were open at once"

        with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {DEFAULT_KEY}"}) as http:
            health = http.get("/__admin/health").json()
            usage = http.get("/api/v1/usage").json()["data"]
            first_page = http.get("/api/v1/request-traces?page_size=100").json()["data"]
        trace_ids = [r[0] for r in results]
        assert len(set(trace_ids)) == CLIENTS
        assert health["traces"] == CLIENTS
        assert first_page["total"] == CLIENTS
        assert {t["trace_id"] for t in first_page["items"]} <= set(trace_ids)
        assert usage["total_requests"] == CLIENTS
        assert usage["total_prompt_tokens"] == sum(r[1] for r in results)
        assert usage["total_completion_tokens"] == sum(r[2] for r in results)
        assert {row["model"]: row["requests"] for row in usage["by_model"]} == Counter(r[3] for r in results)
    print(f"\n{CLIENTS} concurrent clients ({CLIENTS // 2} streams, {CLIENTS - CLIENTS // 2} plain calls), "
          f"{peak} connections held at once, 0 errors, 0 dropped by the kernel "
          f"(listen backlog {granted or backlog_limit}), in {took:.1f} s")


# --- five hundred clients that hang up mid-stream ------------------------------------------------

HANGUPS = 500


async def test_five_hundred_clients_hanging_up_mid_stream_leave_nothing_behind(tmp_path):
    long_stream = write_scenario(tmp_path, "long", [
        {"match": {"endpoint": "chat", "stream": True},
         "respond": {"content": " ".join(["word"] * 60), "stream": {"chunk": "word", "interval_ms": 50}}},
    ])
    with MockServer(scenarios=[long_stream]) as server, \
            httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {server.api_key}"}) as http:
        assert http.post(CHAT, json={"model": "gpt-4o", "messages": [{"role": "user", "content": "warm up"}]}).status_code == 200
        http.close()  # counted with no client connection open
        request = chat_request(server.port, {"model": "gpt-4o", "stream": True, "messages": [{"role": "user", "content": "hi"}]},
                               server.api_key)

        def tasks() -> int:
            return server.call(lambda: len(asyncio.all_tasks()))

        def open_sockets() -> int:  # held by someone: ESTABLISHED, or CLOSE_WAIT (the peer left, we did not)
            states = tcp_states(server.port)
            return states.get("ESTABLISHED", 0) + states.get("CLOSE_WAIT", 0)

        def fds() -> int:
            return len(os.listdir("/proc/self/fd"))

        await settle(lambda: open_sockets() == 0)
        before = {"tasks": tasks(), "fds": fds(), "sockets": open_sockets()}

        async def hang_up(i: int) -> int:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(request)
            seen = b""
            while seen.count(b'"content":"word') < 2:  # two content chunks, then gone
                data = await asyncio.wait_for(reader.read(65536), SETTLE_S)
                assert data, "the server closed a stream the client was still reading"
                seen += data
            if i % 2:
                writer.transport.abort()  # a reset
            else:
                writer.close()  # a FIN
                await writer.wait_closed()
            return seen.count(b'"content":"word')

        started = time.monotonic()
        received = await asyncio.gather(*(hang_up(i) for i in range(HANGUPS)))
        took = time.monotonic() - started
        assert min(received) >= 2

        def streams_journaled() -> list[dict]:
            return [e for e in server.requests if e["path"] == CHAT and "delivery" in e]

        await settle(lambda: len(streams_journaled()) == HANGUPS)
        entries = streams_journaled()
        assert len(entries) == HANGUPS, "not every hung-up stream reached the journal"

        def now() -> dict[str, int]:
            return {"tasks": tasks(), "fds": fds(), "sockets": open_sockets()}

        def nothing_left() -> bool:  # fewer is fine: the process may close something of its own meanwhile
            return all(count <= before[name] for name, count in now().items())

        await settle(nothing_left)
        after = now()
        assert nothing_left(), f"left behind: before {before}, after {after}"

        assert all(e["delivery"]["interrupted"] and not e["delivery"]["completed"] for e in entries)
        assert all(2 <= e["delivery"]["chunks_sent"] < 60 for e in entries)
        with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {server.api_key}"}) as http:
            interrupted = []
            for page in range(1, HANGUPS // 100 + 2):
                interrupted += [t for t in http.get(f"/api/v1/request-traces?status=error&page_size=100&page={page}")
                                .json()["data"]["items"] if t["interrupted"]]
            normal = http.post(CHAT, json={"model": "gpt-4o", "messages": [{"role": "user", "content": "still there?"}]})
        assert len(interrupted) == HANGUPS
        assert {t["error_code"] for t in interrupted} == {"client_disconnected"}
        assert {t["trace_id"] for t in interrupted} == {e["trace_id"] for e in entries}
        assert normal.status_code == 200 and normal.json()["choices"][0]["message"]["content"]
        server.check_errors()
    print(f"\n{HANGUPS} clients hung up mid-stream ({HANGUPS // 2} FIN, {HANGUPS // 2} RST) in {took:.1f} s: "
          f"all journaled and traced as interrupted, tasks {before['tasks']} -> {after['tasks']}, "
          f"fds {before['fds']} -> {after['fds']}, open sockets {before['sockets']} -> {after['sockets']}")


# --- a hundred thousand requests in capped memory ---------------------------------------------------

TOTAL = 100_000
FIRST = 20_000
CONNECTIONS = 16
DEPTH = 32  # requests in flight per connection (HTTP/1.1 pipelining)
MODELS = ("gpt-4o-mini", "gpt-4o", "deepseek-chat")
USAGE = re.compile(rb'"usage":\{"prompt_tokens":(\d+),"completion_tokens":(\d+)')
CONTENT_LENGTH = re.compile(rb"(?i)content-length: *(\d+)")


class Pipeline(asyncio.Protocol):
    """One keep-alive connection with up to DEPTH requests in flight; each answer's
    status, model and usage are tallied as it arrives."""

    def __init__(self, make, count: int, tally: dict, done: asyncio.Future):
        self.make, self.left, self.tally, self.done = make, count, tally, done
        self.models: list[str] = []
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport
        self.fill()

    def fill(self) -> None:
        batch = []
        while self.left and len(self.models) < DEPTH:
            model, raw = self.make()
            self.models.append(model)
            batch.append(raw)
            self.left -= 1
        if batch:
            self.transport.write(b"".join(batch))

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer + data
        while (end := buffer.find(b"\r\n\r\n")) >= 0:
            length = int(CONTENT_LENGTH.search(buffer, 0, end).group(1))
            if len(buffer) < end + 4 + length:
                break
            body = buffer[end + 4 : end + 4 + length]
            model = self.models.pop(0)
            usage = USAGE.search(body) if buffer.startswith(b"HTTP/1.1 200") else None
            if usage is None:
                self.tally["errors"].append(buffer[: min(end + 4 + length, 300)])
            else:
                sums = self.tally[model]
                sums[0] += 1
                sums[1] += int(usage.group(1))
                sums[2] += int(usage.group(2))
            buffer = buffer[end + 4 + length :]
        self.buffer = buffer
        if len(self.models) <= DEPTH // 2:
            self.fill()
        if not self.left and not self.models and not self.done.done():
            self.done.set_result(None)
            self.transport.close()

    def connection_lost(self, exc) -> None:
        if not self.done.done():
            self.done.set_exception(ConnectionError(f"connection lost with {len(self.models) + self.left} requests left: {exc}"))


async def drive(port: int, count: int, tally: dict, start: int) -> None:
    numbers = iter(range(start, start + count))

    def make() -> tuple[str, bytes]:
        i = next(numbers)
        model = MODELS[i % len(MODELS)]
        return model, chat_request(port, {"model": model, "messages": [{"role": "user", "content": f"question {i % 5000}"}]})

    loop = asyncio.get_running_loop()
    done = []
    for c in range(CONNECTIONS):
        share = count // CONNECTIONS + (c < count % CONNECTIONS)
        future = loop.create_future()
        done.append(future)
        await loop.create_connection(lambda share=share, future=future: Pipeline(make, share, tally, future), "127.0.0.1", port)
    await asyncio.wait_for(asyncio.gather(*done), 120)


async def test_a_hundred_thousand_requests_keep_memory_flat_and_the_sums_exact():
    with serve("--max-traces", "1000", "--max-journal", "100", "--seed", "5", "--clock", CLOCK) as server:
        tally: dict = {"errors": [], **{m: [0, 0, 0] for m in MODELS}}
        started = time.monotonic()
        await drive(server.port, FIRST, tally, 0)
        rss_first = server.rss_kib()
        await drive(server.port, TOTAL - FIRST, tally, FIRST)
        took = time.monotonic() - started
        rss_last = server.rss_kib()

        assert tally.pop("errors") == []
        assert sum(sums[0] for sums in tally.values()) == TOTAL
        with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {DEFAULT_KEY}"}) as http:
            usage = http.get("/api/v1/usage").json()["data"]
            stats = http.get("/api/v1/request-traces/stats").json()
            traces = http.get("/api/v1/request-traces?page_size=1").json()["data"]
            keys = {k["key_prefix"]: k for k in http.get("/api/v1/api-keys").json()["data"]}
            journal = http.get("/__admin/requests").json()
            prices = {m["id"]: m["pricing"] for m in http.get("/v1/models").json()["data"]}

    growth_mib = (rss_last - rss_first) / 1024
    rate = TOTAL / took
    print(f"\n{TOTAL:,} requests in {took:.1f} s ({rate:,.0f} requests/s over {CONNECTIONS} pipelined connections); "
          f"server RSS {rss_first / 1024:.1f} MiB after {FIRST:,}, {rss_last / 1024:.1f} MiB after {TOTAL:,} "
          f"({growth_mib:+.1f} MiB)")
    assert growth_mib < 16, "memory grew with the traffic: the trace store or the journal is not capped"

    assert traces["total"] == 1000  # --max-traces: the oldest were evicted
    assert len(journal["requests"]) == 100  # --max-journal
    assert journal["meta"]["total"] >= TOTAL
    assert usage["total_requests"] == stats["total_requests"] == stats["success_count"] == TOTAL
    assert usage["total_prompt_tokens"] == stats["total_prompt_tokens"] == sum(s[1] for s in tally.values())
    assert usage["total_completion_tokens"] == stats["total_completion_tokens"] == sum(s[2] for s in tally.values())
    assert {r["model"]: [r["requests"], r["prompt_tokens"], r["completion_tokens"]] for r in usage["by_model"]} == tally
    expected_cost = sum(s[1] * prices[m]["input"] / 1e6 + s[2] * prices[m]["output"] / 1e6 for m, s in tally.items())
    assert usage["total_cost_usd"] == pytest.approx(expected_cost, abs=1e-4)
    assert keys["sk-poeti-mock..."]["total_requests"] == TOTAL


# --- graceful shutdown ------------------------------------------------------------------------------

STREAMS = 3


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_stops_the_server_within_two_seconds_and_the_port_is_free_at_once(tmp_path, sig):
    endless = write_scenario(tmp_path, "endless", [
        {"match": {"endpoint": "chat", "stream": True},
         "respond": {"content": " ".join(["word"] * 200), "stream": {"chunk": "word", "interval_ms": 100}}},
    ])
    with serve("--scenario", endless) as server:
        port = server.port
        request = chat_request(port, {"model": "gpt-4o", "stream": True, "messages": [{"role": "user", "content": "hi"}]})
        clients = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(STREAMS)]
        received = [b""] * STREAMS
        for i, sock in enumerate(clients):
            sock.sendall(request)
            while b'"content":"word' not in received[i]:
                received[i] += sock.recv(65536)

        code, took = server.stop(sig)

        ended_after = []
        for i, sock in enumerate(clients):
            sock.settimeout(2.0)
            try:
                while chunk := sock.recv(65536):
                    received[i] += chunk
            except ConnectionResetError:
                pass
            ended_after.append(time.monotonic())
            sock.close()
        lingering = tcp_states(port)
        stderr = server.stderr

    assert code == 0
    assert took < 5.0, f"exit took {took:.2f} s"  # designed 0.8 s (twice the shutdown timeout); the streams had 20 s to go
    assert all(b"[DONE]" not in data for data in received)  # cut short, and the clients were told: EOF, not a hang
    assert "Traceback" not in stderr and "Task was destroyed" not in stderr, stderr
    assert "LISTEN" not in lingering
    assert lingering.get("TIME_WAIT", 0) >= 1, lingering  # the server hung up first: binding again needs SO_REUSEADDR

    with serve("--port", str(port)) as again:  # at once, on the same port, with TIME_WAIT sockets still about
        assert again.port == port
        answer = httpx.post(again.url + CHAT, json={"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]},
                            headers={"Authorization": f"Bearer {DEFAULT_KEY}"})
        assert answer.status_code == 200
        assert "address" not in again.stderr.lower()
    print(f"\n{sig.name}: exit 0 in {took:.2f} s with {STREAMS} streams open; their clients saw the end; "
          f"restarted on port {port} at once (TCP states left behind: {lingering})")
