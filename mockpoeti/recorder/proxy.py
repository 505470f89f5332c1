"""`mockpoeti record`: a proxy in front of the real gateway that writes what it
saw as a scenario file.

The edge only: forward each request (the client's own key goes through, none is
kept), stream answers back chunk by chunk as they arrive while timing them, and
write the file atomically every few seconds and at the end. What the file says
is `recording`'s job.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import threading
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from mockpoeti.base.catalog import load_catalog
from mockpoeti.base.errors import ConfigError
from mockpoeti.base.jsonio import encode
from mockpoeti.recorder.to_scenario import REPLAYED_HEADERS, EventSplitter, Exchange, Recording
from mockpoeti.scripting.loader import parse_scenario  # at the top: a reinstall while recording must not break the last write
from mockpoeti.scripting.scenario import METHODS
from mockpoeti.scripting.schema import load_with_lines

HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "proxy-connection",
    "te", "trailer", "transfer-encoding", "upgrade",
})
NOT_FORWARDED = HOP_BY_HOP | {"host", "content-length", "accept-encoding"}
NOT_RETURNED = HOP_BY_HOP | {"content-length", "content-encoding"}  # aiohttp re-frames and decodes
SHUTDOWN_TIMEOUT_S = 5.0  # answers still streaming at SIGTERM get this long to finish (and be recorded)
MAX_BODY_BYTES = 64 * 1024 * 1024  # what the recorder reads of a request; the upstream has its own limit


class Recorder:
    def __init__(self, upstream: str, out: Path, *, timeout: float = 600.0, flush_seconds: float = 2.0, fixtures=None):
        self.upstream = upstream.rstrip("/")
        self.out = out
        self.timeout = timeout
        self.flush_seconds = flush_seconds
        self.errors = load_catalog(fixtures).errors
        started = datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
        self.recording = Recording(upstream=self.upstream, started=started, name=out.stem or "recorded")
        self._written = 0  # `recording.changes` when the file was last written
        self._writing = threading.Lock()  # the periodic flush (a thread) and the last write take turns
        self._session: aiohttp.ClientSession | None = None

    # --- the file --------------------------------------------------------------

    def write(self) -> bool:
        """Write FILE now if anything changed since it was last written."""
        snapshot = self.recording.snapshot()
        if snapshot.changes == self._written:
            return False
        self._write(snapshot)
        return True

    def _write(self, snapshot: Recording) -> None:
        """A temporary file beside FILE, renamed over it: a reader (or a crash) never
        sees half a file. Runs in a thread while recording, so relayed chunks are not held up."""
        text = snapshot.text(self.errors)
        with self._writing:
            if snapshot.changes <= self._written:
                return  # a newer snapshot got there first
            self._check(text)
            tmp = self.out.with_name(f".{self.out.name}.{os.getpid()}.tmp")
            tmp.write_text(text, encoding="utf-8")
            os.replace(tmp, self.out)
            self._written = snapshot.changes

    def _check(self, text: str) -> None:
        """The file must load as a scenario; if it somehow would not, say so (and write it anyway: nothing is lost)."""
        try:
            parse_scenario(load_with_lines(text), str(self.out), self.errors)
        except ConfigError as e:
            print("mockpoeti: warning: the recording does not validate:\n" + "\n".join(e.problems), file=sys.stderr)

    async def _flush_every(self) -> None:
        while True:
            await asyncio.sleep(self.flush_seconds)
            snapshot = self.recording.snapshot()  # taken here, in the loop that adds to it
            if snapshot.changes == self._written:
                continue
            try:
                await asyncio.to_thread(self._write, snapshot)
            except OSError as e:
                print(f"mockpoeti: cannot write {self.out}: {e}", file=sys.stderr)

    # --- the proxy -------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_BODY_BYTES)
        app.router.add_route("*", "/{tail:.*}", self.forward)
        app.cleanup_ctx.append(self._client)
        return app

    async def _client(self, app: web.Application):
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0),  # as many upstream calls at once as clients make
            auto_decompress=True,
            trust_env=True,  # HTTPS_PROXY / NO_PROXY, as the SDKs that would call the gateway honour them
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=self.timeout, sock_read=self.timeout),
        )
        yield
        await self._session.close()

    async def forward(self, request: web.Request) -> web.StreamResponse:
        """Forward one request; answer what the upstream answers, as it answers it."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        body = await request.read()
        self.recording.remember_secret(_bearer(request.headers))
        url = URL(self.upstream + request.raw_path, encoded=True)
        assert self._session is not None
        try:
            upstream = await self._session.request(
                request.method, url, headers=_forwarded(request.headers), data=body or None, allow_redirects=False
            )
        except TimeoutError:
            return self._failure(504, "upstream_timeout", f"The upstream {self.upstream} sent nothing for {self.timeout:g} s.")
        except aiohttp.ClientError as e:
            return self._failure(502, "upstream_error", f"The upstream {self.upstream} could not be reached: {e}")
        try:
            if upstream.content_type == "text/event-stream":
                return await self._relay_stream(request, upstream, started, body)
            try:
                data = await upstream.read()
            except TimeoutError:
                return self._failure(504, "upstream_timeout", f"The upstream {self.upstream} went silent for {self.timeout:g} s.")
            except aiohttp.ClientError as e:
                return self._failure(502, "upstream_error", f"The upstream {self.upstream} broke off its answer: {e}")
            self._record(request, body, upstream, body_of(data), None, False, loop.time() - started)
            return web.Response(body=data, status=upstream.status, headers=_returned(upstream.headers))
        finally:
            upstream.close()  # unread (the client left, or the upstream failed): close, never drain

    async def _relay_stream(
        self, request: web.Request, upstream: aiohttp.ClientResponse, started: float, body: bytes
    ) -> web.StreamResponse:
        """Each piece goes to the client as it arrives, and each event is timed as it completes."""
        loop = asyncio.get_running_loop()
        response = web.StreamResponse(status=upstream.status, headers=_returned(upstream.headers))
        await response.prepare(request)
        splitter = EventSplitter()
        events: list[tuple[float, str]] = []
        broken = False
        chunks = upstream.content.iter_any()
        try:
            while True:
                try:
                    data = await anext(chunks, b"")
                except TimeoutError:
                    error = {"code": "upstream_timeout", "status": 504,
                             "message": f"The upstream {self.upstream} sent nothing for {self.timeout:g} s."}
                    with contextlib.suppress(ConnectionError):
                        await response.write(b"data: " + encode({"error": error}) + b"\n\n")
                        await response.write_eof()
                    return response  # a timeout is ours, not the upstream's answer: not recorded
                except aiohttp.ClientError:
                    broken = True  # the upstream dropped the stream: replayed as a disconnect
                    break
                if not data:
                    break
                at = loop.time() - started
                events.extend((at, event) for event in splitter.feed(data))
                await response.write(data)
        except ConnectionError:  # the client left
            self._record_if_whole(request, body, upstream, events)
            return response
        except asyncio.CancelledError:  # the client left (aiohttp cancels the handler)
            self._record_if_whole(request, body, upstream, events)
            raise
        self._record(request, body, upstream, None, tuple(events), broken, loop.time() - started)
        if broken:
            if request.transport is not None:
                request.transport.abort()
            return response
        with contextlib.suppress(ConnectionError):
            await response.write_eof()
        return response

    def _record_if_whole(self, request: web.Request, body: bytes, upstream: aiohttp.ClientResponse, events: list) -> None:
        """Clients (the openai SDK among them) may hang up as soon as they read [DONE], or an
        error event (the SDK raises on it), before the upstream closed: that stream was whole,
        and is recorded. Any other stream the client cut short is not the upstream's answer."""
        if any(data.strip() == "[DONE]" for _, data in events) or (events and _is_error_event(events[-1][1])):
            self._record(request, body, upstream, None, tuple(events), False, 0.0)

    def _record(self, request: web.Request, body: bytes, upstream: aiohttp.ClientResponse, answer: Any,
                events: tuple[tuple[float, str], ...] | None, broken: bool, elapsed: float) -> None:
        if request.method not in METHODS or request.method == "OPTIONS" or request.path.startswith("/__admin/"):
            return  # preflights and the mock's own admin API are no part of the gateway
        request_body = body_of(body)
        if answer is _BINARY or request_body is _BINARY:
            return  # a scenario file holds text
        headers = {name: upstream.headers[name] for name in REPLAYED_HEADERS if name in upstream.headers}
        self.recording.add(Exchange(
            method=request.method, path=request.path, query=request.query_string, request=request_body,
            status=upstream.status, headers=headers, body=answer, events=events, broken=broken, elapsed=elapsed,
        ))

    def _failure(self, status: int, code: str, message: str) -> web.Response:
        """The recorder's own error, in the unified format, with a trace id like every answer."""
        return web.Response(
            body=encode({"error": {"code": code, "message": message, "status": status}}),
            status=status,
            content_type="application/json",
            headers={"X-Trace-ID": "trace-record-" + uuid.uuid4().hex[:24]},
        )

    # --- running ---------------------------------------------------------------

    async def run(self, host: str, port: int) -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        runner = web.AppRunner(self.app(), handler_cancellation=True, shutdown_timeout=SHUTDOWN_TIMEOUT_S, access_log=None)
        await runner.setup()
        try:
            site = web.TCPSite(runner, host, port)
            await site.start()
            bound = runner.addresses[0][1]
            shown = f"[{host}]" if ":" in host else host
            if host not in ("127.0.0.1", "::1", "localhost"):
                print(f"mockpoeti: warning: listening on {host}, reachable beyond this machine", file=sys.stderr)
            print(f"mockpoeti recording on http://{shown}:{bound} -> {self.upstream} (writing {self.out})", flush=True)
            flusher = asyncio.create_task(self._flush_every())
            await stop.wait()
            flusher.cancel()
        finally:
            await runner.cleanup()  # lets answers in flight finish, so they are recorded too
        try:
            written = self.write()
        except OSError as e:
            print(f"mockpoeti: cannot write {self.out}: {e}", file=sys.stderr)
            raise SystemExit(1) from None
        if written or self.out.exists():
            count = len(self.recording.exchanges)
            print(f"mockpoeti: recorded {count} request{'s' if count != 1 else ''} to {self.out}", file=sys.stderr)
        else:
            print(f"mockpoeti: nothing recorded; {self.out} not written", file=sys.stderr)


_BINARY = object()


def body_of(data: bytes) -> Any:
    """A body as JSON, else as text; `_BINARY` when it is neither (not recorded)."""
    if not data:
        return None
    try:
        return json.loads(data)
    except ValueError:
        pass
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return _BINARY


def _bearer(headers: CIMultiDictProxy[str]) -> str:
    scheme, _, token = headers.get("Authorization", "").strip().partition(" ")
    return token.strip() if scheme.lower() == "bearer" else headers.get("Authorization", "").strip()


def _is_error_event(data: str) -> bool:
    try:
        event = json.loads(data)
    except ValueError:
        return False
    return isinstance(event, dict) and "error" in event


def _forwarded(headers: CIMultiDictProxy[str]) -> CIMultiDict[str]:
    out: CIMultiDict[str] = CIMultiDict((k, v) for k, v in headers.items() if k.lower() not in NOT_FORWARDED)
    out["Accept-Encoding"] = "identity"  # bytes as they are, so chunks pass through as they come
    return out


def _returned(headers: CIMultiDictProxy[str]) -> CIMultiDict[str]:
    return CIMultiDict((k, v) for k, v in headers.items() if k.lower() not in NOT_RETURNED)


def make_recorder(upstream: str, out: str, timeout: float, flush_seconds: float, fixtures=None) -> Recorder:
    """The `record` command's recorder, or ValueError with the one line that says what is wrong."""
    parsed = URL(upstream)
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise ValueError(f"--upstream: expected an http(s) URL such as https://api.poeti.ai, got {upstream!r}")
    if not (timeout > 0 and flush_seconds > 0):
        raise ValueError("--timeout and --flush-seconds must be more than 0 seconds")
    path = Path(out)
    if not path.parent.is_dir():
        raise ValueError(f"--out: no such folder: {path.parent}")
    return Recorder(upstream, path, timeout=timeout, flush_seconds=flush_seconds, fixtures=fixtures)
