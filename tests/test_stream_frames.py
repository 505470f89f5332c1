"""Text chunks are spliced into a serialised template: the bytes must be exactly those
of the chunk serialised whole, whatever the text (quotes, escapes, CJK, emoji)."""

from __future__ import annotations

import orjson
import pytest

from mockpoeti.answers.chat_request import parse_chat_request
from mockpoeti.answers.completion import build_completion, finish_text, stream_chunks
from mockpoeti.http.app import make_state


@pytest.mark.parametrize("include_usage", [False, True])
@pytest.mark.parametrize("n", [1, 3])
def test_a_spliced_text_chunk_is_the_chunk_serialised_whole(include_usage, n):
    state = make_state()
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], "n": n, "stream": True}
    completion = build_completion(parse_chat_request(body, state.catalog.models), state.text, 7, "chatcmpl-x", 1)
    text = 'a "quoted" \\ back\tslash\n 中文 😀 \u2028 end'
    completion = completion.__class__(**{**{f: getattr(completion, f) for f in completion.__slots__},
                                         "choices": tuple(finish_text(i, text) for i in range(n))})
    kinds, chunks = stream_chunks(completion, include_usage)
    spliced = [(kind, chunk) for kind, chunk in zip(kinds, chunks, strict=True) if kind == "content"]
    assert spliced and all(isinstance(chunk, bytes) for _, chunk in spliced)
    pieces = []
    for _, chunk in spliced:
        parsed = orjson.loads(chunk)
        assert orjson.dumps(parsed) == chunk  # the same bytes as serialising the chunk whole
        assert list(parsed) == ["id", "object", "created", "model", "system_fingerprint", "choices"] + (
            ["usage"] if include_usage else [])
        [choice] = parsed["choices"]
        assert choice == {"index": choice["index"], "delta": {"content": choice["delta"]["content"]},
                          "logprobs": None, "finish_reason": None}
        pieces.append((choice["index"], choice["delta"]["content"]))
    for i in range(n):
        assert "".join(p for index, p in pieces if index == i) == text
