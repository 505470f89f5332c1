"""Server-Sent Events on the wire: framing, deadline pacing, and carrying out
the plans of `faults.py` (for streams and for whole bodies alike).

Chunks are paced to absolute deadlines (arrival + first_chunk + i x interval),
never `sleep(interval)` after each write, so timing does not drift under load.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import struct
from collections.abc import Iterable, Iterator

from aiohttp import web

from mockpoeti.answers.faults import Step
from mockpoeti.answers.script import Pacing
from mockpoeti.base.jsonio import encode
from mockpoeti.books.journal import JOURNAL_ANSWER_BYTES
from mockpoeti.http.call import Call, Delivery

DONE = b"data: [DONE]\n\n"
YIELD_AFTER_BYTES = 64 * 1024  # a write this large gives the loop to other clients before the next
HEADERS = {
    "Content-Type": "text/event-stream; charset=utf-8",
    "Cache-Control": "no-cache",
    "Connection": "keep-alive",
    "X-Accel-Buffering": "no",
}


def frame(data: dict | bytes) -> bytes:
    """One SSE event: a chunk, or a chunk already serialised."""
    return b"".join((b"data: ", data if isinstance(data, bytes) else encode(data), b"\n\n"))


def offsets(kinds: list[str], pacing: Pacing | None, rnd: random.Random) -> Iterator[float | None] | None:
    """Send time of each frame, in seconds after the request arrived (None = at
    once), drawn as the frames are; None for a stream nothing paces.

    Content frames are paced; the role frame goes at once; the closing frames
    follow the last content frame without delay.
    """
    if pacing is None or (pacing.first_chunk is None and pacing.interval is None):
        return None
    return _deadlines(kinds, pacing, rnd)


def _deadlines(kinds: list[str], pacing: Pacing, rnd: random.Random) -> Iterator[float | None]:
    deadline = None
    for kind in kinds:
        if kind != "content":
            yield None
            continue
        if deadline is None:
            deadline = pacing.first_chunk.draw(rnd) if pacing.first_chunk else 0.0
        else:
            deadline += pacing.interval.draw(rnd) if pacing.interval else 0.0
        jitter = rnd.uniform(-pacing.jitter_ms, pacing.jitter_ms) / 1000 if pacing.jitter_ms else 0.0
        yield max(0.0, deadline + jitter)


async def perform(call: Call, response: web.StreamResponse, steps: Iterable[Step], content_chunks: int = 0) -> web.StreamResponse:
    """Carry out a plan, noting on the call what was sent and whether the client left.

    A client that leaves is noticed by aiohttp, which cancels this handler: a held
    line needs no polling, and the cancellation reaches the pipeline, which records it."""
    loop = asyncio.get_running_loop()
    request = call.request
    arrived = call.arrived
    sent = call.delivery = Delivery(content_chunks)
    try:
        for step in steps:
            if step.op == "headers":
                if step.length is not None:
                    response.content_length = step.length
                call.stamp(response)
                await response.prepare(request)
                call.stream = response
                sent.headers_sent = True
                sent.timeline.sse = response.content_type == "text/event-stream"
                sent.timeline.headers_ms = (loop.time() - arrived) * 1000
            elif step.op == "write":
                if step.at is not None:
                    delay = arrived + step.at - loop.time()
                    if delay > 0:
                        await asyncio.sleep(delay)
                data = step.data
                await response.write(data)
                sent.bytes_sent += len(data)
                sent.chunks_sent += step.content
                note_write(sent, data, step.content, (loop.time() - arrived) * 1000, step.at)
                if len(data) >= YIELD_AFTER_BYTES:  # a fast reader never makes a write wait: let others in
                    await asyncio.sleep(0)
            elif step.op == "pause":
                await asyncio.sleep(step.seconds or 0)
            elif step.op == "hold":
                await (asyncio.sleep(step.seconds) if step.seconds is not None else loop.create_future())
            elif step.op == "abort":
                _abort(request)
                break
            elif step.op == "eof":
                await response.write_eof()
                sent.completed = True
            elif step.op == "strike":
                sent.timeline.fault_ms = (loop.time() - arrived) * 1000
    except (ConnectionResetError, ConnectionAbortedError, BrokenPipeError):
        sent.interrupted = True
    except asyncio.CancelledError:
        sent.interrupted = True
        raise
    if not response.prepared:  # reset or hang before any header: nothing was answered
        call.stream = response
    return response


def note_write(sent: Delivery, data: bytes, content: int, at_ms: float, planned_s: float | None) -> None:
    """One write went out `at_ms` after arrival (planned for `planned_s` after it; None: at
    once): counted in SSE events, marked on the timeline, its bytes kept for the journal."""
    events = 0
    timeline = sent.timeline
    if timeline.sse:
        events = data.count(b"\n\n")
        if data[:1] == b"\n" and sent.tail[-1:] == b"\n" and sent.tail != b"\n\n":  # a blank line split in two writes
            events += 1
        sent.tail = data[-2:]
        sent.events_sent += events
        if data.endswith(DONE):
            timeline.done = True
    timeline.mark(at_ms, None if planned_s is None else planned_s * 1000, events, content)
    if sent.bytes_sent - len(data) < JOURNAL_ANSWER_BYTES:  # what was written before this one
        sent.kept.append(data)


def _abort(request: web.BaseRequest) -> None:
    """Close with a TCP reset, the way a crashed peer or a middlebox would."""
    transport = request.transport
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()
