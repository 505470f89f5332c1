"""`mockpoeti serve` with the stages of a chat call after STAGE taken away, for the cost model
(`benchmarks/stages.py`):

    python -m benchmarks.stage_server STAGE serve --port 0 ...

skeleton     route, auth and admission, the body read and parsed (as the reference parses it),
             a constant answer, the headers stamped: no validation, generation or books
validation   + the request validated (`parse_chat_request`)
generation   + the answer built and written (the real handler)
books        + the trace and the journal entry: the whole server

Benchmark code: it replaces internals by name, on purpose, so the product carries no switch.
"""

from __future__ import annotations

import sys

STAGES = ("skeleton", "validation", "generation", "books")


def main(argv: list[str]) -> int:
    stage, rest = argv[0], argv[1:]
    if stage not in STAGES:
        raise SystemExit(f"stage_server: expected one of {', '.join(STAGES)}, got {stage!r}")
    upto = STAGES.index(stage)
    from mockpoeti import cli
    from mockpoeti.answers.chat_request import parse_chat_request
    from mockpoeti.base.jsonio import encode
    from mockpoeti.http import pipeline
    from mockpoeti.http.routes import chat
    from mockpoeti.http.wire import encoded_response

    constant = encode({
        "id": "chatcmpl-constant", "object": "chat.completion", "created": 0, "model": "gpt-4o-mini",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Paris."}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 9, "completion_tokens": 2, "total_tokens": 11},
    })

    async def constant_answer(call):
        body = await call.json()
        if upto >= STAGES.index("validation"):
            call.chat = parse_chat_request(body, call.state.catalog.models)
        return encoded_response(constant)  # as the real handler answers: the difference is the answer's making

    if upto < STAGES.index("generation"):
        chat.create_chat_completion = constant_answer
    if upto < STAGES.index("books"):
        def stamp_only(call, response):
            if response is not None and not response.prepared:
                call.stamp(response)

        pipeline.finish = stamp_only
    return cli.main(rest)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
