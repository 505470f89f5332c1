"""Pins the one place mockpoeti goes past aiohttp's documented surface (`edge.Connection.handle_error`):
what aiohttp's HTTP parser refuses is answered in the one error format, with an X-Trace-ID, and
without quoting the refused bytes. If an aiohttp upgrade changes how parser errors are answered,
this fails first (aio-libs/aiohttp#3287 asks for a public hook)."""

from __future__ import annotations

import json
import socket

import pytest

SECRET = b"sk-poeti-this-key-must-not-be-echoed"


@pytest.mark.parametrize("head", [
    b"GET /v1/models HTTP/1.1\r\nHost: x\r\nX-Note: a\x00" + SECRET + b"\r\n\r\n",
    b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}",
    b"GET /" + b"a" * 70_000 + SECRET + b" HTTP/1.1\r\nHost: x\r\n\r\n",
], ids=["nul-in-header", "two-content-lengths", "line-too-long"])
def test_what_the_parser_refuses_is_answered_in_the_one_format(poeti, head):
    with socket.create_connection(("127.0.0.1", poeti.port), timeout=5) as sock:
        sock.sendall(head)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    status_line, _, rest = answer.partition(b"\r\n")
    headers, _, body = rest.partition(b"\r\n\r\n")
    assert status_line.split()[1] in (b"400", b"413")
    assert b"x-trace-id: trace-poeti-" in headers.lower()
    error = json.loads(body)["error"]
    assert error["code"] in ("invalid_request", "payload_too_large") and error["status"] == int(status_line.split()[1])
    assert SECRET not in answer
