"""The one error format and JSON answers, at the HTTP edge (parsing and writing JSON is `base.jsonio`)."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from mockpoeti.base.catalog import Catalog
from mockpoeti.base.errors import ApiError
from mockpoeti.base.jsonio import encode
from mockpoeti.base.secrets import mask_keys
from mockpoeti.http.whole_answer import WholeAnswer


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return encoded_response(encode(data), status, headers)


def encoded_response(body: bytes, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    """An answer of JSON already serialised."""
    return WholeAnswer.json(body, status, headers)


def error_body(catalog: Catalog, error: ApiError) -> tuple[int, dict]:
    known = catalog.errors.get(error.code)
    status = error.status or (known.status if known else 500)
    message = mask_keys(error.message or (known.message if known else error.code))  # it may quote the request
    return status, {"error": {"code": error.code, "message": message, "status": status}}


def error_response(catalog: Catalog, error: ApiError, trace_id: str | None = None) -> web.Response:
    """The one error format; with `trace_id`, an answer made outside any `Call` (a parser's
    refusal, a session that is gone) carries its trace id as a call's answer would."""
    status, body = error_body(catalog, error)
    response = json_response(body, status=status, headers=error.headers)
    if trace_id is not None:
        response.headers["X-Trace-ID"] = response.headers["x-request-id"] = trace_id
    return response


async def read_raw(request: web.BaseRequest, limit: int, timeout: float) -> bytes:
    """The body's bytes, or `payload_too_large` / `request_timeout` / `invalid_request` saying
    why they cannot be had (a body trickled in forever would hold its connection for ever)."""
    length = request.content_length
    if length is not None and length > limit:
        raise ApiError("payload_too_large", f"The request body is {length} bytes; the limit is {limit} bytes.")
    content = request.content
    try:
        if content.is_eof():
            # The whole body came with the headers (most do): what the stream holds is all of it,
            # taken at once (`read()` would ask the stream twice, copying into a bytearray between).
            raw = content.read_nowait()
            if len(raw) > limit:  # no Content-Length (chunked): only now is its size known
                raise _too_large(limit)
        else:  # a deadline costs the event loop a timer per call: only where there is a wait to bound
            async with asyncio.timeout(timeout):
                raw = await request.read()
    except TimeoutError:
        content.feed_eof()
        raise ApiError("request_timeout", f"The request body did not arrive within {timeout:g} s.", close=True) from None
    except web.HTTPRequestEntityTooLarge:
        raise _too_large(limit) from None
    except web.RequestPayloadError:
        # a Content-Encoding the body does not have: no more of it is worth reading
        content.feed_eof()
        encoding = request.headers.get("Content-Encoding", "")
        message = f"The request body could not be decoded as Content-Encoding '{encoding[:40]}'."
        raise ApiError("invalid_request", message, close=True) from None
    return raw


def _too_large(limit: int) -> ApiError:
    return ApiError("payload_too_large", f"The request body is larger than the limit of {limit} bytes.")
