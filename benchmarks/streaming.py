"""Unpaced streaming: what a 100-chunk stream costs mockpoeti against the bare SSE writer,
in wall time (at saturation, 1 / streams per second) and in server CPU."""

from __future__ import annotations

import tempfile
from pathlib import Path

from .harness import Plan, Row, ratio_row, zero
from .processes import Server, alternate, best, call, load_requests, mockpoeti_serve, reference_serve

SECTION = "streaming"
PATH = "/v1/chat/completions"
TEXT = "abcdefghijklmnopqrstuvwxyz"


def content(chars: int) -> str:
    return (TEXT * (chars // len(TEXT) + 1))[:chars]


def stream_scenario(folder: Path, chunks: int, interval_ms: float | None = None) -> Path:
    """A scenario answering every streamed chat call with `chunks` one-character content chunks."""
    pacing = "{chunk: 1}" if interval_ms is None else f"{{chunk: 1, first_chunk_ms: 0, interval_ms: {interval_ms:g}}}"
    path = folder / f"stream-{chunks}{'' if interval_ms is None else '-paced'}.yaml"
    path.write_text(
        "version: 1\n"
        f"name: bench-stream-{chunks}\n"
        "rules:\n"
        "  - match: {endpoint: chat, stream: true}\n"
        f"    respond: {{content: {content(chunks)}, stream: {pacing}}}\n",
        encoding="utf-8",
    )
    return path


def stream_request(chunks: int) -> dict:
    return {"model": "gpt-4o-mini", "stream": True, "messages": [{"role": "user", "content": f"Count to {chunks}."}]}


def check_frames(server: Server, path: str, body: dict, frames: int) -> None:
    status, data = call(server.url, "POST", path, body, server.api_key)
    found = data.count(b"\n\n")
    if status != 200 or found != frames or not data.endswith(b"data: [DONE]\n\n"):
        raise RuntimeError(f"{server.name} streamed {found} frames (status {status}); expected {frames}: {data[:300]!r}")


def run(plan: Plan) -> list[Row]:
    chunks = plan.stream_chunks
    frames = chunks + 3  # role, content, finish, [DONE]
    body = stream_request(chunks)
    paths = {"bare": f"/sse?chunks={chunks}", "mockpoeti": PATH}
    with tempfile.TemporaryDirectory(prefix="mockpoeti-bench-") as folder:
        scenario = stream_scenario(Path(folder), chunks)
        with Server("bare", reference_serve()) as bare, Server("mockpoeti", mockpoeti_serve("--scenario", str(scenario))) as mock:
            for server in (bare, mock):
                check_frames(server, paths[server.name], body, frames)
            runs = alternate(
                plan, [bare, mock],
                lambda server, seconds: load_requests(server, paths[server.name], body, plan, seconds, expect_frames=frames),
            )
    m, b = best(runs["mockpoeti"]), best(runs["bare"])

    def cpu_ms(loads) -> float:
        return sum(load.server_cpu_s for load in loads) / max(1, sum(load.ok for load in loads)) * 1000

    return [
        ratio_row(f"{SECTION}.time", SECTION, f"wall time per {chunks}-chunk stream (1 / streams per s)",
                  m.seconds_per_request * 1000, b.seconds_per_request * 1000, "ms", at_most=1.3),
        ratio_row(f"{SECTION}.cpu", SECTION, f"server CPU per {chunks}-chunk stream",
                  cpu_ms(runs["mockpoeti"]), cpu_ms(runs["bare"]), "ms", at_most=1.3),
        zero(f"{SECTION}.errors", SECTION, "errors over all runs",
             sum(load.errors for load in runs["mockpoeti"]), sum(load.errors for load in runs["bare"])),
    ]
