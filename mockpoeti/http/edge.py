"""The connection edge: aiohttp's low-level server, with the limits mockpoeti sets
on every connection. This module holds the places mockpoeti goes past aiohttp's
and asyncio's documented surface (the other is `whole_answer.py`, the one-piece
write of an answer), these three:

- `Connection` subclasses aiohttp's `RequestHandler` (the protocol of one
  connection), for a deadline on the first request's headers and for
- `Connection.handle_error`. What aiohttp's HTTP parser refuses (a NUL
in a header, a line over the limit, two Content-Lengths) never reaches a handler:
aiohttp answers it itself, as text, quoting the refused bytes (which may hold a
key) in the answer and the log. aiohttp has no hook for that answer
(aio-libs/aiohttp#3287, #6463), so `Connection` overrides the method aiohttp
calls, to answer in the one error format with an X-Trace-ID.
- `limit_accept_errors` recognises asyncio's accept retries by the name of
  CPython's private `_start_serving` in the handle it reports.

`tests/test_edge.py` and `tests/test_limits.py` pin these, so an upgrade of
aiohttp or CPython that changes them fails there.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError, LineTooLong

from mockpoeti.base.errors import ApiError
from mockpoeti.books.state import State
from mockpoeti.http.wire import error_response

log = logging.getLogger("mockpoeti")

MAX_HEADER_BYTES = 65536  # a request line or one header; aiohttp's own cap of 128 headers stands
_QUOTED = re.compile(r":|\n| b?'| b?\"")  # where aiohttp's parser messages start quoting the request


class Connection(web.RequestHandler):
    """aiohttp's connection handler, with a deadline for the first request's headers
    and parser refusals answered in the one format."""

    def __init__(self, manager: Server, *, state: State, header_timeout: float, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self.state = state
        self.header_timeout = header_timeout
        self._deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        # a client that connects and never finishes its headers holds a descriptor: not for ever
        self._deadline = asyncio.get_running_loop().call_later(self.header_timeout, self._too_slow)

    def request_arrived(self) -> None:
        """Headers are in (aiohttp's keep-alive timeout covers the wait for the next ones)."""
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def connection_lost(self, exc: BaseException | None) -> None:
        self.request_arrived()
        super().connection_lost(exc)

    def _too_slow(self) -> None:
        self._deadline = None
        if self.transport is not None:
            log.debug("closed a connection that sent no complete request in %.0f s", self.header_timeout)
            self.transport.close()

    def handle_error(
        self, request: web.BaseRequest, status: int = 500, exc: BaseException | None = None, message: str | None = None
    ) -> web.StreamResponse:
        if status >= 500:
            self.log_exception("Error handling request", exc_info=exc)
        else:
            log.debug("refused a malformed request: %s", type(exc).__name__)
        if request.writer.output_size > 0:  # as aiohttp: a response is under way, only closing is left
            raise ConnectionError("Response is sent already, cannot send another response with the error message")
        if status >= 500:
            error = ApiError("internal_error")
        else:
            error = ApiError("payload_too_large" if status == 413 else "invalid_request", _refusal(exc), status=status)
        response = error_response(self.state.catalog, error, self.state.new_trace_id())
        response.force_close()
        return response


def _refusal(exc: BaseException | None) -> str:
    if isinstance(exc, LineTooLong):
        return f"The request line or a header is longer than {MAX_HEADER_BYTES} bytes."
    reason = exc.message if isinstance(exc, HttpProcessingError) and isinstance(exc.message, str) else ""
    reason = _QUOTED.split(reason, maxsplit=1)[0].strip()
    return f"The request is not valid HTTP/1.1{': ' + reason if reason else ''}."


OUT_OF_RESOURCES_LOG_S = 1.0  # "out of file descriptors" is logged at most this often


def limit_accept_errors(loop: asyncio.AbstractEventLoop) -> None:
    """Out of file descriptors, asyncio logs "socket.accept() out of system resource" once per
    pending connection of the listen backlog, every time it retries (CPython's accept loop does
    not stop at the first failure): half a million lines in half a minute, enough to fill a
    stderr pipe and stop the server. In a loop of our own, say it at most once a second."""
    last = [-OUT_OF_RESOURCES_LOG_S]
    suppressed = [0]

    def handle(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        # the report itself, and the retries it scheduled failing once the listening socket is closed
        retry = "_start_serving" in repr(context.get("handle"))
        if context.get("message") != "socket.accept() out of system resource" and not retry:
            loop.default_exception_handler(context)
            return
        now = loop.time()
        if now - last[0] < OUT_OF_RESOURCES_LOG_S:
            suppressed[0] += 1
            return
        log.error(
            "out of file descriptors: new connections wait until some close (%s; %d more like it since the last report)",
            context.get("exception"), suppressed[0],
        )
        last[0], suppressed[0] = now, 0

    loop.set_exception_handler(handle)


class Server(web.Server):
    """aiohttp's low-level server, making `Connection`s; requests carry the body limit."""

    def __init__(
        self, handler: Any, *, state: State, header_timeout: float, max_body_bytes: int,
        on_shutdown: Callable[[], None] = lambda: None, **kwargs: Any,
    ) -> None:
        super().__init__(handler, request_factory=self._request, handler_cancellation=True, **kwargs)
        self.loop = asyncio.get_running_loop()
        self.connection_options = {"state": state, "header_timeout": header_timeout, **kwargs}
        self.max_body_bytes = max_body_bytes
        self.on_shutdown = on_shutdown  # before connections are waited for: live feeds end at once

    async def shutdown(self, timeout: float | None = None) -> None:
        self.on_shutdown()
        await super().shutdown(timeout)

    def __call__(self) -> Connection:
        return Connection(self, loop=self.loop, **self.connection_options)

    def _request(self, message: Any, payload: Any, protocol: Any, writer: Any, task: Any) -> web.BaseRequest:
        if isinstance(protocol, Connection):
            protocol.request_arrived()
        return web.BaseRequest(message, payload, protocol, writer, task, self.loop, client_max_size=self.max_body_bytes)
