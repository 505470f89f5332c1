"""A hostile-input corpus: every case is refused with a clear 4xx in the one error
format, `{"error": {"code", "message", "status"}}`, with an X-Trace-ID, never a 500;
and nothing the server had stored before the corpus changes.

test_errors.py holds the basic refusals (bad keys, unreadable bodies, bad fields,
bad query parameters, 5 MB bodies); this corpus adds what it lacks, one named
case each, sent as raw bytes so that no client library tidies them up first.

What counts as hostile: bytes that are not the JSON, UTF-8 or HTTP they claim to be,
values of the wrong type or out of range, depth and size bombs, keys sent wrongly,
and key names that cannot be shown as they are (control characters, line
separators, bidirectional overrides). What does not: any script, emoji or mark in a
key name or a message, which are accepted and come back exactly as sent (the
`LEGIT_*` tables at the end).

By contract every chat call with a known key is traced, refusals included: so
"nothing stored changes" means the stored keys, traces and sums stay what they
were, plus exactly one zero-token, zero-cost error trace per refused chat call.
"""

from __future__ import annotations

import json
import re
import select
import socket
import subprocess
import time
from dataclasses import dataclass

import httpx
import pytest
from serving import all_traces, serve

from mockpoeti import MockServer

CLOCK = "2026-04-09T14:23:18Z"
CHAT = "/v1/chat/completions"
KEYS = "/api/v1/api-keys"
DEFAULT_KEY = "sk-poeti-mockpoeti-default-key"
ACME_KEY = "sk-poeti-acme-production-0001"
RETIRED_KEY = "sk-poeti-acme-retired-0003"  # revoked in fixtures/accounts.yaml
HI = [{"role": "user", "content": "hi"}]
TEN_MB = 10 * 1024 * 1024
TRACE_ID = re.compile(r"trace-poeti-[0-9a-f]{16}")
TIMEOUT_S = 10.0


# --- the corpus ------------------------------------------------------------------------

@dataclass(frozen=True)
class Hostile:
    name: str
    request: bytes  # everything up to and including the blank line after the headers
    body: bytes = b""
    status: int = 400
    code: str = "invalid_request"
    mentions: str | None = None  # what the message must name (the field, usually)
    traced_in: str | None = None  # the account whose books get an error trace for it
    send: str = "whole"  # "whole", "head" (send 64 KB of a larger declared body), "chunks" (never finished)


def request_head(method: str, path: str, headers: list[bytes], body: bytes | None) -> bytes:
    lines = [f"{method} {path} HTTP/1.1".encode(), b"Host: 127.0.0.1", *headers, b"Connection: close"]
    if body is not None and not any(h.lower().startswith((b"content-length:", b"transfer-encoding:")) for h in headers):
        lines.append(b"Content-Length: %d" % len(body))
    return b"\r\n".join(lines) + b"\r\n\r\n"


def auth(key: str = DEFAULT_KEY) -> list[bytes]:
    return [b"Authorization: Bearer " + key.encode(), b"Content-Type: application/json"]


def as_bytes(body: bytes | str | dict | list) -> bytes:
    """Bytes as they are, text as UTF-8, anything else as JSON."""
    if isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return body.encode()
    return json.dumps(body, ensure_ascii=False).encode()


def chat(name: str, body: bytes | str | dict, status: int = 400, code: str = "invalid_request",
         mentions: str | None = None, headers: list[bytes] | None = None, traced_in: str | None = "default") -> Hostile:
    raw = as_bytes(body)
    return Hostile(name, request_head("POST", CHAT, auth() if headers is None else headers, raw), raw,
                   status, code, mentions, traced_in)


def ask(name: str, extra: dict, mentions: str, status: int = 400, code: str = "invalid_request") -> Hostile:
    """A chat call that is fine but for `extra`."""
    return chat(name, {"model": "gpt-4o", "messages": HI, **extra}, status, code, mentions)


def new_key(name: str, body: bytes | str | dict, mentions: str | None = None) -> Hostile:
    raw = as_bytes(body)
    return Hostile(name, request_head("POST", KEYS, auth(), raw), raw, mentions=mentions)


def query(name: str, path: str, mentions: str) -> Hostile:
    return Hostile(name, request_head("GET", path, auth()[:1], None), mentions=mentions)


def admin(name: str, method: str, path: str, body: bytes | str | dict | list, mentions: str | None = None) -> Hostile:
    raw = as_bytes(body)
    return Hostile(name, request_head(method, path, [b"Content-Type: application/json"], raw), raw, mentions=mentions)


def unauthorized(name: str, headers: list[bytes]) -> Hostile:
    """A chat call whose credentials are wrong: 401, and no account's books see it."""
    body = json.dumps({"model": "gpt-4o", "messages": HI}).encode()
    return Hostile(name, request_head("POST", CHAT, [*headers, b"Content-Type: application/json"], body), body,
                   401, "invalid_api_key")


def not_http(name: str, raw: bytes, body: bytes = b"") -> Hostile:
    """Refused by the HTTP parser, before any route: still the one format, with a trace id."""
    return Hostile(name, raw, body)


def bearer(key: bytes) -> list[bytes]:
    return [b"Authorization: Bearer " + key]


def nested(depth: int, leaf: str = "1") -> str:
    return '{"a":' * depth + leaf + "}" * depth


def chat_json(**fields: object) -> bytes:
    return json.dumps({"model": "gpt-4o", "messages": HI, **fields}).encode()


GOOD_CHAT = chat_json()
FIVE_THOUSAND_DIGITS = b"9" * 5000  # past Python's int-from-text limit: must not become a 500

HOSTILE: list[Hostile] = [
    # --- bytes that are not JSON ---
    chat("json-trailing-garbage", GOOD_CHAT + b" trailing", mentions="body"),
    chat("json-two-documents", GOOD_CHAT + GOOD_CHAT, mentions="body"),
    chat("json-single-quotes", b"{'model': 'gpt-4o', 'messages': []}", mentions="body"),
    chat("json-trailing-comma", b'{"model": "gpt-4o", "messages": [],}', mentions="body"),
    chat("json-comment", b'{"model": "gpt-4o" /* a comment */, "messages": []}', mentions="body"),
    chat("json-unterminated-string", b'{"model": "gpt-4o', mentions="body"),
    chat("json-infinity", GOOD_CHAT[:-1] + b', "temperature": Infinity}', mentions="body"),
    chat("json-negative-infinity", GOOD_CHAT[:-1] + b', "temperature": -Infinity}', mentions="body"),
    chat("json-a-bare-nul", b"\x00", mentions="body"),
    chat("json-a-5000-digit-integer", GOOD_CHAT[:-1] + b', "n": ' + FIVE_THOUSAND_DIGITS + b"}", mentions="body"),
    chat("json-raw-nul-inside-a-string", b'{"model": "gpt-4o", "messages": [{"role": "user", "content": "a\x00b"}]}',
         mentions="body"),
    chat("json-raw-newline-inside-a-string", b'{"model": "gpt-4o", "messages": [{"role": "user", "content": "a\nb"}]}',
         mentions="body"),
    new_key("key-json-trailing-comma", b'{"name": "x",}', mentions="body"),
    new_key("key-json-raw-nul-in-name", b'{"name": "a\x00b"}', mentions="body"),
    admin("admin-clock-not-json", "PUT", "/__admin/clock", b'{"advance": }', mentions="body"),
    admin("admin-scenarios-not-json", "PUT", "/__admin/scenarios/active", b"names: [rate-limited]", mentions="body"),

    # --- bytes that are not UTF-8 ---
    chat("utf8-overlong-slash", b'{"model": "gpt-4o", "messages": [{"role": "user", "content": "\xc0\xaf"}]}',
         mentions="UTF-8"),
    chat("utf8-encoded-surrogate", b'{"model": "gpt-4o", "messages": [{"role": "user", "content": "\xed\xa0\x80"}]}',
         mentions="UTF-8"),
    chat("utf8-truncated-sequence", b'{"model": "gpt-4o", "messages": [{"role": "user", "content": "\xe4\xbd"}]}',
         mentions="UTF-8"),
    chat("latin1-body", '{"model": "gpt-4o", "messages": [{"role": "user", "content": "café"}]}'.encode("latin-1"),
         mentions="UTF-8"),
    chat("utf16-body", json.dumps({"model": "gpt-4o", "messages": HI}).encode("utf-16"), mentions="UTF-8"),
    new_key("key-name-latin1", '{"name": "clé"}'.encode("latin-1"), mentions="UTF-8"),

    # --- an array (or a scalar) where an object belongs ---
    ask("messages-an-object", {"messages": {"role": "user", "content": "hi"}}, "messages"),
    ask("message-an-array", {"messages": [["user", "hi"]]}, "messages[0]"),
    ask("message-content-part-a-string", {"messages": [{"role": "user", "content": ["hi"]}]}, "messages[0].content[0]"),
    ask("stream-options-an-array", {"stream": True, "stream_options": [True]}, "stream_options"),
    ask("response-format-an-array", {"response_format": ["json_object"]}, "response_format"),
    ask("response-format-a-string", {"response_format": "json_object"}, "response_format"),
    ask("tools-an-object", {"tools": {"type": "function", "function": {"name": "f"}}}, "tools"),
    ask("tool-an-array", {"tools": [["function", "f"]]}, "tools[0]"),
    ask("tool-choice-an-array", {"tool_choice": ["auto"]}, "tool_choice"),
    ask("json-schema-schema-an-array",
        {"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": []}}},
        "response_format.json_schema.schema"),
    admin("admin-clock-an-array", "PUT", "/__admin/clock", [{"advance": 1}]),
    admin("admin-scenario-an-array", "PUT", "/__admin/scenarios/active", [{"name": "x", "rules": []}]),
    admin("admin-names-holding-null", "PUT", "/__admin/scenarios/active", {"names": [None]}, mentions="names"),
    admin("admin-names-holding-a-list", "PUT", "/__admin/scenarios/active", {"names": [["rate-limited"]]},
          mentions="names"),

    # --- the wrong type in every field ---
    ask("model-true", {"model": True}, "model"),
    ask("model-a-list", {"model": ["gpt-4o"]}, "model"),
    ask("model-an-object", {"model": {"id": "gpt-4o"}}, "model"),
    ask("messages-a-number", {"messages": 5}, "messages"),
    ask("role-a-number", {"messages": [{"role": 1, "content": "hi"}]}, "messages[0].role"),
    ask("role-null", {"messages": [{"role": None, "content": "hi"}]}, "messages[0].role"),
    ask("content-an-object", {"messages": [{"role": "user", "content": {"text": "hi"}}]}, "messages[0].content"),
    ask("content-true", {"messages": [{"role": "user", "content": True}]}, "messages[0].content"),
    ask("content-part-text-a-number", {"messages": [{"role": "user", "content": [{"type": "text", "text": 5}]}]},
        "messages[0].content[0].text"),
    ask("content-part-type-a-number", {"messages": [{"role": "user", "content": [{"type": 5}]}]},
        "messages[0].content[0]"),
    ask("tool-calls-a-string", {"messages": [{"role": "assistant", "content": "x", "tool_calls": "f()"}, *HI]},
        "messages[0].tool_calls"),
    ask("tool-message-without-call-id", {"messages": [*HI, {"role": "tool", "content": "42"}]},
        "messages[1].tool_call_id"),
    ask("n-a-float", {"n": 1.5}, "n"),
    ask("n-true", {"n": True}, "n"),
    ask("max-tokens-a-string", {"max_tokens": "10"}, "max_tokens"),
    ask("max-tokens-a-float", {"max_tokens": 10.0}, "max_tokens"),
    ask("max-tokens-true", {"max_tokens": True}, "max_tokens"),
    ask("max-completion-tokens-a-string", {"max_completion_tokens": "10"}, "max_completion_tokens"),
    ask("temperature-true", {"temperature": True}, "temperature"),
    ask("temperature-a-list", {"temperature": [0.5]}, "temperature"),
    ask("top-p-a-string", {"top_p": "1"}, "top_p"),
    ask("presence-penalty-an-object", {"presence_penalty": {}}, "presence_penalty"),
    ask("frequency-penalty-a-string", {"frequency_penalty": "0"}, "frequency_penalty"),
    ask("stream-a-number", {"stream": 1}, "stream"),
    ask("include-usage-a-string", {"stream": True, "stream_options": {"include_usage": "yes"}},
        "stream_options.include_usage"),
    ask("stop-a-number", {"stop": 5}, "stop"),
    ask("stop-a-list-of-numbers", {"stop": [1, 2]}, "stop"),
    ask("stop-an-object", {"stop": {"a": 1}}, "stop"),
    ask("tool-type-a-number", {"tools": [{"type": 1, "function": {"name": "f"}}]}, "tools[0].type"),
    ask("tool-name-a-number", {"tools": [{"type": "function", "function": {"name": 5}}]}, "tools[0].function.name"),
    ask("tool-parameters-a-string", {"tools": [{"type": "function", "function": {"name": "f", "parameters": "{}"}}]},
        "tools[0].function.parameters"),
    ask("tool-choice-a-number", {"tool_choice": 5}, "tool_choice"),
    ask("tool-choice-an-unknown-function",
        {"tools": [{"type": "function", "function": {"name": "f"}}],
         "tool_choice": {"type": "function", "function": {"name": "g"}}}, "tool_choice.function.name"),
    ask("response-format-type-a-number", {"response_format": {"type": 5}}, "response_format.type"),
    ask("json-schema-a-string", {"response_format": {"type": "json_schema", "json_schema": "x"}},
        "response_format.json_schema"),
    new_key("name-an-object", {"name": {"first": "x"}}, "name"),
    new_key("name-true", {"name": True}, "name"),
    new_key("name-a-float", {"name": 1.5}, "name"),
    new_key("budget-a-list", {"name": "ok", "monthly_budget": [50]}, "monthly_budget"),
    new_key("budget-an-object", {"name": "ok", "monthly_budget": {"usd": 50}}, "monthly_budget"),
    new_key("rate-limit-a-list", {"name": "ok", "rate_limit": [100]}, "rate_limit"),
    new_key("rate-limit-null-name", {"name": None, "rate_limit": 5}, "name"),
    admin("admin-clock-frozen-a-number", "PUT", "/__admin/clock", {"time": CLOCK, "frozen": 1}, "frozen"),
    admin("admin-clock-advance-a-list", "PUT", "/__admin/clock", {"advance": [60]}, "advance"),

    # --- huge and negative numbers ---
    ask("n-ten-to-the-thirty", {"n": 10**30}, "n"),
    ask("n-negative", {"n": -1}, "n"),
    ask("max-tokens-negative", {"max_tokens": -1}, "max_tokens"),
    ask("max-tokens-two-to-the-63", {"max_tokens": 2**63}, "context length", code="context_length_exceeded"),
    ask("max-tokens-1e308", {"max_tokens": 1e308}, "max_tokens"),
    chat("temperature-1e400-overflows-to-inf", GOOD_CHAT[:-1] + b', "temperature": 1e400}', mentions="temperature"),
    ask("temperature-negative", {"temperature": -0.5}, "temperature"),
    ask("temperature-1e308", {"temperature": 1e308}, "temperature"),
    ask("top-p-negative", {"top_p": -0.1}, "top_p"),
    ask("presence-penalty-minus-a-billion", {"presence_penalty": -1e9}, "presence_penalty"),
    new_key("budget-negative-zero-point-one", {"name": "ok", "monthly_budget": -0.1}, "monthly_budget"),
    new_key("budget-1e10", {"name": "ok", "monthly_budget": 1e10}, "monthly_budget"),
    new_key("budget-1e400-overflows-to-inf", b'{"name": "ok", "monthly_budget": 1e400}', "monthly_budget"),
    new_key("rate-limit-ten-to-the-thirty", {"name": "ok", "rate_limit": 10**30}, "rate_limit"),
    new_key("rate-limit-minus-two-to-the-63", {"name": "ok", "rate_limit": -(2**63)}, "rate_limit"),
    new_key("rate-limit-5000-digits", b'{"name": "ok", "rate_limit": ' + FIVE_THOUSAND_DIGITS + b"}", "body"),
    admin("admin-advance-1e400", "PUT", "/__admin/clock", b'{"advance": 1e400}', "advance"),
    admin("admin-advance-ten-to-the-thirty", "PUT", "/__admin/clock", {"advance": 10**30}, "advance"),
    admin("admin-time-negative", "PUT", "/__admin/clock", {"time": -1}, "time"),
    admin("admin-time-year-99999", "PUT", "/__admin/clock", {"time": "99999-01-01T00:00:00Z"}, "time"),

    # --- nesting depth bombs that never close (test_errors.py has them at the top level; closed
    # ones are below, against a process of their own, since they can take the server down) ---
    chat("depth-bomb-in-content", '{"model": "gpt-4o", "messages": [{"role": "user", "content": ' + "[" * 20_000,
         mentions="body"),
    chat("depth-bomb-in-tool-parameters",
         '{"model": "gpt-4o", "messages": [], "tools": [{"type": "function", "function": {"name": "f", "parameters": '
         + '{"a":' * 20_000, mentions="body"),
    new_key("key-depth-bomb", '{"name": "x", "extra": ' + "[" * 20_000, mentions="body"),
    admin("admin-scenario-depth-bomb", "PUT", "/__admin/scenarios/active", '{"name": "x", "rules": ' + "[" * 20_000,
          mentions="body"),

    # --- depth that parses (orjson and the stdlib stop near 1,000 levels), but that everything after
    # parsing walks again, deeper: counting tokens, building the answer, an inline scenario, the
    # journal. Each was a 500, and a journal no longer listable, until bodies over 100 levels were refused.
    # (in a field no check reads: `metadata` is type-checked, and would be refused for its type first)
    chat("depth-101-levels", '{"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], "extra": '
         + "[" * 100 + "]" * 100 + "}", mentions="body"),
    chat("depth-300-levels-of-tool-parameters",
         '{"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], "tools": [{"type": "function", '
         '"function": {"name": "f", "parameters": ' + '{"type": "object", "properties": {"a": ' * 300
         + '{"type": "string"}' + "}}" * 300 + "}}]}", mentions="body"),
    chat("depth-300-levels-of-json-schema",
         '{"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], "response_format": {"type": '
         '"json_schema", "json_schema": {"name": "x", "schema": ' + '{"type": "object", "properties": {"a": ' * 300
         + '{"type": "string"}' + "}}" * 300 + "}}}", mentions="body"),
    chat("depth-990-levels-in-a-message", '{"model": "gpt-4o", "messages": [{"role": "user", "content": "hi", "x": '
         + "[" * 990 + "]" * 990 + "}]}", mentions="body"),
    chat("depth-990-levels-in-an-ignored-field", '{"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], '
         '"extra": ' + "[" * 990 + "]" * 990 + "}", mentions="body"),
    new_key("depth-990-levels-in-a-key-body", '{"name": "x", "extra": ' + nested(990) + "}", mentions="body"),
    admin("depth-990-levels-in-an-inline-scenario", "PUT", "/__admin/scenarios/active",
          '{"name": "x", "rules": [{"match": {"endpoint": "chat", "body": ' + nested(990)
          + '}, "respond": {"content": "x"}}]}', mentions="body"),

    # --- key names that cannot be shown as they are ---
    new_key("name-nul", {"name": "prod\u0000key"}, "name"),
    new_key("name-escape-sequence", {"name": "\u001b[31mred\u001b[0m"}, "name"),
    new_key("name-newline", {"name": "line one\nline two"}, "name"),
    new_key("name-tab", {"name": "a\tb"}, "name"),
    new_key("name-carriage-return", {"name": "a\rb"}, "name"),
    new_key("name-delete", {"name": "a\u007fb"}, "name"),
    new_key("name-c1-next-line", {"name": "a\u0085b"}, "name"),
    new_key("name-line-separator", {"name": "a\u2028b"}, "name"),
    new_key("name-paragraph-separator", {"name": "a\u2029b"}, "name"),
    new_key("name-right-to-left-override", {"name": "invoice\u202efdp.exe"}, "name"),
    new_key("name-left-to-right-isolate", {"name": "\u2066admin\u2069"}, "name"),
    new_key("name-129-emoji", {"name": "🔑" * 129}, "name"),
    new_key("name-ideographic-spaces-only", {"name": "\u3000\u3000"}, "name"),

    # --- absurd and negative pagination ---
    query("page-ten-to-the-thirty", "/api/v1/request-traces?page=" + "1" + "0" * 30, "page"),
    query("page-minus-two-to-the-31", "/api/v1/request-traces?page=-2147483648", "page"),
    query("page-5000-digits", "/api/v1/request-traces?page=" + "9" * 5000, "page"),
    query("page-hex", "/api/v1/request-traces?page=0x10", "page"),
    query("page-exponent", "/api/v1/request-traces?page=1e2", "page"),
    query("page-blank", "/api/v1/request-traces?page=%20", "page"),
    query("page-nul", "/api/v1/request-traces?page=%00", "page"),
    query("page-superscript-two", "/api/v1/request-traces?page=%C2%B2", "page"),
    query("page-size-negative", "/api/v1/request-traces?page_size=-1", "page_size"),
    query("page-size-a-million", "/api/v1/request-traces?page_size=1000000", "page_size"),
    query("page-size-a-float", "/api/v1/request-traces?page_size=20.0", "page_size"),
    query("key-id-negative", "/api/v1/request-traces?key_id=-1", "key_id"),
    query("key-id-zero-on-usage", "/api/v1/usage?key_id=0", "key_id"),
    query("key-id-an-exponent-on-stats", "/api/v1/request-traces/stats?key_id=1e3", "key_id"),

    # --- bad dates ---
    query("date-without-zero-padding", "/api/v1/usage?date_from=2026-4-01", "date_from"),
    query("date-with-a-time", "/api/v1/usage?date_from=2026-04-01T00:00:00Z", "date_from"),
    query("date-compact", "/api/v1/usage?date_from=20260401", "date_from"),
    query("date-year-zero", "/api/v1/usage?date_from=0000-01-01", "date_from"),
    query("date-month-zero", "/api/v1/request-traces?date_from=2026-00-10", "date_from"),
    query("date-day-zero", "/api/v1/request-traces/stats?date_to=2026-04-00", "date_to"),
    query("date-fullwidth-digits", "/api/v1/usage?date_from=%EF%BC%92%EF%BC%90%EF%BC%92%EF%BC%96-04-01", "date_from"),
    query("date-nul", "/api/v1/usage?date_to=2026-04-0%00", "date_to"),
    query("date-range-reversed-on-stats", "/api/v1/request-traces/stats?date_from=2026-04-30&date_to=2026-04-01",
          "date_to"),

    # --- keys sent wrongly ---
    unauthorized("authorization-twice-same-key", bearer(DEFAULT_KEY.encode()) * 2),
    unauthorized("authorization-twice-two-keys", [*bearer(DEFAULT_KEY.encode()), *bearer(ACME_KEY.encode())]),
    unauthorized("authorization-two-credentials-in-one", bearer(DEFAULT_KEY.encode() + b", Bearer " + ACME_KEY.encode())),
    unauthorized("bearer-tab-separated", [b"Authorization: Bearer\t" + DEFAULT_KEY.encode()]),
    unauthorized("bearer-key-uppercased", bearer(DEFAULT_KEY.upper().encode())),
    unauthorized("bearer-key-prefix-as-listed", bearer(b"sk-poeti-mock...")),
    unauthorized("bearer-key-with-a-suffix", bearer(DEFAULT_KEY.encode() + b"x")),
    unauthorized("bearer-key-60kb", bearer(b"sk-poeti-" + b"a" * 60_000)),
    unauthorized("bearer-key-latin1-bytes", bearer(b"sk-poeti-cl\xe9")),
    unauthorized("bearer-key-invalid-utf8", bearer(b"sk-poeti-\xff\xfe")),
    unauthorized("key-in-x-api-key-only", [b"X-Api-Key: " + DEFAULT_KEY.encode()]),
    unauthorized("key-in-empty-authorization", [b"Authorization: "]),
    chat("revoked-key-twice", GOOD_CHAT, 401, "invalid_api_key", headers=bearer(RETIRED_KEY.encode()) * 2,
         traced_in=None),
    not_http("authorization-with-nul", request_head("POST", CHAT, [b"Authorization: Bearer sk-poeti\x00x"], GOOD_CHAT),
             GOOD_CHAT),
    not_http("authorization-with-control-char", request_head("GET", "/v1/models", [b"Authorization: Bearer sk-\x01x"], None)),
    not_http("authorization-with-delete-char",
             request_head("GET", "/v1/models", [b"Authorization: Bearer " + DEFAULT_KEY.encode() + b"\x7f"], None)),
    not_http("authorization-over-64kb", request_head("GET", "/v1/models", bearer(b"a" * 70_000), None)),
    not_http(
        "authorization-folded",
        request_head("GET", "/v1/models", [b"Authorization: Bearer\r\n " + DEFAULT_KEY.encode()], None),
    ),

    # --- HTTP that is not HTTP ---
    not_http("content-length-negative", request_head("POST", CHAT, [*auth(), b"Content-Length: -5"], GOOD_CHAT), GOOD_CHAT),
    not_http("content-length-twice", request_head("POST", CHAT, [*auth(), b"Content-Length: 10", b"Content-Length: 12"],
                                                  GOOD_CHAT), GOOD_CHAT),
    not_http("content-length-and-chunked",
             request_head("POST", CHAT, [*auth(), b"Content-Length: 10", b"Transfer-Encoding: chunked"], GOOD_CHAT),
             GOOD_CHAT),
    not_http("transfer-encoding-unknown", request_head("POST", CHAT, [*auth(), b"Transfer-Encoding: gzip"], GOOD_CHAT),
             GOOD_CHAT),
    not_http("five-hundred-headers", request_head("GET", "/v1/models", [b"X-H%d: v" % i for i in range(500)], None)),
    not_http("request-line-over-64kb", request_head("GET", "/v1/models/" + "a" * 70_000, auth(), None)),
    not_http("nul-in-the-path", b"GET /v1/models\x00 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"),
    not_http("tls-hello-on-the-http-port", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 64),
    not_http("http-version-9", b"GET /v1/models HTTP/9.9\r\nHost: 127.0.0.1\r\n\r\n"),

    # --- identifiers that look like something else ---
    ask("model-with-nul", {"model": "gpt-4o\u0000"}, "gpt-4o", status=404, code="model_not_found"),
    ask("model-homoglyph-hyphen", {"model": "gpt\u20104o"}, "gpt", status=404, code="model_not_found"),
    ask("model-fullwidth", {"model": "ｇｐｔ-4o"}, "4o", status=404, code="model_not_found"),
    ask("model-trailing-space", {"model": "gpt-4o "}, "gpt-4o", status=404, code="model_not_found"),
    Hostile("key-id-superscript-two", request_head("GET", KEYS + "/%C2%B2", auth()[:1], None), status=404,
            code="not_found"),
    Hostile("key-id-fullwidth-one", request_head("GET", KEYS + "/%EF%BC%91", auth()[:1], None), status=404,
            code="not_found"),
    Hostile("key-id-with-nul", request_head("DELETE", KEYS + "/1%00", auth()[:1], None), status=404, code="not_found"),
    Hostile("key-id-twenty-digits", request_head("DELETE", KEYS + "/" + "9" * 20, auth()[:1], None), status=404,
            code="not_found"),
    Hostile("trace-id-path-traversal",
            request_head("GET", "/api/v1/request-traces/..%2F..%2Fetc%2Fpasswd", auth()[:1], None), status=404,
            code="not_found"),

    # --- 10 MB bodies: refused with 413, and never waited for ---
    Hostile("ten-mb-declared-64kb-sent", request_head("POST", CHAT, [*auth(), b"Content-Length: %d" % TEN_MB], None),
            b'{"model": "gpt-4o", "messages": [{"role": "user", "content": "' + b"a" * 65_536,
            413, "payload_too_large", traced_in="default", send="head"),
    Hostile("ten-mb-sent-whole", request_head("POST", KEYS, [*auth(), b"Content-Length: %d" % TEN_MB], None),
            b'{"name": "' + b"a" * (TEN_MB - 12) + b'"}', 413, "payload_too_large"),
    Hostile("ten-mb-chunked-never-finished", request_head("POST", CHAT, [*auth(), b"Transfer-Encoding: chunked"], None),
            b"a" * TEN_MB, 413, "payload_too_large", traced_in="default", send="chunks"),
]


# --- talking to the server in raw bytes ---------------------------------------------------

@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes
    body_bytes_sent: int


def exchange(port: int, case: Hostile) -> Answer:
    """Send the case as it is and read one answer (every refusal here has a Content-Length)."""
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT_S) as sock:
        sock.sendall(case.request)
        sent = 0
        if case.send in ("whole", "head"):  # "head": the rest never comes, so an answer proves nobody waited
            sock.sendall(case.body)
            sent = len(case.body)
        else:  # chunks until the answer starts; the last chunk never comes, so nobody waited for it either
            piece = 256 * 1024
            while sent < len(case.body) and not select.select([sock], [], [], 0)[0]:
                sock.sendall(b"%x\r\n" % piece + case.body[sent : sent + piece] + b"\r\n")
                sent += piece
        return read_answer(sock, sent)


def read_answer(sock: socket.socket, sent: int) -> Answer:
    data = b""
    deadline = time.monotonic() + TIMEOUT_S
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"the connection closed without an answer; got {data[:200]!r}"
        data += chunk
        assert time.monotonic() < deadline, "no answer in time"
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers["content-length"])
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, "the connection closed in the middle of the answer"
        body += chunk
    return Answer(int(status_line.split()[1]), headers, body[:length], sent)


# --- what the server holds, before and after ------------------------------------------------

ACCOUNTS = {"default": DEFAULT_KEY, "acme": ACME_KEY}


def books_of(server: MockServer) -> dict[str, dict]:
    """Each account's keys, traces, usage and stats, as the API shows them."""
    out = {}
    for account, key in ACCOUNTS.items():
        with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"}) as http:
            out[account] = {
                "keys": http.get(KEYS).json()["data"],
                "traces": all_traces(http),
                "usage": http.get("/api/v1/usage").json()["data"],
                "stats": http.get("/api/v1/request-traces/stats").json(),
            }
    return out


def store_traffic(server: MockServer) -> dict[str, dict]:
    """Traffic stored before the corpus: calls on both accounts, streamed and not, a failure,
    a key created with limits and a key revoked. Returns the books it left."""
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {DEFAULT_KEY}"}) as http:
        created = http.post(KEYS, json={"name": "生产 🔑", "monthly_budget": 25.0, "rate_limit": 1000}).json()["data"]
        revoked = http.post(KEYS, json={"name": "to revoke"}).json()["data"]
        for key, model, stream in [(DEFAULT_KEY, "gpt-4o", False), (DEFAULT_KEY, "gpt-4o-mini", True),
                                   (created["key"], "claude-3-5-sonnet-20241022", False), (revoked["key"], "gpt-4o", False),
                                   (ACME_KEY, "qwen-max", False), (ACME_KEY, "gpt-4o", True)]:
            body = {"model": model, "messages": [{"role": "user", "content": "解释量子纠缠"}], "stream": stream}
            answer = http.post(CHAT, json=body, headers={"Authorization": f"Bearer {key}"})
            assert answer.status_code == 200, answer.text
        assert http.post(CHAT, json={"model": "gpt-7", "messages": HI}).status_code == 404
        assert http.delete(f"{KEYS}/{revoked['id']}").status_code == 200
    before = books_of(server)
    assert before["default"]["stats"]["total_requests"] == 5 and before["acme"]["stats"]["total_requests"] == 2
    return before


@pytest.fixture(scope="module")
def server():
    """The per-case tests' server, with traffic stored before the corpus."""
    with MockServer(seed=11, clock=CLOCK) as server:
        store_traffic(server)
        yield server


def check_answer(case: Hostile, answer: Answer) -> str:
    """A clear 4xx in the one format, as the case expects; returns its X-Trace-ID."""
    assert answer.status == case.status, answer.body[:300]
    assert answer.headers["content-type"].startswith("application/json")
    error = json.loads(answer.body)
    assert error == {"error": {"code": case.code, "message": error["error"]["message"], "status": case.status}}
    message = error["error"]["message"]
    assert isinstance(message, str) and 0 < len(message) < 1000
    if case.mentions:
        assert case.mentions in message
    trace_id = answer.headers["x-trace-id"]
    assert TRACE_ID.fullmatch(trace_id)
    if case.send == "head":
        assert answer.body_bytes_sent < TEN_MB  # answered though most of the declared body never came
    return trace_id


# --- the corpus, one test per case ------------------------------------------------------------

@pytest.mark.parametrize("case", HOSTILE, ids=[c.name for c in HOSTILE])
def test_a_hostile_input_gets_a_clear_4xx_in_the_one_format(server, case):
    check_answer(case, exchange(server.port, case))
    server.check_errors()  # nothing went wrong inside the server either


@pytest.mark.parametrize("count", [len(HOSTILE)], ids=[f"after-{len(HOSTILE)}-hostile-inputs"])
def test_after_the_whole_corpus_nothing_stored_changed_and_the_server_still_answers(count):
    """Self-contained (its own server and traffic, then the whole corpus), so it holds
    whatever order or worker the tests above ran in."""
    with MockServer(seed=11, clock=CLOCK) as server:
        before = store_traffic(server)
        trace_ids: list[str] = []
        traced: dict[str, list[str]] = {account: [] for account in ACCOUNTS}
        for case in HOSTILE:
            trace_id = check_answer(case, exchange(server.port, case))
            trace_ids.append(trace_id)
            if case.traced_in:
                traced[case.traced_in].append(trace_id)
        assert len(set(trace_ids)) == len(trace_ids) == count  # every answer its own trace id
        assert traced["default"], "the corpus holds chat calls refused with a known key"
        after = books_of(server)

        for account, then in before.items():
            now = after[account]
            known = {t["trace_id"] for t in then["traces"]}
            new = [t for t in now["traces"] if t["trace_id"] not in known]
            assert [t for t in now["traces"] if t["trace_id"] in known] == then["traces"]  # untouched, in order
            assert sorted(t["trace_id"] for t in new) == sorted(traced[account])  # one per refused chat call
            for trace in new:
                assert trace["status"] == "error" and 400 <= trace["http_status"] < 500, trace
                assert (trace["prompt_tokens"], trace["completion_tokens"], trace["cost_usd"]) == (0, 0, 0)

            refused_by_key: dict[int, int] = {}
            for trace in new:
                refused_by_key[trace["api_key_id"]] = refused_by_key.get(trace["api_key_id"], 0) + 1
            assert [{**k, "total_requests": k["total_requests"] - refused_by_key.get(k["id"], 0)} for k in now["keys"]] \
                == then["keys"]

            grew = len(new)
            assert now["usage"]["total_requests"] == then["usage"]["total_requests"] + grew
            for total in ("total_prompt_tokens", "total_completion_tokens", "total_tokens", "total_cost_usd"):
                assert now["usage"][total] == then["usage"][total], total
            assert {r["model"]: (r["prompt_tokens"], r["completion_tokens"], r["cost_usd"])
                    for r in now["usage"]["by_model"] if r["tokens"]} \
                == {r["model"]: (r["prompt_tokens"], r["completion_tokens"], r["cost_usd"])
                    for r in then["usage"]["by_model"] if r["tokens"]}
            assert now["stats"]["total_requests"] == then["stats"]["total_requests"] + grew
            assert now["stats"]["error_count"] == then["stats"]["error_count"] + grew
            for same in ("success_count", "total_tokens", "total_prompt_tokens", "total_completion_tokens", "total_cost_usd"):
                assert now["stats"][same] == then["stats"][same], same

        with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {DEFAULT_KEY}"}) as http:
            answer = http.post(CHAT, json={"model": "gpt-4o", "messages": HI})
            listed = http.get(KEYS)
            journal = http.get("/__admin/requests")  # it holds what the corpus sent: still listable
        assert answer.status_code == 200
        assert answer.json()["choices"][0]["message"]["content"]
        assert listed.status_code == 200
        assert journal.status_code == 200 and journal.json()["requests"]
        server.check_errors()


CLOSED_BOMBS = {
    "chat-100k-objects": (CHAT, '{"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], "metadata": '
                          + nested(100_000) + "}"),
    "key-1m-arrays": (KEYS, '{"name": "x", "extra": ' + "[" * 1_000_000 + "]" * 1_000_000 + "}"),
    "admin-scenario-100k-objects": ("/__admin/scenarios/active", nested(100_000)),
}


def test_a_closed_depth_bomb_is_refused_and_the_server_survives():
    """Run against a process of its own: what this case finds is a crash of the whole process."""
    with serve() as server, httpx.Client(base_url=server.url, timeout=TIMEOUT_S,
                                         headers={"Authorization": f"Bearer {DEFAULT_KEY}"}) as http:
        for name, (path, raw) in CLOSED_BOMBS.items():
            method = "PUT" if path.startswith("/__admin") else "POST"
            try:
                answer = http.request(method, path, content=raw.encode(), headers={"Content-Type": "application/json"})
            except httpx.TransportError as e:
                try:
                    fate = f"died with exit code {server.popen.wait(timeout=2)}"
                except subprocess.TimeoutExpired:
                    fate = "is still running"
                pytest.fail(f"{name}: no answer ({e!r}); the server {fate}")
            assert answer.status_code == 400, f"{name}: {answer.text[:200]}"
            assert answer.json()["error"]["code"] == "invalid_request"
            assert answer.headers["X-Trace-ID"]
        assert http.post(CHAT, json={"model": "gpt-4o", "messages": HI}).status_code == 200
        assert http.get("/__admin/requests").status_code == 200
        assert server.alive()


# --- what is not hostile: accepted, and exactly as sent -------------------------------------------

LEGIT_NAMES = {
    "cjk": "生产环境 密钥",
    "emoji-zwj-sequence": "👩\u200d💻 dev key 🚀",
    "flags-and-variation-selectors": "🏳️\u200d🌈 🇨🇳🇺🇸",
    "rtl-arabic": "مفتاح الإنتاج",
    "rtl-hebrew": "מפתח ייצור",
    "mixed-direction-with-implicit-marks": "prod \u200fמפתח\u200e key",
    "decomposed-accents-not-normalized": "Cafe\u0301 e\u0301te\u0301",
    "precomposed-accents": "Café été",
    "astral-plane-letters": "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝟙𝟚𝟛",
    "devanagari": "उत्पादन कुंजी",
    "thai": "คีย์การผลิต",
    "hangul": "프로덕션 키",
    "private-use": "\ue000 internal",
    "128-emoji-code-points": "🔑" * 128,
    "leading-and-trailing-spaces": "  spaced  ",
    "markup-and-quotes": "<script>alert('x')</script> \"; DROP TABLE keys; --",
    "zero-width-joiner-between-letters": "a\u200db",
}


@pytest.mark.parametrize("name", LEGIT_NAMES.values(), ids=LEGIT_NAMES.keys())
def test_a_key_name_in_any_script_is_accepted_and_comes_back_exactly(http, name):
    created = http.post(KEYS, json={"name": name})

    assert created.status_code == 200, created.text
    key = created.json()["data"]
    assert key["name"] == name
    assert http.get(f"{KEYS}/{key['id']}").json()["data"]["name"] == name
    assert [k["name"] for k in http.get(KEYS).json()["data"] if k["id"] == key["id"]] == [name]
    assert http.post(CHAT, json={"model": "gpt-4o", "messages": HI},
                     headers={"Authorization": f"Bearer {key['key']}"}).status_code == 200


LEGIT_MESSAGES = {
    "cjk": "解释量子纠缠，用两句话。",
    "emoji-zwj-and-flags": "👨\u200d👩\u200d👧 family 🏳️\u200d🌈 🇯🇵",
    "rtl-arabic": "اشرح التشابك الكمي",
    "decomposed-accents": "Cafe\u0301",
    "astral-plane": "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𓀀 🀄",
    "escaped-nul-is-text": "before\u0000after",
    "bom-inside": "\ufeffhello",
    "line-separator": "one\u2028two",
    "bidi-override-in-text": "\u202eabc",
    "combining-stack": "Z\u0351\u036b\u0343\u036a\u0302\u036b\u033d\u034f\u0334\u0319\u0324\u031e\u0349\u035a",
    "two-thousand-cjk-characters": "字" * 2000,
}
ECHO = "name: echo\nrules:\n  - match: {endpoint: chat}\n    respond: {content: \"{{ message }}\"}\n"


@pytest.fixture
def echo(poeti, tmp_path):
    path = tmp_path / "echo.yaml"
    path.write_text(ECHO, encoding="utf-8")
    poeti.use(str(path))
    return poeti


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize("text", LEGIT_MESSAGES.values(), ids=LEGIT_MESSAGES.keys())
def test_a_message_in_any_script_is_answered_and_comes_back_exactly(echo, http, text, stream):
    answer = http.post(CHAT, json={"model": "gpt-4o", "messages": [{"role": "user", "content": text}], "stream": stream})

    assert answer.status_code == 200, answer.text
    if stream:
        frames = [line.removeprefix("data: ") for line in answer.text.split("\n\n") if line.startswith("data: ")]
        assert frames[-1] == "[DONE]"
        chunks = [json.loads(f) for f in frames[:-1]]
        content = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    else:
        content = answer.json()["choices"][0]["message"]["content"]
    assert content == text
    assert echo.last_request["body"]["messages"][0]["content"] == text
