"""The fault catalogue: what goes on the wire, and when, for a body or a stream.

Pure. A plan is a sequence of `Step`s (send headers, write bytes at a deadline,
pause, hold the line silent, abort the connection, end the body); the SSE
writer carries it out. A plan without a fault is simply the honest answer.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from functools import partial
from itertools import chain, repeat
from typing import NamedTuple

from mockpoeti.answers.script import Fault

SPLIT_PAUSE_S = 0.02  # between the halves of a split write, so they arrive as separate reads
WRITE_BYTES = 256 * 1024  # an unpaced stream goes out in writes of about this: a long one is never all in memory


class Step(NamedTuple):
    """One thing the writer does. A tuple: a stream plans one per chunk, and
    tuples are made several times faster than frozen dataclasses."""

    # headers | write | pause | hold | abort | eof (with data: the last write too) | strike (the fault
    # takes effect here: noted, nothing sent)
    op: str
    data: bytes = b""
    at: float | None = None  # for writes: seconds after the request arrived
    content: int = 0  # how many content chunks the write carries
    events: int | None = None  # how many SSE events it ends (None: the writer counts them)
    seconds: float | None = None  # for pause; for hold, None = until the client leaves
    length: int | None = None  # for headers: the Content-Length to announce

    @property
    def writes(self) -> bool:
        """Does it send bytes? (A write, or the end of the body sent with the last of them: one
        system call, not two.)"""
        return self.op == "write" or (self.op == "eof" and bool(self.data))


STRIKE = Step("strike")
_STEP: Callable[[tuple], Step] = partial(tuple.__new__, Step)  # a Step of all its fields, made in C (Step() is a Python call)
_CONTENT = {"content": 1}  # content chunks in a frame of each kind


def _hold(fault: Fault) -> list[Step]:
    return [STRIKE, Step("hold", seconds=None if fault.duration_ms is None else fault.duration_ms / 1000), Step("abort")]


def plan_body(body: bytes, fault: Fault | None) -> list[Step] | None:
    """A whole (non-stream) body under a fault; None when the fault only fits a stream."""
    if fault is None:
        return [Step("headers", length=len(body)), Step("write", body), Step("eof")]
    kind = fault.kind
    if fault.stream_only:
        return None
    if kind == "reset":
        return [Step("pause", seconds=fault.after_ms / 1000), STRIKE, Step("abort")]
    if kind == "hang":
        return _hold(fault)
    if kind == "malformed":
        broken = body[: max(1, len(body) // 2)]
        return [Step("headers", length=len(broken)), STRIKE, Step("write", broken), Step("eof")]
    head = Step("headers", length=len(body))
    if kind == "empty":
        return [head, STRIKE, Step("abort")]
    if kind == "stall":
        return [head, *_hold(fault)]
    if kind == "disconnect":
        return [head, Step("write", body[: len(body) // 2]), STRIKE, Step("abort")]
    if kind == "drip":
        return [head, *_drip([Step("write", body)], fault), Step("eof")]
    raise ValueError(f"unknown fault kind {kind!r}")  # unreachable: validated on load


def plan_stream(
    kinds: list[str],
    frames: Iterable[bytes],
    offsets: Iterable[float | None] | None,
    done: bytes,
    fault: Fault | None,
    error_frame: bytes = b"",
    blocks: Callable[[int], Iterable[tuple[bytes, int, int]]] | None = None,
) -> Iterator[Step]:
    """SSE frames, of the given kinds, with their send times (None: all at
    once), and the fault folded in.

    Lazy: each frame is made when its step is due, so a paced stream holds one
    chunk at a time, not all of them for its whole length.
    `after_chunks` counts content chunks sent before the fault strikes; by
    default, half of them.

    An unpaced stream without a fault is written in pieces of about WRITE_BYTES (one,
    mostly), taken from `blocks` when it is given: the same frames already run together
    (bytes, events, content chunks), as `StreamedAnswer.blocks` makes them.
    """
    if fault is None and offsets is None:
        frame_by_frame = ((data, 1, kind == "content") for kind, data in zip(kinds, frames, strict=True))
        return _whole(blocks(WRITE_BYTES) if blocks else frame_by_frame, done)
    if fault is None and offsets is not None:  # paced: a write per frame, made by C iterators (no Python frame a chunk)
        fields = zip(repeat("write"), frames, offsets, map(_CONTENT.get, kinds, repeat(0)), repeat(1), repeat(None), repeat(None))
        return chain((Step("headers"),), map(_STEP, fields), (Step("eof", done, None, 0, 1),))
    steps = _stream_steps(kinds, frames, offsets, done, fault, error_frame)
    return _drip(steps, fault) if fault is not None and fault.kind == "drip" else steps


def _whole(blocks: Iterable[tuple[bytes, int, int]], done: bytes) -> Iterator[Step]:
    """Headers, the blocks as writes of at least WRITE_BYTES, the last with `done` and the end."""
    yield Step("headers")
    batch: list[bytes] = []
    size = events = content = 0
    for data, n, c in blocks:
        batch.append(data)
        size += len(data)
        events += n
        content += c
        if size >= WRITE_BYTES:
            yield Step("write", b"".join(batch), None, content, events)
            batch, size, events, content = [], 0, 0, 0
    batch.append(done)
    yield Step("eof", batch[0] if len(batch) == 1 else b"".join(batch), None, content, events + 1)


def written(plan: Callable[[], Iterable[Step]], limit: int) -> bytes:
    """The first `limit` bytes a plan writes: how the journal keeps an answer made again
    from what it was made of, rather than its bytes (plans are pure: the same bytes again)."""
    out: list[bytes] = []
    size = 0
    for step in plan():
        if size >= limit:
            break
        if step.writes:
            out.append(step.data)
            size += len(step.data)
    return b"".join(out)[:limit]


def _stream_steps(kinds, frames, offsets, done, fault, error_frame) -> Iterator[Step]:
    kind = fault.kind if fault else None
    content_count = kinds.count("content")
    if kind == "reset":
        yield from (Step("pause", seconds=fault.after_ms / 1000), STRIKE, Step("abort"))
        return
    if kind == "hang":
        yield from _hold(fault)
        return
    yield Step("headers")
    if kind == "empty":
        yield from (STRIKE, Step("abort"))
        return
    after = fault.after_chunks if fault and fault.after_chunks is not None else content_count // 2
    after = min(after, content_count - 1 if kind in ("duplicate_chunk", "split_utf8") else content_count)
    sent, struck = 0, False
    for frame_kind, data, at in zip(kinds, frames, offsets or repeat(None), strict=False):
        if not struck and sent == after and frame_kind in ("content", "finish"):
            struck = True
            if kind == "disconnect":
                yield from (STRIKE, Step("abort"))
                return
            if kind == "stall":
                yield from _hold(fault)
                return
            if kind == "error_event":
                yield from (STRIKE, Step("write", error_frame, None, 0, 1), Step("eof"))
                return
            if kind == "malformed_chunk":  # the broken half instead of the chunk: its content is lost
                yield from (STRIKE, Step("write", data[: len(data) // 2] + b"\n\n", at, 0, 1))
                sent += 1
                continue
        if frame_kind == "finish" and kind == "no_finish":
            yield STRIKE
            continue
        if frame_kind != "content":
            yield Step("write", data, at, 0, 1)
            continue
        cut = _inside_multibyte(data) if kind == "split_utf8" and sent >= after else None
        if cut is not None:
            yield from (STRIKE, Step("write", data[:cut], at, 1), Step("pause", seconds=SPLIT_PAUSE_S), Step("write", data[cut:]))
            kind = None  # once
        else:
            yield Step("write", data, at, 1, 1)
        if kind == "duplicate_chunk" and sent == after:
            yield from (STRIKE, Step("write", data, at, 0, 1))
        sent += 1
    if kind != "no_done":
        yield Step("write", done, None, 0, 1)
    else:
        yield STRIKE
    yield Step("eof")


def _inside_multibyte(data: bytes) -> int | None:
    """A byte offset that falls inside a multibyte UTF-8 character, if there is one."""
    for i, byte in enumerate(data):
        if byte >= 0xC0:  # the lead byte of a multibyte character
            return i + 1
    return None


def _drip(steps: Iterable[Step], fault: Fault) -> Iterator[Step]:
    """Every write trickles out `bytes` at a time, `interval_ms` apart."""
    pause = Step("pause", seconds=fault.interval_ms / 1000)
    yield STRIKE  # from the first byte on
    for step in steps:
        if step.op != "write":
            yield step
            continue
        for i in range(0, len(step.data), fault.bytes):
            yield Step("write", step.data[i : i + fault.bytes], step.at if i == 0 else None, step.content if i == 0 else 0)
            yield pause
