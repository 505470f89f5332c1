"""The load generators, each run as a process of its own: aiohttp's client for
request load (when wrk is absent), and a raw asyncio reader for paced streams.

    python -m benchmarks.load requests --url URL --connections 50 --duration 5 --body JSON
    python -m benchmarks.load streams --url URL --streams 100 --duration 5 --chunks 100 --interval-ms 10

`requests`: N connections send the same POST back to back for a duration
(wrk's job, when wrk is not installed). Where the body holds the marker __N__,
each request replaces it with a number of its own: a new prompt per request.
An answer counts as ok when its status is 200 and, with --expect-frames, it
holds exactly that many SSE frames.

`streams`: N keep-alive connections, opened before the clock starts, ask for
paced SSE streams back to back, their first streams staggered over --ramp
seconds, and time each frame's arrival. Content chunk i is due at send time +
first + i x interval; lateness is how far past that it arrived (so it includes
the time to the first byte), drift is the last chunk's lateness minus the first's.

Prints one line of JSON. Every loop is bounded by a deadline and a count.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import math
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import aiohttp

GRACE_S = 15.0  # past the duration, for answers in flight
MAX_REQUESTS = 10_000_000
ERROR_PAUSE_S = 0.01  # after a failed request, so a dead server is not spun against
MAX_HEAD_BYTES = 65536
LAST_CHUNK = b"\r\n0\r\n\r\n"  # chunked encoding's end
MARKER = "__N__"  # in a request body: replaced by a number of the request's own


@dataclass
class Tally:
    """Answers that were right, and the others by kind."""

    ok: int = 0
    errors: int = 0
    kinds: dict[str, int] = field(default_factory=dict)

    def add(self, problem: str | None) -> None:
        if problem is None:
            self.ok += 1
        else:
            self.errors += 1
            self.kinds[problem] = self.kinds.get(problem, 0) + 1


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0..100), nearest rank, of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def _headers(pairs: list[str]) -> dict[str, str]:
    out = {"Content-Type": "application/json"}
    for pair in pairs:
        name, _, value = pair.partition(":")
        out[name.strip()] = value.strip()
    return out


async def run_requests(args: argparse.Namespace) -> dict:
    headers = _headers(args.header)
    head, vary, tail = (part.encode() for part in args.body.partition(MARKER))
    numbers = itertools.count(args.first)
    tally = Tally()
    timeout = aiohttp.ClientTimeout(total=args.duration + GRACE_S)
    loop = asyncio.get_running_loop()

    async def worker(session: aiohttp.ClientSession, end: float) -> None:
        while loop.time() < end and tally.ok + tally.errors < args.max_requests:
            body = head + str(next(numbers)).encode() + tail if vary else head
            try:
                async with session.post(args.url, data=body, headers=headers) as response:
                    data = await response.read()
                good = response.status == 200 and (args.expect_frames is None or data.count(b"\n\n") == args.expect_frames)
                kind = None if good else (f"status {response.status}" if response.status != 200 else "frames")
            except (TimeoutError, aiohttp.ClientError, OSError) as e:
                kind = type(e).__name__
            tally.add(kind)
            if kind is not None:
                await asyncio.sleep(ERROR_PAUSE_S)

    connector = aiohttp.TCPConnector(limit=args.connections)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        started = loop.time()
        end = started + args.duration
        await asyncio.wait_for(
            asyncio.gather(*(worker(session, end) for _ in range(args.connections))), args.duration + GRACE_S
        )
        elapsed = loop.time() - started
    return {"ok": tally.ok, "errors": tally.errors, "error_kinds": tally.kinds, "seconds": elapsed,
            "rps": tally.ok / elapsed if elapsed else 0.0}


class Stream(asyncio.Protocol):
    """One keep-alive connection reading chunked SSE answers: the arrival time of each
    frame (a frame ends with a blank line), and the answer's end (the last chunk)."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.done: asyncio.Future | None = None
        self.arrivals: list[float] = []
        self._head = b""
        self._tail = b""
        self._in_body = False

    def connection_made(self, transport) -> None:
        self.transport = transport

    def send(self, request: bytes, loop: asyncio.AbstractEventLoop) -> asyncio.Future:
        self.done = loop.create_future()
        self.arrivals, self._head, self._tail, self._in_body = [], b"", b"", False
        if self.transport is None:
            self._finish("connection lost")
        else:
            self.transport.write(request)
        return self.done

    def data_received(self, data: bytes) -> None:
        now = time.perf_counter()
        if not self._in_body:
            self._head += data
            end = self._head.find(b"\r\n\r\n")
            if end < 0:
                if len(self._head) > MAX_HEAD_BYTES:
                    self._finish("oversized head")
                return
            head, data = self._head[:end].lower(), self._head[end + 4 :]
            self._in_body = True
            status = head[9:12].decode(errors="replace")
            if status != "200" or b"transfer-encoding: chunked" not in head:
                self._finish(f"status {status}" if status != "200" else "not chunked")
                return
        joined = self._tail + data
        ends = joined.count(b"\n\n") - self._tail.count(b"\n\n")
        self.arrivals.extend([now] * ends)
        self._tail = joined[-len(LAST_CHUNK) :]
        if joined.endswith(LAST_CHUNK):
            self._finish(None)

    def _finish(self, problem: str | None) -> None:
        if self.done is not None and not self.done.done():
            self.done.set_result(problem)
        if problem is not None and self.transport is not None:
            self.transport.close()  # an answer we did not read to its end: start afresh

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self._finish(f"connection lost{f': {exc}' if exc else ''}")


async def run_streams(args: argparse.Namespace) -> dict:
    """Paced streams over raw keep-alive connections: aiohttp's client costs tens of
    microseconds per frame, enough jitter to blur a 5 ms budget; this reader costs a few."""
    url = urlsplit(args.url)
    body = args.body.encode()
    headers = _headers(args.header)
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    request = (f"POST {url.path}{'?' + url.query if url.query else ''} HTTP/1.1\r\nHost: {url.netloc}\r\n"
               f"{head}Content-Length: {len(body)}\r\n\r\n").encode() + body
    interval, first = args.interval_ms / 1000, args.first_ms / 1000
    frames_expected = args.chunks + 3  # role, content x chunks, finish, [DONE]
    lateness: list[float] = []  # ms, every content chunk of every good stream
    drift: list[float] = []  # ms, one per good stream
    first_late: list[float] = []
    tally = Tally()
    per_stream = first + args.chunks * interval + GRACE_S
    loop = asyncio.get_running_loop()

    async def connect() -> Stream:
        _, stream = await asyncio.wait_for(loop.create_connection(Stream, url.hostname, url.port), GRACE_S)
        return stream

    async def one_stream(stream: Stream) -> str | None:
        sent = time.perf_counter()
        problem = await asyncio.wait_for(stream.send(request, loop), per_stream)
        if problem is not None:
            return problem
        arrivals = stream.arrivals
        if len(arrivals) != frames_expected:
            return f"frames {len(arrivals)}"
        late = [(arrivals[i + 1] - (sent + first + i * interval)) * 1000 for i in range(args.chunks)]
        lateness.extend(late)
        drift.append(late[-1] - late[0])
        first_late.append(late[0])
        return None

    async def worker(start_at: float, end: float, stream: Stream | None) -> None:
        await asyncio.sleep(max(0.0, start_at - loop.time()))
        count = 0
        while loop.time() < end and count < args.max_requests:
            count += 1
            try:
                if stream is None or stream.transport is None:
                    stream = await connect()
                kind = await one_stream(stream)
            except (TimeoutError, OSError) as e:
                kind = type(e).__name__
            tally.add(kind)
            if kind is not None:
                if stream is not None and stream.transport is not None:
                    stream.transport.close()
                stream = None
                await asyncio.sleep(ERROR_PAUSE_S)
        if stream is not None and stream.transport is not None:
            stream.transport.close()

    # Connections open before the clock starts: connecting is not the server's pacing.
    opened = await asyncio.gather(*(connect() for _ in range(args.streams)), return_exceptions=True)
    streams = [s if isinstance(s, Stream) else None for s in opened]
    started = loop.time()
    end = started + args.ramp + args.duration
    workers = [worker(started + args.ramp * k / args.streams, end, streams[k]) for k in range(args.streams)]
    await asyncio.wait_for(asyncio.gather(*workers), args.ramp + args.duration + per_stream + GRACE_S)
    elapsed = loop.time() - started

    def summary(values: list[float]) -> dict:
        if not values:
            return {"p50": None, "p99": None, "max": None}
        return {"p50": percentile(values, 50), "p99": percentile(values, 99), "max": max(values)}

    return {
        "ok": tally.ok,
        "errors": tally.errors,
        "error_kinds": tally.kinds,
        "seconds": elapsed,
        "chunks_timed": len(lateness),
        "lateness_ms": summary(lateness),
        "drift_ms": summary(drift),
        "first_chunk_lateness_ms": summary(first_late),
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.load", description="aiohttp-client load generator")
    modes = parser.add_subparsers(dest="mode", required=True)
    for name in ("requests", "streams"):
        mode = modes.add_parser(name)
        mode.add_argument("--url", required=True)
        mode.add_argument("--body", required=True, help="the JSON request body")
        mode.add_argument("--header", action="append", default=[], metavar="NAME: VALUE")
        mode.add_argument("--duration", type=float, required=True, help="seconds of load")
        mode.add_argument("--max-requests", type=int, default=MAX_REQUESTS, help="per run (requests) or per client (streams)")
    requests = modes.choices["requests"]
    requests.add_argument("--connections", type=int, default=50)
    requests.add_argument("--first", type=int, default=1, help="the first request's number, where the body has the marker")
    requests.add_argument("--expect-frames", type=int, help="an answer must hold exactly this many SSE frames")
    streams = modes.choices["streams"]
    streams.add_argument("--streams", type=int, default=100, help="concurrent streams")
    streams.add_argument("--ramp", type=float, default=1.0, help="seconds over which the first streams start")
    streams.add_argument("--chunks", type=int, default=100)
    streams.add_argument("--interval-ms", type=float, default=10.0)
    streams.add_argument("--first-ms", type=float, default=0.0)
    args = parser.parse_args()
    run = run_requests if args.mode == "requests" else run_streams
    print(json.dumps(asyncio.run(run(args))), flush=True)


if __name__ == "__main__":
    main()
