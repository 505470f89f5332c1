"""A streamed answer's timeline, as the SSE writer saw it and the journal keeps it: for
each write, when it went out and when it was planned to (milliseconds after the request
arrived), how many SSE events and content chunks it carried; when the headers went out
and when a scripted fault struck.

Marks are packed four numbers a write in one array (16 bytes a mark, where tuples of
floats take ~120), at most `MAX_MARKS` a stream, and made into lists only when the
journal is read: a journal full of long streams stays tens of megabytes.
"""

from __future__ import annotations

import math
from array import array

MAX_MARKS = 1000  # writes a stream's timeline marks (a paced stream of 1,000 chunks is marked whole)
_NONE = math.nan  # a planned time of None (sent at once), as the array stores it


class Timeline:
    __slots__ = ("done", "dropped", "fault_ms", "headers_ms", "marks", "sse")

    def __init__(self) -> None:
        self.sse = False  # an event stream: writes are counted in events
        self.headers_ms: float | None = None
        self.fault_ms: float | None = None  # when the scripted fault struck
        self.done = False  # `data: [DONE]` went out
        self.marks = array("f")  # sent ms, planned ms (NaN: at once), events, content chunks; per write
        self.dropped = 0  # writes past MAX_MARKS: counted, not marked

    def mark(self, sent_ms: float, planned_ms: float | None, events: int, content: int) -> None:
        if len(self.marks) < 4 * MAX_MARKS:
            self.marks.extend((sent_ms, _NONE if planned_ms is None else planned_ms, events, content))
        else:
            self.dropped += 1

    def to_json(self) -> dict:
        m = self.marks
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


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value, 3)
