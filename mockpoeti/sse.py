"""Server-Sent Events framing for chat streams. No business logic: it frames
what `completion.stream_chunks` built and ends with `data: [DONE]`."""

from __future__ import annotations

from aiohttp import web

from .tracing import STREAM
from .wire import dumps

DONE = b"data: [DONE]\n\n"
HEADERS = {
    "Content-Type": "text/event-stream; charset=utf-8",
    "Cache-Control": "no-cache",
    "Connection": "keep-alive",
    "X-Accel-Buffering": "no",
}


def frame(data: dict) -> bytes:
    return b"data: " + dumps(data).encode() + b"\n\n"


async def open_stream(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(headers=HEADERS)
    await response.prepare(request)
    request[STREAM] = response
    return response


async def send_all(request: web.Request, chunks: list[dict]) -> web.StreamResponse:
    """An unpaced stream: every chunk and [DONE] in one write."""
    response = await open_stream(request)
    await response.write(b"".join(map(frame, chunks)) + DONE)
    await response.write_eof()
    return response
