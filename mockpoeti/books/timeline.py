"""A streamed answer's timeline, as the SSE writer saw it and the journal keeps it: for
each write, when it went out and when it was planned to (milliseconds after the request
arrived), how many SSE events and content chunks it carried; when the headers went out
and when a scripted fault struck.

Marks are packed four numbers a write in one array (16 bytes a mark, where tuples of
floats take ~120), at most `MAX_MARKS` a stream, and made into lists only when the
journal is read: a journal full of long streams stays tens of megabytes. A write whose
plan can be made again (`plan`: a stream's, made of its completion) is marked with the
time it went out alone (4 bytes); when it was due and what it carried are read from the
plan made again when the journal is read, the same as it was.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Callable, Iterable

from mockpoeti.answers.faults import Step

MAX_MARKS = 1000  # writes a stream's timeline marks (a paced stream of 1,000 chunks is marked whole)
BLANK_LINE = b"\n\n"  # ends an SSE event
_NONE = math.nan  # a planned time of None (sent at once), as the array stores it


def events_ended(data: bytes, planned: int | None, tail: bytes) -> tuple[int, bytes]:
    """The SSE events a write ends, and the last two bytes written after it (`tail`: before
    it). A planned write of whole events says how many (`planned`) and ends with a blank
    line; a fault's pieces of events are counted: their blank lines, and one split between
    this write and the last."""
    if planned is not None:
        return planned, BLANK_LINE
    events = data.count(BLANK_LINE)
    if data[:1] == b"\n" and tail[-1:] == b"\n" and tail != BLANK_LINE:
        events += 1
    return events, data[-2:]


class Timeline:
    __slots__ = ("done", "dropped", "fault_ms", "headers_ms", "marks", "plan", "sse")

    def __init__(self, plan: Callable[[], Iterable[Step]] | None = None) -> None:
        self.plan = plan  # makes the writes again (None: each is marked whole)
        self.sse = False  # an event stream: writes are counted in events
        self.headers_ms: float | None = None
        self.fault_ms: float | None = None  # when the scripted fault struck
        self.done = False  # `data: [DONE]` went out
        self.marks = array("f")  # per write: sent ms, planned ms (NaN: at once), events, content chunks (with a plan: sent ms)
        self.dropped = 0  # writes past MAX_MARKS: counted, not marked

    def mark(self, sent_ms: float, planned_ms: float | None, events: int, content: int) -> None:
        if self.plan is not None:
            if len(self.marks) < MAX_MARKS:
                self.marks.append(sent_ms)
            else:
                self.dropped += 1
        elif len(self.marks) < 4 * MAX_MARKS:
            self.marks.extend((sent_ms, _NONE if planned_ms is None else planned_ms, events, content))
        else:
            self.dropped += 1

    def to_json(self) -> dict:
        m = self.marks if self.plan is None else self._replayed(self.plan)
        marks = [
            [round(m[i], 3), None if math.isnan(m[i + 1]) else round(m[i + 1], 3), int(m[i + 2]), int(m[i + 3])]
            for i in range(0, len(m), 4)
        ]
        return {
            "sse": self.sse,
            "headers_ms": _ms(self.headers_ms),
            "marks": marks,
            "marks_dropped": self.dropped,
            "done": self.done,
            "fault_ms": _ms(self.fault_ms),
        }

    def _replayed(self, plan: Callable[[], Iterable[Step]]) -> array:
        """The whole marks: the times sent, with what the plan made again says of each write."""
        whole = array("f")
        sent = iter(self.marks)
        tail = b""
        for step in plan():
            if not step.writes:
                continue
            at = next(sent, None)
            if at is None:
                break
            events = 0
            if self.sse:  # counted as the writer counted them
                events, tail = events_ended(step.data, step.events, tail)
            whole.extend((at, _NONE if step.at is None else step.at * 1000, events, step.content))
        return whole


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value, 3)
