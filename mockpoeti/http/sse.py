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
from typing import cast

from aiohttp import hdrs, web
from aiohttp.http_writer import StreamWriter
from multidict import istr

from mockpoeti.answers.faults import Step
from mockpoeti.answers.script import Pacing
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
    `replay` makes the same plan again: the journal then keeps it, not the bytes written.
    A run of paced writes is handed to a `Pacer`, which writes each from its timer."""
    loop = asyncio.get_running_loop()
    request = call.request
    arrived = call.arrived
    sent = call.delivery = Delivery(content_chunks, replay)
    timeline = sent.timeline
    steps = iter(steps)
    step = next(steps, None)
    try:
        while step is not None:
            op, data, at, content, events, seconds, length = step
            if op == "write" or (op == "eof" and data):
                if at is not None:
                    delay = arrived + at - loop.time()
                    if delay > 0:
                        if op == "write" and response.prepared and len(data) < YIELD_AFTER_BYTES:
                            step = await Pacer(loop, cast(StreamWriter, request.writer), sent, arrived, steps).run(step)
                            continue
                        await asyncio.sleep(delay)
                if op == "eof":  # the last bytes and the end in one send
                    await response.write_eof(data)
                    sent.completed = True
                else:
                    await response.write(data)
                sent.wrote(data, (loop.time() - arrived) * 1000, at, content, events)
                if len(data) >= YIELD_AFTER_BYTES:  # a fast reader never makes a write wait: let others in
                    await asyncio.sleep(0)
            elif op == "headers":
                if length is not None:
                    response.content_length = length
                call.stamp(response)
                if not request.keep_alive:  # the connection ends with this answer: aiohttp says so unless told otherwise
                    response.headers.popall(hdrs.CONNECTION, None)
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
            step = next(steps, None)
    except (ConnectionResetError, ConnectionAbortedError, BrokenPipeError):
        sent.interrupted = True
    except asyncio.CancelledError:
        sent.interrupted = True
        raise
    if not response.prepared:  # reset or hang before any header: nothing was answered
        call.stream = response
    return response


class Pacer:
    """Paced writes carried out by timer callbacks: each chunk is written when its timer
    fires, and the handler's task waits once for the whole run. Waking the task for each
    chunk (a sleep's future and timer, the task's step, its coroutines resumed) cost a
    seventh of a paced chunk's server CPU (20.0 -> 17.3 us at 300 streams), and brought
    500 paced streams from 1.13x the bare reference's CPU to its own. The run ends at the
    first step that is not a paced write (handed back to the task), when the steps end
    (None), after a write that must be drained first, or with a failed write's error."""

    __slots__ = ("arrived", "done", "loop", "sent", "steps", "timer", "writer")

    def __init__(self, loop: asyncio.AbstractEventLoop, writer: StreamWriter, sent: Delivery, arrived: float,
                 steps: Iterator[Step]) -> None:
        self.loop, self.writer, self.sent, self.arrived, self.steps = loop, writer, sent, arrived, steps
        self.done: asyncio.Future[Step | None] = loop.create_future()
        self.timer: asyncio.TimerHandle | None = None

    async def run(self, step: Step) -> Step | None:
        """Write `step` (a paced write, not yet due) and the paced writes after it; the step
        that ends the run."""
        self.timer = self.loop.call_at(self.arrived + step.at, self._fire, step)  # type: ignore[operator]
        try:
            ended = await self.done
        finally:
            if self.timer is not None:  # the handler was cancelled: the client left
                self.timer.cancel()
        if ended is DRAIN:
            await self.writer.drain()
            return next(self.steps, None)
        return ended

    def _fire(self, step: Step) -> None:
        self.timer = None
        done = self.done
        if done.done():
            return
        loop, writer, sent, arrived, steps = self.loop, self.writer, self.sent, self.arrived, self.steps
        try:
            while True:
                data = step.data
                _write_now(writer, data)
                now = loop.time()
                sent.wrote(data, (now - arrived) * 1000, step.at, step.content, step.events)
                if writer.buffer_size > DRAIN_AFTER_BYTES:  # aiohttp drains after this much, as its own writes do
                    writer.buffer_size = 0
                    done.set_result(DRAIN)
                    return
                following = next(steps, None)
                if following is None or following.op != "write" or following.at is None \
                        or len(following.data) >= YIELD_AFTER_BYTES:
                    done.set_result(following)
                    return
                step = following
                due = arrived + following.at
                if due > now:  # (the time of the last write: a chunk due since then waits for its timer)
                    self.timer = loop.call_at(due, self._fire, step)
                    return
        except Exception as e:  # a reset connection, as the task's own write would raise it
            done.set_exception(e)


DRAIN = Step("drain")  # a Pacer's run ended on a write aiohttp would drain after
DRAIN_AFTER_BYTES = 0x10000  # aiohttp's `StreamWriter.write` LIMIT


def _write_now(writer: StreamWriter, data: bytes) -> None:
    """aiohttp's own write, run to its end here (in a timer's callback, where nothing can be
    awaited): with `drain=False` it frames the chunk (chunked or not) and hands it to the
    transport without waiting for anything."""
    coroutine = writer.write(data, drain=False)
    try:
        coroutine.send(None)
    except StopIteration:
        return
    coroutine.close()
    raise RuntimeError("aiohttp's write(drain=False) waited: a paced chunk cannot be written from a timer")


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
