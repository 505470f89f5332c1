"""The bare aiohttp reference: the least an aiohttp server can do for the same calls.

    python -m benchmarks.reference --port 0
    -> reference listening on http://127.0.0.1:PORT

POST /v1/chat/completions   parse the JSON body, answer a fixed chat.completion
POST /sse?chunks=100        parse the body, stream role + N content + finish + [DONE] at once,
                            in one write (as mockpoeti does when nothing paces the stream)
POST /sse/paced?chunks=100&interval=10&first=0
                            the same, content chunks sent at absolute deadlines:
                            arrival + first + i x interval (milliseconds)

Frames carry chat.completion.chunk objects of the shape mockpoeti sends, each
serialised when it is written, so both servers do the same work per chunk.
JSON is parsed and written with orjson, as mockpoeti does: the stdlib's json
would make the reference slower and every ratio flatter than it is.
Configured like MockServer (no access log, the same listen backlog).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import signal
import time

import orjson
from aiohttp import web

LISTEN_BACKLOG = 2048
SSE_HEADERS = {
    "Content-Type": "text/event-stream; charset=utf-8",
    "Cache-Control": "no-cache",
    "Connection": "keep-alive",
    "X-Accel-Buffering": "no",
}
DONE = b"data: [DONE]\n\n"
ANSWER = "Paris is the capital of France. It has been the seat of government for centuries."
LETTERS = "abcdefghijklmnopqrstuvwxyz"
MAX_CHUNKS = 100_000

_ids = itertools.count(1)


async def chat(request: web.Request) -> web.Response:
    body = orjson.loads(await request.read())
    completion_id = f"chatcmpl-ref-{next(_ids):016x}"
    answer = {
        "id": completion_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model"),
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": ANSWER, "refusal": None},
            "logprobs": None,
            "finish_reason": "stop",
        }],
        "usage": {
            "prompt_tokens": 9,
            "completion_tokens": 21,
            "total_tokens": 30,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
        },
        "system_fingerprint": "fp_reference",
    }
    return web.Response(body=orjson.dumps(answer), content_type="application/json")


def _chunk(completion_id: str, created: int, model: str, delta: dict, finish: str | None = None) -> bytes:
    data = {
        "id": completion_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "system_fingerprint": "fp_reference",
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
    }
    return b"data: " + orjson.dumps(data) + b"\n\n"


async def sse(request: web.Request) -> web.StreamResponse:
    return await _stream(request, paced=False)


async def sse_paced(request: web.Request) -> web.StreamResponse:
    return await _stream(request, paced=True)


async def _stream(request: web.Request, paced: bool) -> web.StreamResponse:
    loop = asyncio.get_running_loop()
    arrived = loop.time()
    body = orjson.loads(await request.read())
    query = request.query
    chunks = min(int(query.get("chunks", 100)), MAX_CHUNKS)
    interval = float(query.get("interval", 10)) / 1000
    first = float(query.get("first", 0)) / 1000
    completion_id, created, model = f"chatcmpl-ref-{next(_ids):016x}", int(time.time()), str(body.get("model"))
    response = web.StreamResponse(headers=SSE_HEADERS)
    await response.prepare(request)
    role = _chunk(completion_id, created, model, {"role": "assistant", "content": "", "refusal": None})
    contents = (_chunk(completion_id, created, model, {"content": LETTERS[i % len(LETTERS)]}) for i in range(chunks))
    finish = _chunk(completion_id, created, model, {}, "stop")
    if not paced:
        await response.write(b"".join([role, *contents, finish, DONE]))
        await response.write_eof()
        return response
    await response.write(role)
    for i, content in enumerate(contents):
        delay = arrived + first + i * interval - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        await response.write(content)
    await response.write(finish)
    await response.write(DONE)
    await response.write_eof()
    return response


def make_app() -> web.Application:
    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_post("/sse", sse)
    app.router.add_post("/sse/paced", sse_paced)
    return app


async def serve(host: str, port: int) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    runner = web.AppRunner(make_app(), access_log=None, handle_signals=False, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, host, port, backlog=LISTEN_BACKLOG, reuse_address=True)
    await site.start()
    bound = runner.addresses[0][1]
    print(f"reference listening on http://{host}:{bound}", flush=True)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.reference", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    asyncio.run(serve(args.host, args.port))


if __name__ == "__main__":
    main()
