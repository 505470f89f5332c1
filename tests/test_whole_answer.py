"""Pins `http/whole_answer.WholeAnswer` against aiohttp: for every kind of request, the bytes it
writes are the bytes aiohttp's own `web.Response` writes for the same answer (the Date line
aside, which both write). An aiohttp upgrade that changes what `prepare` adds, or the private
fields the one-piece write sets, fails here first."""

from __future__ import annotations

import asyncio
import re

import pytest
from aiohttp import web

from mockpoeti.http.whole_answer import WholeAnswer

BODY = b'{"object": "chat.completion", "text": "\xc3\xa9t\xc3\xa9"}'
HEADERS = {"X-Trace-ID": "trace-poeti-0123456789abcdef", "Access-Control-Allow-Origin": "*", "Retry-After": "3"}


async def _answer(kind: type[web.Response], status: int, request: web.BaseRequest) -> web.StreamResponse:
    await request.read()
    if kind is WholeAnswer:
        response: web.Response = WholeAnswer.json(BODY, status, HEADERS)
    else:
        response = kind(body=BODY, status=status, headers=HEADERS, content_type="application/json")
    if request.path == "/close":  # as the pipeline closes after a body it could not read
        response.force_close()
    return response


async def _exchange(kind: type[web.Response], status: int, head: bytes) -> bytes:
    """What a server answering with `kind` writes for the request `head` (then the connection is
    closed by the client: what was written before that is the answer)."""
    server = web.Server(lambda request: _answer(kind, status, request), access_log=None)
    runner = web.ServerRunner(server)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(head)
        await writer.drain()
        answer = await _read_answer(reader, head.startswith(b"HEAD"))
        writer.close()
        return re.sub(rb"\r\nDate: [^\r]*", b"\r\nDate: -", answer)
    finally:
        await runner.cleanup()


async def _read_answer(reader: asyncio.StreamReader, head_only: bool) -> bytes:
    """One answer: the head, then as many bytes as its Content-Length says (none for HEAD)."""
    answer = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    length = re.search(rb"\r\nContent-Length: (\d+)", answer)
    if length and not head_only:
        answer += await asyncio.wait_for(reader.readexactly(int(length[1])), 5)
    return answer


REQUESTS = {
    "http/1.1 keep-alive": b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}",
    "http/1.1 connection close": b"POST / HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{}",
    "http/1.0": b"POST / HTTP/1.0\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}",
    "http/1.0 keep-alive": b"POST / HTTP/1.0\r\nHost: x\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\n{}",
    "head": b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n",
    "closed by the answer": b"POST /close HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}",
}


@pytest.mark.parametrize("status", [200, 429, 500])
@pytest.mark.parametrize("request_name", list(REQUESTS))
async def test_a_whole_answer_is_the_bytes_aiohttp_writes(request_name, status):
    head = REQUESTS[request_name]
    ours, theirs = await _exchange(WholeAnswer, status, head), await _exchange(web.Response, status, head)
    assert ours == theirs
    assert b"\r\nDate: -" in ours and f" {status} ".encode() in ours.split(b"\r\n")[0]
    assert f"Content-Length: {len(BODY)}".encode() in ours
