"""Request parts that several test files send."""

from __future__ import annotations

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
