"""Request parts that several test files send."""

from __future__ import annotations

import openai

# The tool scenarios/tool-calling.yaml calls (get_weather with city and unit), with
# an integer range besides, so generated arguments have bounds to keep.
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city.",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "City name"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                "days": {"type": "integer", "minimum": 1, "maximum": 7},
            },
            "required": ["city"],
        },
    },
}


def chat_with_retry(client, sleep, first_wait: float = 1, **kwargs):
    """The reference's retry helper (seed/poeti-api-reference.txt, "重试策略"), as written there
    but for `sleep` (time.sleep, or a recorder a test passes in) and its first wait."""
    max_retries = 3
    wait = first_wait
    for attempt in range(max_retries):
        try:
            return client.chat.completions.create(**kwargs)
        except openai.RateLimitError:
            if attempt == max_retries - 1:
                raise
            sleep(wait)
            wait *= 2  # 指数退避
        except openai.APIStatusError as e:
            if e.status_code >= 500:
                sleep(wait)
                wait *= 2
            else:
                raise
