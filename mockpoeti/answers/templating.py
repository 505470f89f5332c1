"""`{{ ... }}` in scripted content: values from the request and from Faker.

Deliberately tiny: a placeholder is a dotted name looked up in plain data, or
one of a fixed list of Faker providers. Nothing is evaluated, so a scenario
file can never reach the file system or run code.
"""

from __future__ import annotations

import re
from typing import Any

from mockpoeti.base.errors import MockpoetiError

MAX_RENDERED_CHARS = 1024 * 1024  # of a template's output: its placeholders may repeat a 4 MiB request
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


def render(text: str, context: dict[str, Any], faker: Any = None, limit: int = MAX_RENDERED_CHARS) -> str:
    """Fill in placeholders; a name that leads nowhere renders as the empty string. Raises
    TemplateTooLargeError as soon as the output would pass `limit` characters (a prompt
    repeated by `{{ message }}` x 300 made 29 MiB), before it is put together."""
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

    pieces: list[str] = []
    size, end = 0, 0
    for match in PLACEHOLDER.finditer(text):
        pieces.append(text[end : match.start()])
        pieces.append(value(match))
        size += len(pieces[-2]) + len(pieces[-1])
        if size > limit:
            raise TemplateTooLargeError(size, limit)
        end = match.end()
    pieces.append(text[end:])
    if size + len(pieces[-1]) > limit:
        raise TemplateTooLargeError(size + len(pieces[-1]), limit)
    return "".join(pieces)


class TemplateTooLargeError(MockpoetiError):
    """A template whose output would pass the limit with this request's values."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"would be {size} characters or more with this request's values; "
                         f"at most {limit} (MAX_RENDERED_CHARS) are rendered")


def _json(value: Any) -> str:
    import json

    return json.dumps(value, ensure_ascii=False)
