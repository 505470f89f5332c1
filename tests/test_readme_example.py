"""The README's example test file, run as it is here and from an empty folder (test_readme.py)."""

import openai
import pytest


def test_summary_uses_the_model(poeti):
    client = openai.OpenAI(base_url=poeti.base_url, api_key=poeti.api_key)
    reply = client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "总结这篇文章"}])

    assert reply.choices[0].message.content
    poeti.assert_requested(endpoint="chat", model="gpt-4o")
    assert poeti.traces[-1]["trace_id"] == poeti.last_request["trace_id"]


@pytest.mark.poeti_scenario("retry-then-succeed")
def test_the_sdk_retries_through_rate_limits(poeti):
    client = openai.OpenAI(base_url=poeti.base_url, api_key=poeti.api_key, max_retries=2)
    reply = client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])

    assert reply.choices[0].finish_reason == "stop"
    assert [r["status"] for r in poeti.requests] == [429, 429, 200]


def test_switching_scenarios_mid_test(poeti):
    client = openai.OpenAI(base_url=poeti.base_url, api_key=poeti.api_key, max_retries=0)
    poeti.use("budget-exhausted")
    with pytest.raises(openai.APIStatusError) as refused:
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    assert refused.value.status_code == 402


@pytest.mark.asyncio  # pytest-asyncio runs it (or leave the marker out and set asyncio_mode = "auto")
async def test_async_clients_work_too(poeti):
    client = openai.AsyncOpenAI(base_url=poeti.base_url, api_key=poeti.api_key)
    stream = await client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], stream=True
    )
    text = "".join([chunk.choices[0].delta.content or "" async for chunk in stream if chunk.choices])
    assert text
