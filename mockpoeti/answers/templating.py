"""`{{ ... }}` in scripted content: values from the request and from Faker.

Deliberately tiny: a placeholder is a dotted name looked up in plain data, or
one of a fixed list of Faker providers. Nothing is evaluated, so a scenario
file can never reach the file system or run code.
"""

from __future__ import annotations

import re
from typing import Any

PLACEHOLDER = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*(\.[A-Za-z0-9_-]+)*$")

ROOTS = ("message", "model", "body", "headers", "query", "key", "last", "faker")
FAKER_PROVIDERS = (
    "name", "first_name", "last_name", "user_name", "email", "phone_number", "company", "job",
    "city", "country", "address", "street_address", "url", "word", "sentence", "paragraph", "text",
    "date", "time", "iso8601", "uuid4", "color_name", "catch_phrase", "random_int", "pyfloat",
)


def check_template(text: str) -> str | None:
    """A problem with the template, or None: unknown roots and providers are refused up front."""
    if text.count("{{") != text.count("}}"):
        return "unbalanced '{{' and '}}' in template"
    for match in PLACEHOLDER.finditer(text):
        expr = match.group(1)
        if not _NAME.match(expr):
            return f"'{{{{ {expr} }}}}' is not a placeholder; expected a dotted name such as message, body.user or faker.name"
        root, _, rest = expr.partition(".")
        if root not in ROOTS:
            return f"'{{{{ {expr} }}}}': unknown name '{root}'; expected one of {', '.join(ROOTS)}"
        if root == "faker" and rest not in FAKER_PROVIDERS:
            return f"'{{{{ {expr} }}}}': '{rest}' is not an allowed Faker provider; expected one of {', '.join(FAKER_PROVIDERS)}"
    return None


def render(text: str, context: dict[str, Any], faker: Any = None) -> str:
    """Fill in placeholders; a name that leads nowhere renders as the empty string."""
    if "{{" not in text:
        return text

    def value(match: re.Match) -> str:
        root, _, rest = match.group(1).partition(".")
        if root == "faker":
            return str(getattr(faker, rest)()) if faker is not None and rest in FAKER_PROVIDERS else ""
        current: Any = context.get(root)
        for part in rest.split(".") if rest else ():
            if isinstance(current, dict):
                current = current.get(part, current.get(part.lower()))
            elif isinstance(current, list) and part.isdigit() and int(part) < len(current):
                current = current[int(part)]
            else:
                return ""
        if current is None:
            return ""
        return current if isinstance(current, str) else _json(current)

    return PLACEHOLDER.sub(value, text)


def _json(value: Any) -> str:
    import json

    return json.dumps(value, ensure_ascii=False)
