"""An answer whose body is all there, written in one piece.

aiohttp's `prepare` and `write_eof` are general: compression, cookies, chunking,
signals, HTTP/1.0, HEAD, each checked on every answer, then the headers and the
body passed down three layers to one `transport.write`. For the common case (an
HTTP/1.1 keep-alive request answered with a body in memory) `WholeAnswer` adds the
same three headers aiohttp adds, serialises them with aiohttp's own serialiser and
writes them with the body at once: the same bytes (`tests/test_whole_answer.py`
compares them byte for byte), ~26,000 instructions less a call. Anything else goes aiohttp's way.

Like `edge.py`, it goes past aiohttp's documented surface (the response's and the
writer's private fields), which the test pins against an upgrade.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from aiohttp.helpers import rfc822_formatted_time
from aiohttp.http import SERVER_SOFTWARE, HttpVersion11
from aiohttp.http_writer import _serialize_headers
from multidict import CIMultiDict


class WholeAnswer(web.Response):
    @classmethod
    def json(cls, body: bytes, status: int = 200, headers: dict[str, str] | None = None) -> WholeAnswer:
        """What `web.Response(body=body, status=status, headers=headers, content_type=
        "application/json")` makes, without its checks for text, charsets and payloads."""
        answer = cls.__new__(cls)
        real = CIMultiDict(headers) if headers else CIMultiDict()
        real["Content-Type"] = "application/json"
        web.StreamResponse.__init__(answer, status=status, _real_headers=real)
        answer._body = body
        return answer

    async def prepare(self, request: web.BaseRequest) -> Any:
        body = self._body
        if (
            type(body) is not bytes or self._payload_writer is not None or self._eof_sent or self._compression
            or self._cookies or self._chunked or request.version != HttpVersion11 or request.method == "HEAD"
            or self._keep_alive is False or not request.keep_alive or self._status < 200 or self._status in (204, 304)
        ):
            return await super().prepare(request)
        headers = self._headers
        headers["Content-Length"] = str(len(body))
        if "Date" not in headers:
            headers["Date"] = rfc822_formatted_time()
        headers.setdefault("Server", SERVER_SOFTWARE)
        head = _serialize_headers(f"HTTP/1.1 {self._status} {self._reason}", headers)
        self._keep_alive = True
        self._eof_sent = True
        self._body_length = len(body)
        request._payload_writer._write(head + body)  # type: ignore[attr-defined]  # aiohttp's StreamWriter, counting output_size
        return None
