"""Server-Sent Events on the wire: deadline pacing, and carrying out the plans of
`faults.py` (for streams and for whole bodies alike) with what each write carried
noted for the books. The events themselves come framed (`answers/completion.py`).

Chunks are paced to absolute deadlines (arrival + first_chunk + i x interval),
never `sleep(interval)` after each write, so timing does not drift under load.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import struct
from collections.abc import Callable, Iterable, Iterator
from itertools import accumulate, chain, repeat

from aiohttp import hdrs, web
from multidict import istr

from mockpoeti.answers.completion import DONE
from mockpoeti.answers.faults import Step
from mockpoeti.answers.script import Pacing
from mockpoeti.books.journal import JOURNAL_ANSWER_BYTES
from mockpoeti.books.timeline import BLANK_LINE, events_ended
from mockpoeti.http.call import Call, Delivery

YIELD_AFTER_BYTES = 64 * 1024  # a write this large gives the loop to other clients before the next
HEADERS = {  # (case-insensitive names made once, not for each stream: see call.TRACE_ID)
    hdrs.CONTENT_TYPE: "text/event-stream; charset=utf-8",
    hdrs.CACHE_CONTROL: "no-cache",
    hdrs.CONNECTION: "keep-alive",
    istr("X-Accel-Buffering"): "no",
}


class WholeStream(web.StreamResponse):
    """A stream written at once (nothing paces it, no fault breaks it): its headers go out in
    the same send as its events, one system call where a StreamResponse makes two (a send
    on loopback is ~15 us of the server's CPU, the receiver's TCP work included)."""

    _send_headers_immediately = False  # aiohttp's own: web.Response sets it so (without it, one send more)


def offsets(kinds: list[str], pacing: Pacing | None, rnd: random.Random | None) -> Iterator[float | None] | None:
    """Send time of each frame, in seconds after the request arrived (None = at
    once), drawn as the frames are (`rnd`: None when nothing is, `Pacing.drawn`);
    None for a stream nothing paces.

    Content frames are paced; the role frame goes at once; the closing frames
    follow the last content frame without delay.
    """
    if pacing is None or not pacing.paces:
        return None
    if not pacing.drawn and "content" in kinds:
        first, count = kinds.index("content"), kinds.count("content")
        if kinds[first + count - 1] == "content":  # in one run (as a stream's are): the deadlines are sums, made in C
            start = pacing.first_chunk.draw(None) if pacing.first_chunk else 0.0
            interval = pacing.interval.draw(None) if pacing.interval else 0.0
            deadlines = map(max, repeat(0.0), accumulate(repeat(interval, count - 1), initial=start))
            return chain(repeat(None, first), deadlines, repeat(None, len(kinds) - first - count))
    return _deadlines(kinds, pacing, rnd)


def _deadlines(kinds: list[str], pacing: Pacing, rnd: random.Random | None) -> Iterator[float | None]:
    deadline = None
    for kind in kinds:
        if kind != "content":
            yield None
            continue
        if deadline is None:
            deadline = pacing.first_chunk.draw(rnd) if pacing.first_chunk else 0.0
        else:
            deadline += pacing.interval.draw(rnd) if pacing.interval else 0.0
        jitter = rnd.uniform(-pacing.jitter_ms, pacing.jitter_ms) / 1000 if pacing.jitter_ms and rnd else 0.0
        yield max(0.0, deadline + jitter)


async def perform(
    call: Call, response: web.StreamResponse, steps: Iterable[Step], content_chunks: int = 0,
    replay: Callable[[], Iterable[Step]] | None = None,
) -> web.StreamResponse:
    """Carry out a plan, noting on the call what was sent and whether the client left.

    A client that leaves is noticed by aiohttp, which cancels this handler: a held
    line needs no polling, and the cancellation reaches the pipeline, which records it.
    `replay` makes the same plan again: the journal then keeps it, not the bytes written."""
    loop = asyncio.get_running_loop()
    request = call.request
    arrived = call.arrived
    sent = call.delivery = Delivery(content_chunks, replay)
    timeline = sent.timeline
    try:
        for op, data, at, content, events, seconds, length in steps:
            if op == "write" or (op == "eof" and data):
                if at is not None:
                    delay = arrived + at - loop.time()
                    if delay > 0:
                        await asyncio.sleep(delay)
                if op == "eof":  # the last bytes and the end in one send
                    await response.write_eof(data)
                    sent.completed = True
                else:
                    await response.write(data)
                size = len(data)
                sent.bytes_sent += size
                sent.chunks_sent += content
                if timeline.sse:
                    if events is None:  # pieces of events (a fault's): counted
                        events, sent.tail = events_ended(data, sent.tail), data[-2:]
                    else:  # whole events, as planned: the write ends with a blank line
                        sent.tail = BLANK_LINE
                    sent.events_sent += events
                    if data.endswith(DONE):
                        timeline.done = True
                else:
                    events = 0
                timeline.mark((loop.time() - arrived) * 1000, None if at is None else at * 1000, events, content)
                if replay is None and sent.bytes_sent - size < JOURNAL_ANSWER_BYTES:  # what was written before this one
                    sent.kept.append(data)
                if size >= YIELD_AFTER_BYTES:  # a fast reader never makes a write wait: let others in
                    await asyncio.sleep(0)
            elif op == "headers":
                if length is not None:
                    response.content_length = length
                call.stamp(response)
                await response.prepare(request)
                call.stream = response
                sent.headers_sent = True
                timeline.sse = response.content_type == "text/event-stream"
                timeline.headers_ms = (loop.time() - arrived) * 1000
            elif op == "pause":
                await asyncio.sleep(seconds or 0)
            elif op == "hold":
                await (asyncio.sleep(seconds) if seconds is not None else loop.create_future())
            elif op == "abort":
                _abort(request)
                break
            elif op == "eof":
                await response.write_eof()
                sent.completed = True
            elif op == "strike":
                timeline.fault_ms = (loop.time() - arrived) * 1000
    except (ConnectionResetError, ConnectionAbortedError, BrokenPipeError):
        sent.interrupted = True
    except asyncio.CancelledError:
        sent.interrupted = True
        raise
    if not response.prepared:  # reset or hang before any header: nothing was answered
        call.stream = response
    return response


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
