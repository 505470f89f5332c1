"""Every failure answers in the one documented format, with the documented code and
status, an X-Trace-ID, a message that names what to fix, never a 500, and
without touching the stored keys."""

from __future__ import annotations

import json

import httpx
import openai
import pytest

from mockpoeti import MockServer

ACME_KEY = "sk-poeti-acme-production-0001"
CHAT = "/v1/chat/completions"
HELLO = [{"role": "user", "content": "hi"}]


def assert_error(response: httpx.Response, status: int, code: str, mentions: str | None = None) -> None:
    assert response.status_code == status, response.text
    assert response.headers["X-Trace-ID"]
    assert response.headers["Content-Type"].startswith("application/json")
    body = response.json()
    assert body == {"error": {"code": code, "message": body["error"]["message"], "status": status}}
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    if mentions is not None:
        assert mentions in body["error"]["message"]


def stored_keys(http: httpx.Client) -> list[dict]:
    """Both accounts' keys as stored, less the request counter (traced failures count as calls)."""
    keys = []
    for headers in ({}, {"Authorization": f"Bearer {ACME_KEY}"}):
        response = http.get("/api/v1/api-keys", headers=headers)
        assert response.status_code == 200, f"the key listing broke: {response.text}"
        keys += [{k: v for k, v in key.items() if k != "total_requests"} for key in response.json()["data"]]
    return keys


@pytest.fixture(autouse=True)
def keys_unchanged(http):
    before = stored_keys(http)
    assert len(before) == 4
    yield
    assert stored_keys(http) == before


# --- authentication ------------------------------------------------------------

BAD_AUTH = {
    "missing": {},
    "basic": {"Authorization": "Basic x"},
    "bearer-alone": {"Authorization": "Bearer"},
    "wrong-scheme": {"Authorization": "Token sk-poeti-mockpoeti-default-key"},
    "two-tokens": {"Authorization": "Bearer sk-poeti-a sk-poeti-b"},
    "unknown": {"Authorization": "Bearer sk-poeti-not-a-key-we-know"},
    "revoked": {"Authorization": "Bearer sk-poeti-acme-retired-0003"},
    "key-without-scheme": {"Authorization": "sk-poeti-mockpoeti-default-key"},
}
ENDPOINTS = [
    ("POST", CHAT),
    ("GET", "/v1/models"),
    ("GET", "/api/v1/api-keys"),
    ("POST", "/api/v1/api-keys"),
    ("GET", "/api/v1/usage"),
    ("GET", "/api/v1/request-traces"),
    ("GET", "/api/v1/request-traces/stats"),
]


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=[f"{m} {p}" for m, p in ENDPOINTS])
@pytest.mark.parametrize("headers", BAD_AUTH.values(), ids=BAD_AUTH.keys())
def test_bad_credentials_are_invalid_api_key(poeti, headers, endpoint):
    method, path = endpoint
    body = {"model": "gpt-4o", "messages": HELLO} if path == CHAT else {"name": "never created"}
    with httpx.Client(base_url=poeti.url) as raw:
        response = raw.request(method, path, headers=headers, json=body if method == "POST" else None)
    assert_error(response, 401, "invalid_api_key")


# --- request bodies --------------------------------------------------------------

RAW_BODIES = {
    "malformed-json": b'{"model": "gpt-4o", "messages": [',
    "json-array": b'[{"model": "gpt-4o"}]',
    "json-string": b'"hello"',
    "empty": b"",
    "whitespace": b"  \n ",
    "invalid-utf8": b'{"model": "gpt-4o\xff\xfe", "messages": []}',
    "deep-nesting": b"[" * 100_000,
    "deep-object-nesting": b'{"a":' * 50_000,
    "nan": b'{"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], "temperature": NaN}',
}


@pytest.mark.parametrize("path", [CHAT, "/api/v1/api-keys"])
@pytest.mark.parametrize("raw", RAW_BODIES.values(), ids=RAW_BODIES.keys())
def test_unreadable_bodies_are_invalid_request(http, raw, path):
    response = http.post(path, content=raw, headers={"Content-Type": "application/json"})
    assert_error(response, 400, "invalid_request", mentions="body")


LONE_SURROGATES = {
    "key-name": ("/api/v1/api-keys", rb'{"name": "x\ud800"}'),
    "chat-content": (CHAT, rb'{"model": "gpt-4o", "messages": [{"role": "user", "content": "x\udc00"}]}'),
    "chat-model": (CHAT, rb'{"model": "gpt-4\ud800", "messages": [{"role": "user", "content": "hi"}]}'),
}


@pytest.mark.parametrize(("path", "raw"), LONE_SURROGATES.values(), ids=LONE_SURROGATES.keys())
def test_lone_surrogate_escapes_are_invalid_request_and_leave_the_server_usable(http, path, raw):
    """`"\\ud800"` is JSON syntax for no Unicode character at all: not text a client can mean."""
    response = http.post(path, content=raw, headers={"Content-Type": "application/json"})
    assert_error(response, 400, "invalid_request")
    for listing in ("/api/v1/api-keys", "/api/v1/request-traces", "/api/v1/usage", "/api/v1/request-traces/stats"):
        assert http.get(listing).status_code == 200, listing


BAD_CHAT_FIELDS = [
    ({"messages": HELLO}, "model"),
    ({"model": None, "messages": HELLO}, "model"),
    ({"model": 4, "messages": HELLO}, "model"),
    ({"model": "gpt-4o"}, "messages"),
    ({"model": "gpt-4o", "messages": "hi"}, "messages"),
    ({"model": "gpt-4o", "messages": []}, "messages"),
    ({"model": "gpt-4o", "messages": ["hi"]}, "messages[0]"),
    ({"model": "gpt-4o", "messages": [{"role": "wizard", "content": "hi"}]}, "messages[0].role"),
    ({"model": "gpt-4o", "messages": [{"content": "hi"}]}, "messages[0].role"),
    ({"model": "gpt-4o", "messages": [*HELLO, {"role": "user", "content": 7}]}, "messages[1].content"),
    ({"model": "gpt-4o", "messages": HELLO, "temperature": "hot"}, "temperature"),
    ({"model": "gpt-4o", "messages": HELLO, "temperature": 3}, "temperature"),
    ({"model": "gpt-4o", "messages": HELLO, "n": 0}, "n"),
    ({"model": "gpt-4o", "messages": HELLO, "n": "2"}, "n"),
    ({"model": "gpt-4o", "messages": HELLO, "max_tokens": 0}, "max_tokens"),
    ({"model": "gpt-4o", "messages": HELLO, "stream": "yes"}, "stream"),
    ({"model": "gpt-4o", "messages": HELLO, "stream_options": {"include_usage": True}}, "stream_options"),
    ({"model": "gpt-4o", "messages": HELLO, "stop": ["a", "b", "c", "d", "e"]}, "stop"),
    ({"model": "gpt-4o", "messages": HELLO, "tools": [{"type": "function"}]}, "tools[0].function"),
    ({"model": "gpt-4o", "messages": HELLO, "response_format": {"type": "yaml"}}, "response_format"),
]


@pytest.mark.parametrize(("body", "field"), BAD_CHAT_FIELDS, ids=[f for _, f in BAD_CHAT_FIELDS])
def test_bad_chat_fields_are_invalid_request_naming_the_field(http, body, field):
    assert_error(http.post(CHAT, json=body), 400, "invalid_request", mentions=field)


def test_the_sdk_sees_a_bad_field_as_a_bad_request(client):
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="gpt-4o", messages=HELLO, temperature="hot")
    assert caught.value.code == "invalid_request"
    assert "temperature" in caught.value.message


def test_an_unknown_model_is_model_not_found(http, client):
    assert_error(http.post(CHAT, json={"model": "gpt-7", "messages": HELLO}), 404, "model_not_found", mentions="gpt-7")
    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(model="gpt-7", messages=HELLO)
    assert caught.value.code == "model_not_found"


def test_a_prompt_beyond_the_context_window_is_context_length_exceeded(http):
    context = {m["id"]: m["context_length"] for m in http.get("/v1/models").json()["data"]}["qwen-max"]
    prompt = "字" * (context + 10)  # one token per CJK character
    response = http.post(CHAT, json={"model": "qwen-max", "messages": [{"role": "user", "content": prompt}]})
    assert_error(response, 400, "context_length_exceeded", mentions=str(context))


def test_max_tokens_beyond_the_context_window_is_context_length_exceeded(http):
    response = http.post(CHAT, json={"model": "gpt-4o", "messages": HELLO, "max_tokens": 10_000_000})
    assert_error(response, 400, "context_length_exceeded")


# --- routing and size --------------------------------------------------------------

@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/v1/nope"), ("GET", "/api/v1/nothing"), ("POST", "/v2/chat/completions"),
     ("GET", "/v1/chat/completions/extra"), ("GET", "/api/v1/api-keys/1/2")],
)
def test_an_unknown_path_is_not_found(http, method, path):
    assert_error(http.request(method, path), 404, "not_found")


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [("GET", CHAT, "POST"), ("PUT", CHAT, "POST"), ("DELETE", "/v1/models", "GET"),
     ("PATCH", "/api/v1/usage", "GET"), ("PUT", "/api/v1/api-keys", "POST")],
)
def test_a_wrong_method_is_method_not_allowed(http, method, path, allowed):
    response = http.request(method, path)
    assert_error(response, 405, "method_not_allowed")
    assert allowed in response.headers["Allow"]


def five_megabytes() -> bytes:
    return b'{"model": "gpt-4o", "messages": [{"role": "user", "content": "' + b"a" * (5 * 1024 * 1024) + b'"}]}'


def test_a_5mb_body_is_payload_too_large(http):
    assert_error(http.post(CHAT, content=five_megabytes()), 413, "payload_too_large")


def test_a_5mb_chunked_body_is_payload_too_large(http):
    body = five_megabytes()

    def chunks():
        for i in range(0, len(body), 256 * 1024):
            yield body[i : i + 256 * 1024]

    assert_error(http.post(CHAT, content=chunks()), 413, "payload_too_large")


def test_a_chunked_body_over_the_limit_that_came_whole_is_payload_too_large():
    """A body with no Content-Length that arrived at once is measured when it is taken."""
    with MockServer(max_body_bytes=1024) as server, httpx.Client(base_url=server.url) as client:
        headers = {"Authorization": f"Bearer {server.api_key}"}
        fits = json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x" * 900}]}).encode()
        over = json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x" * 1100}]}).encode()
        assert client.post(CHAT, content=iter([fits]), headers=headers).status_code == 200
        assert_error(client.post(CHAT, content=iter([over]), headers=headers), 413, "payload_too_large", "1024 bytes")
        assert client.post(CHAT, content=iter([fits]), headers=headers).status_code == 200  # the connection still serves


# --- query parameters ----------------------------------------------------------------

BAD_QUERIES = [
    ("/api/v1/request-traces", "page=0", "page"),
    ("/api/v1/request-traces", "page=-1", "page"),
    ("/api/v1/request-traces", "page=abc", "page"),
    ("/api/v1/request-traces", "page=1.5", "page"),
    ("/api/v1/request-traces", "page=%2B1", "page"),
    ("/api/v1/request-traces", "page=1_000", "page"),
    ("/api/v1/request-traces", "page=%20%201", "page"),
    ("/api/v1/request-traces", "page=%D9%A1", "page"),  # ARABIC-INDIC DIGIT ONE: int() reads it as 1
    ("/api/v1/request-traces", "page_size=0", "page_size"),
    ("/api/v1/request-traces", "page_size=101", "page_size"),
    ("/api/v1/request-traces", "page_size=ten", "page_size"),
    ("/api/v1/request-traces", "date_from=2026-13-01", "date_from"),
    ("/api/v1/request-traces", "date_to=2026-02-30", "date_to"),
    ("/api/v1/request-traces", "date_from=yesterday", "date_from"),
    ("/api/v1/request-traces", "date_from=2026-W14-3", "date_from"),  # an ISO week date, which fromisoformat takes
    ("/api/v1/request-traces", "status=bogus", "status"),
    ("/api/v1/request-traces", "key_id=abc", "key_id"),
    ("/api/v1/request-traces/stats", "date_from=2026-13-01", "date_from"),
    ("/api/v1/usage", "date_from=2026-13-01", "date_from"),
    ("/api/v1/usage", "date_to=2026-04-31", "date_to"),
    ("/api/v1/usage", "date_from=2026-04-30&date_to=2026-04-01", "date_to"),
]


@pytest.mark.parametrize(("path", "query", "name"), BAD_QUERIES, ids=[f"{p.rsplit('/', 1)[1]}?{q}" for p, q, _ in BAD_QUERIES])
def test_bad_query_parameters_are_invalid_request_naming_the_parameter(http, path, query, name):
    assert_error(http.get(f"{path}?{query}"), 400, "invalid_request", mentions=name)


@pytest.mark.parametrize("query", ["page=1", "page_size=1", "page_size=100", "status=error", "status=success",
                                   "date_from=2026-04-01&date_to=2026-04-01"])
def test_good_query_parameters_are_accepted(http, query):
    response = http.get(f"/api/v1/request-traces?{query}")
    assert response.status_code == 200
    assert response.json()["code"] == 200


# --- error calls leave a trace, but only for a known key ------------------------------

def test_failed_chat_calls_are_traced_with_their_error(poeti, http):
    failures = [
        (http.post(CHAT, json={"model": "gpt-7", "messages": HELLO}), 404, "model_not_found"),
        (http.post(CHAT, content=b"{not json"), 400, "invalid_request"),
        (http.post(CHAT, json={"model": "gpt-4o", "messages": HELLO, "n": 0}), 400, "invalid_request"),
    ]
    httpx.post(poeti.url + CHAT, json={"model": "gpt-4o", "messages": HELLO},
               headers={"Authorization": "Bearer sk-poeti-not-a-key-we-know"})
    items = http.get("/api/v1/request-traces").json()["data"]["items"]
    assert [t["trace_id"] for t in items] == [r.headers["X-Trace-ID"] for r, _, _ in reversed(failures)]
    for trace, (response, status, code) in zip(reversed(items), failures, strict=False):
        assert (trace["status"], trace["http_status"], trace["error_code"]) == ("error", status, code)
        assert trace["error_message"] == response.json()["error"]["message"]
        assert (trace["prompt_tokens"], trace["completion_tokens"], trace["cost_usd"]) == (0, 0, 0)


def test_every_error_response_has_its_own_trace_id(poeti, http):
    responses = [http.get("/v1/nope"), http.get("/v1/nope"), http.post(CHAT, content=b""),
                 httpx.get(poeti.url + "/v1/models")]
    ids = [r.headers["X-Trace-ID"] for r in responses]
    assert len(set(ids)) == len(ids)
    journal = {entry["trace_id"] for entry in poeti.requests}
    assert set(ids) <= journal


def test_a_browser_on_another_origin_may_call_the_api(poeti, http):
    preflight = http.options(
        "/v1/chat/completions",
        headers={"Origin": "http://localhost:5173", "Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "authorization, content-type"},
    )
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == "http://localhost:5173"
    assert "authorization" in preflight.headers["access-control-allow-headers"]
    answer = http.get("/v1/models", headers={"Origin": "http://localhost:5173"})
    assert answer.headers["access-control-allow-origin"] == "*"
    assert "X-Trace-ID" in answer.headers["access-control-expose-headers"]
