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
import time
import uuid
import zlib
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import yaml
from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from mockpoeti.base.catalog import load_catalog
from mockpoeti.base.errors import ConfigError
from mockpoeti.base.jsonio import encode
from mockpoeti.base.secrets import credentials
from mockpoeti.recorder.to_scenario import MAX_RECORDING_BYTES, REPLAYED_HEADERS, EventSplitter, Exchange, Recording
from mockpoeti.scripting.loader import parse_scenario  # at the top: a reinstall while recording must not break the last write
from mockpoeti.scripting.scenario import METHODS
from mockpoeti.scripting.schema import ShapeError, load_with_lines

HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "proxy-connection",
    "te", "trailer", "transfer-encoding", "upgrade",
})
NOT_FORWARDED = HOP_BY_HOP | {"host", "content-length", "accept-encoding"}
NOT_RETURNED = HOP_BY_HOP | {"content-length"}  # the body goes back as it came (encoded or not); aiohttp frames it
# At SIGTERM, answers still coming get SHUTDOWN_GRACE_S to finish (and be recorded); aiohttp waits that long,
# then as long again after asking, before it cancels them. The file is written within WRITE_TIMEOUT_S after:
# all in all the recorder is gone within 5 s, whatever the upstream does.
SHUTDOWN_GRACE_S = 0.75
WRITE_TIMEOUT_S = 3.0
MAX_BODY_BYTES = 64 * 1024 * 1024  # what the recorder reads of a request; the upstream has its own limit
MAX_ANSWER_BYTES = 1024 * 1024  # of one answer the recording keeps (decoded; reading it takes ~15x); the client gets all
MAX_CHECKED_BYTES = 1024 * 1024  # a file up to this is loaded again to check it validates (17 MB took 6 s)
T = TypeVar("T")


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
        sees half a file. Runs in a thread, so relayed chunks are not held up."""
        text = snapshot.text(self.errors)
        with self._writing:
            if snapshot.changes <= self._written:
                return  # a newer snapshot got there first
            tmp = self.out.with_name(f".{self.out.name}.{os.getpid()}.tmp")
            tmp.write_text(text, encoding="utf-8")
            os.replace(tmp, self.out)
            self._written = snapshot.changes
        if len(text) <= MAX_CHECKED_BYTES:
            self._check(text)

    def _check(self, text: str) -> None:
        """The file must load as a scenario; if it somehow would not, say so (it is written anyway: nothing is lost)."""
        try:
            parse_scenario(load_with_lines(text), str(self.out), self.errors)
        except ConfigError as e:
            print("mockpoeti: warning: the recording does not validate:\n" + "\n".join(e.problems), file=sys.stderr)
        except (yaml.YAMLError, ShapeError) as e:
            print(f"mockpoeti: warning: the recording does not load as YAML: {e}", file=sys.stderr)

    async def _flush_every(self) -> None:
        wait = self.flush_seconds
        while True:
            await asyncio.sleep(wait)
            snapshot = self.recording.snapshot()  # taken here, in the loop that adds to it
            if snapshot.changes == self._written:
                continue
            started = time.monotonic()
            try:
                await in_thread(self._write, snapshot)
            except OSError as e:
                print(f"mockpoeti: cannot write {self.out}: {e}", file=sys.stderr)
            wait = max(self.flush_seconds, 2 * (time.monotonic() - started))  # a large recording is not rewritten non-stop

    # --- the proxy -------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_BODY_BYTES)
        app.router.add_route("*", "/{tail:.*}", self.forward)
        app.cleanup_ctx.append(self._client)
        return app

    async def _client(self, app: web.Application):
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0),  # as many upstream calls at once as clients make
            auto_decompress=False,  # passed on as sent; the recording decodes its own bounded head (`Head`)
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
            return await self._relay_whole(request, upstream, started, body)
        finally:
            upstream.close()  # unread (the client left, or the upstream failed): close, never drain

    async def _relay_whole(
        self, request: web.Request, upstream: aiohttp.ClientResponse, started: float, body: bytes
    ) -> web.StreamResponse:
        """An answer of up to MAX_ANSWER_BYTES is read, then sent whole (with its length); a longer
        one is passed on piece by piece as it comes. The recording keeps its decoded head."""
        head = Head(upstream.headers.get("Content-Encoding", ""))
        held: list[bytes] = []
        size = 0
        response: web.StreamResponse | None = None
        chunks = upstream.content.iter_any()
        while True:
            try:
                data = await anext(chunks, b"")
            except TimeoutError:
                if response is None:
                    silent = f"The upstream {self.upstream} went silent for {self.timeout:g} s."
                    return self._failure(504, "upstream_timeout", silent)
                return _abort(request, response)
            except aiohttp.ClientError as e:
                if response is None:
                    return self._failure(502, "upstream_error", f"The upstream {self.upstream} broke off its answer: {e}")
                return _abort(request, response)
            if not data:
                break
            head.feed(data)
            try:
                if response is not None:
                    await response.write(data)
                    continue
                held.append(data)
                size += len(data)
                if size > MAX_ANSWER_BYTES:
                    response = web.StreamResponse(status=upstream.status, headers=_returned(upstream.headers))
                    await response.prepare(request)
                    for piece in held:
                        await response.write(piece)
                    held = []
            except ConnectionError:  # the client left: what it missed is no answer of the upstream's
                return response or web.Response()
        answer = body_of(head.data()) if head.readable else _BINARY
        self._record(request, body, upstream, answer, None, False, asyncio.get_running_loop().time() - started, head.cut)
        if response is None:
            return web.Response(body=b"".join(held), status=upstream.status, headers=_returned(upstream.headers))
        with contextlib.suppress(ConnectionError):
            await response.write_eof()
        return response

    async def _relay_stream(
        self, request: web.Request, upstream: aiohttp.ClientResponse, started: float, body: bytes
    ) -> web.StreamResponse:
        """Each piece goes to the client as it arrives, and each event is timed as it completes
        (the events of the first MAX_ANSWER_BYTES, decoded: an endless stream is relayed for ever
        in bounded memory)."""
        loop = asyncio.get_running_loop()
        response = web.StreamResponse(status=upstream.status, headers=_returned(upstream.headers))
        await response.prepare(request)
        head = Head(upstream.headers.get("Content-Encoding", ""), keep=False)
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
                decoded = head.feed(data)
                if decoded:
                    at = loop.time() - started
                    events.extend((at, event) for event in splitter.feed(decoded))
                await response.write(data)
        except ConnectionError:  # the client left
            self._record_if_whole(request, body, upstream, events, head)
            return response
        except asyncio.CancelledError:  # the client left (aiohttp cancels the handler), or the recorder stops
            self._record_if_whole(request, body, upstream, events, head)
            raise
        if head.readable:
            self._record(request, body, upstream, None, tuple(events), broken, loop.time() - started, head.cut)
        if broken:
            return _abort(request, response)
        with contextlib.suppress(ConnectionError):
            await response.write_eof()
        return response

    def _record_if_whole(
        self, request: web.Request, body: bytes, upstream: aiohttp.ClientResponse, events: list, head: Head
    ) -> None:
        """Clients (the openai SDK among them) may hang up as soon as they read [DONE], or an
        error event (the SDK raises on it), before the upstream closed: that stream was whole,
        and is recorded. Any other stream the client cut short is not the upstream's answer
        (but for one already longer than the recording keeps: its head is recorded, cut)."""
        whole = any(data.strip() == "[DONE]" for _, data in events) or (events and _is_error_event(events[-1][1]))
        if head.readable and (whole or head.cut):
            self._record(request, body, upstream, None, tuple(events), False, 0.0, head.cut)

    def _record(self, request: web.Request, body: bytes, upstream: aiohttp.ClientResponse, answer: Any,
                events: tuple[tuple[float, str], ...] | None, broken: bool, elapsed: float, cut: bool = False) -> None:
        if request.method not in METHODS or request.method == "OPTIONS" or request.path.startswith("/__admin/"):
            return  # preflights and the mock's own admin API are no part of the gateway
        if not 200 <= upstream.status <= 599:
            return  # what a scenario can answer
        request_body = body_of(body) if len(body) <= MAX_ANSWER_BYTES else _BINARY  # too large to replay
        if answer is _BINARY or request_body is _BINARY:
            self.recording.left_out += request_body is _BINARY
            return  # a scenario file holds text
        headers = {name: upstream.headers[name] for name in REPLAYED_HEADERS if name in upstream.headers}
        exchange = Exchange(
            method=request.method, path=request.path, query=request.query_string, request=request_body,
            status=upstream.status, headers=headers, body=answer, events=events, broken=broken, elapsed=elapsed, cut=cut,
        )
        size = len(body) + (sum(len(data) for _, data in events) if events is not None else len(str(answer)))
        secrets = credentials(request.headers.items(), request.query.items())
        if not self.recording.add(exchange, size, secrets) and self.recording.left_out == 1:
            print(f"mockpoeti: warning: the recording holds {MAX_RECORDING_BYTES // 2**20} MiB, all it keeps; "
                  "further requests are passed on but not recorded", file=sys.stderr)

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
        runner = web.AppRunner(self.app(), handler_cancellation=True, shutdown_timeout=SHUTDOWN_GRACE_S, access_log=None)
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
            await runner.cleanup()  # lets answers in flight finish (a moment), so they are recorded too
        try:
            written = await asyncio.wait_for(in_thread(self.write), WRITE_TIMEOUT_S)
        except TimeoutError:
            print(f"mockpoeti: could not finish writing {self.out} within {WRITE_TIMEOUT_S:g} s; it holds the recording "
                  "as of its last flush", file=sys.stderr)
            raise SystemExit(1) from None
        except OSError as e:
            print(f"mockpoeti: cannot write {self.out}: {e}", file=sys.stderr)
            raise SystemExit(1) from None
        if written or self.out.exists():
            count = len(self.recording.exchanges)
            print(f"mockpoeti: recorded {count} request{'s' if count != 1 else ''} to {self.out}", file=sys.stderr)
        else:
            print(f"mockpoeti: nothing recorded; {self.out} not written", file=sys.stderr)


_BINARY = object()
MAX_JSON_DEPTH = 64  # of a recorded JSON body (a scenario file may nest 100 levels); deeper ones are kept as text


def body_of(data: bytes) -> Any:
    """A body as JSON, else as text; `_BINARY` when it is neither (not recorded)."""
    if not data:
        return None
    try:
        value = json.loads(data)
        if _depth(value) <= MAX_JSON_DEPTH:
            return value
    except (ValueError, RecursionError):
        pass
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return _BINARY


def _depth(value: Any) -> int:
    """How many arrays and objects deep `value` nests (counted without recursion)."""
    deepest, level = 0, [(value, 1)]
    while level:
        item, depth = level.pop()
        if isinstance(item, (dict, list)):
            deepest = max(deepest, depth)
            if deepest > MAX_JSON_DEPTH:
                return deepest
            level.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


class Head:
    """The first MAX_ANSWER_BYTES of an answer, decoded from its Content-Encoding (gzip and
    deflate; others are not recorded) as it arrives: a gzip bomb costs what the head costs.
    `keep=False` keeps nothing, only says what each piece decoded to."""

    def __init__(self, encoding: str, keep: bool = True) -> None:
        encoding = encoding.strip().lower()
        self.readable = encoding in ("", "identity", "gzip", "x-gzip", "deflate")
        self._decoder = zlib.decompressobj(zlib.MAX_WBITS | 32) if encoding in ("gzip", "x-gzip", "deflate") else None
        self._keep = keep
        self._parts: list[bytes] = []
        self.size = 0
        self.cut = False

    def feed(self, data: bytes) -> bytes:
        """What of `data` the recording keeps, decoded (nothing once the head is full)."""
        room = MAX_ANSWER_BYTES - self.size
        if not self.readable or self.cut or not data:
            return b""
        if room <= 0:
            self.cut = True
            return b""
        if self._decoder is None:
            out = data[:room]
            self.cut = len(data) > room
        else:
            try:
                out = self._decoder.decompress(data, room)
            except zlib.error:
                self.readable = False
                return b""
            self.cut = bool(self._decoder.unconsumed_tail)
        self.size += len(out)
        if self._keep:
            self._parts.append(out)
        return out

    def data(self) -> bytes:
        return b"".join(self._parts)


def _abort(request: web.Request, response: web.StreamResponse) -> web.StreamResponse:
    """The upstream broke off: so does the answer (the client sees the connection drop, as it would have)."""
    if request.transport is not None:
        request.transport.abort()
    return response


async def in_thread(fn: Callable[..., T], *args: Any) -> T:
    """`fn(*args)` in a daemon thread of its own: unlike the default executor's, the process
    does not wait for it to end (a write cut short leaves the file of the last flush)."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[T] = loop.create_future()

    def run() -> None:
        try:
            result = fn(*args)
        except BaseException as e:  # handed to the awaiting task
            loop.call_soon_threadsafe(_settle, done, None, e)
        else:
            loop.call_soon_threadsafe(_settle, done, result, None)

    threading.Thread(target=run, name="mockpoeti-record-write", daemon=True).start()
    return await done


def _settle(future: asyncio.Future, result: Any, error: BaseException | None) -> None:
    if future.done():
        return  # nobody waits any more
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


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
