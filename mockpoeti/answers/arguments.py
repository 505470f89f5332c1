"""Arguments that follow the prompt: "weather in Paris" calls `get_weather(city="Paris")`.

Pure. A generated value (valid against its schema, seeded) is the starting
point; each top-level property whose name (or description) says what it holds
takes a matching span of the last user message when one fits its schema
(its type, length and bounds; a property with a `pattern` or a `format` other
than `date` keeps its generated value: a pattern is never run on the prompt):

- a place (`city`, `location`, `destination`, ...) or a person or name
  (`name`, `customer`, `author`, ...): quoted text, else a run of capitalised
  words ("New York", "Ada Lovelace");
- a date (`date`, `day`, `when`, ...): an ISO date, a written one ("May 3"),
  or today/tomorrow/a weekday;
- a query (`query`, `question`, `topic`, ...): quoted text, else the message;
- a number (any `integer` or `number` property): the prompt's numbers in order;
- an `enum` of strings: a value the prompt names.

Each span is used once, in property order; where none fits, the generated
value stays. Nothing is drawn at random here, so answers stay seeded.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

from mockpoeti.answers.tool_choice import name_words
from mockpoeti.base.lazyregex import LazyPattern

MAX_SPAN_CHARS = 200  # a quoted span or capitalised run longer than this is not an argument
MAX_QUERY_CHARS = 500  # the whole message as a query, at most
MAX_PROMPT_CHARS = 4096  # of the last user message, read for arguments (a 4 MiB prompt is not scanned per property)
MAX_ENUM_VALUES = 256  # of an enum, looked for in the prompt

PLACE = frozenset({"city", "location", "place", "town", "destination", "origin", "country", "region", "address",
                   "where", "area", "venue", "locality", "airport", "station"})
PERSON = frozenset({"name", "person", "user", "username", "customer", "author", "recipient", "who", "contact",
                    "owner", "assignee", "employee", "client", "company", "organization", "organisation", "sender"})
DATE = frozenset({"date", "day", "when", "deadline", "birthday", "birthdate"})
QUERY = frozenset({"query", "q", "search", "question", "topic", "keyword", "keywords", "term", "terms", "prompt",
                   "text", "input", "message", "subject", "phrase", "request"})

# Capitalised words that start sentences, questions and requests rather than name something.
_NOT_NAMES = frozenset({
    "a", "about", "after", "all", "also", "an", "and", "any", "are", "as", "at", "be", "before", "but", "by", "can",
    "could", "did", "do", "does", "for", "from", "get", "give", "has", "have", "he", "hello", "help", "her", "hey",
    "hi", "his", "how", "i", "i'm", "if", "in", "is", "it", "its", "just", "let", "look", "me", "my", "need", "no",
    "not", "now", "of", "ok", "okay", "on", "or", "our", "please", "she", "show", "should", "so", "tell", "thanks",
    "thank", "that", "the", "their", "then", "there", "these", "they", "this", "those", "to", "use", "was", "we",
    "what", "when", "where", "which", "who", "whom", "whose", "why", "will", "with", "would", "yes", "you", "your",
    "find", "search", "check", "list", "call", "run", "make", "create", "send", "book", "compare", "convert",
    "translate", "lookup", "email", "message", "text", "remind", "schedule", "order", "buy", "ask", "write", "draft",
    "open", "read", "play", "start", "stop", "add", "remove", "delete", "update", "cancel", "fetch", "plan",
    "explain", "describe", "summarize", "summarise", "calculate", "count", "set", "what's", "where's", "who's",
    "how's", "today", "tomorrow", "yesterday", "tonight", "monday", "tuesday", "wednesday", "thursday", "friday",
    "saturday", "sunday", "january", "february", "march", "april", "may", "june", "july", "august", "september",
    "october", "november", "december",
})
_MONTHS = (
    "jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|sep(?:t(?:ember)?)?"
    "|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?"
)
_WEEKDAYS = "monday|tuesday|wednesday|thursday|friday|saturday|sunday"

# Compiled by the first request with tools (base/lazyregex.py): ~1 ms of every start otherwise.
_QUOTED = LazyPattern(
    r"""(?<!\w)(?:'([^'\n]+)'|"([^"\n]+)"|“([^”\n]+)”|‘([^’\n]+)’|「([^」\n]+)」|『([^』\n]+)』|«([^»\n]+)»)(?!\w)"""
)
_WORD = LazyPattern(r"[^\W\d_][\w'’.-]*")
_ISO_DATE = LazyPattern(r"(?<!\d)\d{4}-\d{2}-\d{2}(?!\d)")
_WRITTEN_DATE = LazyPattern(
    rf"\b(?:(?:{_MONTHS})\.?\s+\d{{1,2}}(?:st|nd|rd|th)?(?:,?\s+\d{{4}})?|\d{{1,2}}(?:st|nd|rd|th)?\s+(?:{_MONTHS})\.?(?:\s+\d{{4}})?"
    rf"|\d{{1,2}}/\d{{1,2}}/\d{{2,4}}|today|tomorrow|yesterday|tonight|(?:next\s+)?(?:{_WEEKDAYS}))\b",
    re.IGNORECASE,
)
_SENTENCE_END = LazyPattern(r"[.!?。！？\n]")
_NUMBER = LazyPattern(r"(?<![\w.])-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?![\w])")


class Spans:
    """The candidate arguments a prompt holds, each handed out once."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.used: set[str] = set()
        self.used_numbers: set[int] = set()  # positions in numbers()
        self._quoted: list[str] | None = None
        self._names: list[str] | None = None
        self._dates: list[str] | None = None
        self._numbers: list[float | int] | None = None

    def quoted(self) -> list[str]:
        if self._quoted is None:
            self._quoted = [next(g for g in m.groups() if g is not None).strip() for m in _QUOTED.finditer(self.text)]
        return self._quoted

    def names(self) -> list[str]:
        """Runs of capitalised words, split where a word only starts a sentence or a question;
        the runs that open a sentence last ("Weather in Paris": Paris before Weather)."""
        if self._names is None:
            inside: list[str] = []
            opening: list[str] = []
            current: list[str] = []
            starts = False
            end = 0
            for m in _WORD.finditer(self.text):
                word = m.group().rstrip(".'’-")
                gap = self.text[end : m.start()]
                capitalised = word[:1].isupper() and word.lower() not in _NOT_NAMES
                if current and (not capitalised or gap.strip()):
                    (opening if starts else inside).append(" ".join(current))
                    current = []
                if capitalised and not current:
                    starts = end == 0 or _SENTENCE_END.search(gap) is not None
                if capitalised:
                    current.append(word)
                end = m.start() + len(word)
            if current:
                (opening if starts else inside).append(" ".join(current))
            self._names = inside + opening
        return self._names

    def dates(self) -> list[str]:
        if self._dates is None:
            self._dates = [m.group() for m in self._date_matches()]
        return self._dates

    def _date_matches(self) -> list[re.Match]:
        return [*_ISO_DATE.finditer(self.text), *_WRITTEN_DATE.finditer(self.text)]

    def numbers(self) -> list[float | int]:
        """The numbers written in the prompt, outside its dates."""
        if self._numbers is None:
            taken = [m.span() for m in self._date_matches()]
            found: list[float | int] = []
            for m in _NUMBER.finditer(self.text):
                if any(start < m.end() and m.start() < end for start, end in taken):
                    continue
                digits = m.group().replace(",", "")
                found.append(float(digits) if "." in digits else int(digits))
            self._numbers = found
        return self._numbers

    def take(self, candidates: list[str], fits: Callable[[str], bool]) -> str | None:
        for text in candidates:
            if text not in self.used and 0 < len(text) <= MAX_SPAN_CHARS and fits(text):
                self.used.add(text)
                return text
        return None


def follow_prompt(value: Any, schema: Any, prompt: str) -> Any:
    """`value` (generated from `schema`) with the arguments the prompt gives, where they fit."""
    if not prompt or not isinstance(value, dict) or not isinstance(schema, dict):
        return value
    properties = schema.get("properties")
    if not isinstance(properties, dict):
        return value
    spans = Spans(prompt[:MAX_PROMPT_CHARS])
    out = dict(value)
    for key in value:
        prop = properties.get(key)
        if not isinstance(prop, dict):
            continue
        found = _number(prop, spans) if _numeric(prop) else _string(key, prop, spans)
        if found is not None:
            out[key] = found
    return out


def _string(key: str, prop: dict, spans: Spans) -> str | None:
    s = _string_schema(prop)
    if s is None:
        return None
    if isinstance(s.get("enum"), list):
        return _enum_value(s["enum"], spans.text)
    kind = _kind(key, prop)
    if kind is None or "const" in s:
        return None
    fmt = s.get("format")
    if (fmt is not None and not (fmt == "date" and kind is DATE)) or "pattern" in s:
        return None  # a pattern is never run on the prompt: the request controls both, and the loop is shared

    def fits(text: str) -> bool:
        return _string_fits(s, text)

    if kind is DATE:
        candidates = [d for d in spans.dates() if _ISO_DATE.fullmatch(d)] if fmt == "date" else spans.dates()
        return spans.take(candidates, fits)
    if kind is QUERY:
        whole = spans.text.strip()
        return spans.take(spans.quoted(), fits) or (whole if len(whole) <= MAX_QUERY_CHARS and fits(whole) else None)
    return spans.take(spans.quoted(), fits) or spans.take(spans.names(), fits)


def _kind(key: str, prop: dict) -> frozenset[str] | None:
    """What a property holds, by the words of its name, else of its title and description."""
    for source in (key, prop.get("title"), prop.get("description")):
        if not isinstance(source, str):
            continue
        words = set(name_words(source))
        for kind in (DATE, PLACE, PERSON, QUERY):
            if words & kind:
                return kind
    return None


def _string_schema(prop: dict) -> dict | None:
    """The part of a property's schema a string must satisfy: itself when it is a string
    schema, or its string branch of an `anyOf`/`oneOf` with `null` (Optional[str])."""
    kind = prop.get("type")
    if kind == "string" or (isinstance(kind, list) and "string" in kind):
        return prop
    for combo in ("anyOf", "oneOf"):
        branches = prop.get(combo)
        if isinstance(branches, list):
            strings = [b for b in branches if isinstance(b, dict) and b.get("type") == "string"]
            others_null = all(isinstance(b, dict) and (b.get("type") in ("string", "null")) for b in branches)
            if len(strings) == 1 and others_null:
                return strings[0]
    return None


def _string_fits(s: dict, text: str) -> bool:
    low, high = s.get("minLength", 0), s.get("maxLength")
    return isinstance(low, int) and len(text) >= low and not (isinstance(high, int) and len(text) > high)


def _enum_value(values: list, text: str) -> str | None:
    """An enum value the prompt names as a word (`celsius` in "in celsius, please")."""
    lowered = text.lower()
    for value in values[:MAX_ENUM_VALUES]:
        literal = isinstance(value, str) and 0 < len(value) <= MAX_SPAN_CHARS
        if literal and re.search(rf"(?<!\w){re.escape(value.lower())}(?!\w)", lowered):  # a literal: linear
            return value
    return None


def _numeric(prop: dict) -> bool:
    return prop.get("type") in ("integer", "number")


def _number(prop: dict, spans: Spans) -> float | int | None:
    """The prompt's first number not given to another property that the property's
    type and bounds admit ("add 3 and 5" gives a=3, b=5)."""
    if "enum" in prop or "const" in prop:
        return None
    for k, found in enumerate(spans.numbers()):
        if k in spans.used_numbers:
            continue
        if prop.get("type") == "integer" and isinstance(found, float):
            if not found.is_integer():
                continue
            found = int(found)
        if _within(prop, found):
            spans.used_numbers.add(k)
            return found
    return None


def _within(prop: dict, x: float | int) -> bool:
    bounds = (
        ("minimum", lambda b: x >= b), ("maximum", lambda b: x <= b),
        ("exclusiveMinimum", lambda b: x > b), ("exclusiveMaximum", lambda b: x < b),
    )
    for key, holds in bounds:
        bound = prop.get(key)
        if isinstance(bound, (int, float)) and not isinstance(bound, bool) and not holds(bound):
            return False
    step = prop.get("multipleOf")
    if isinstance(step, (int, float)) and not isinstance(step, bool) and step > 0:
        quotient = x / step
        if not math.isfinite(quotient) or quotient != int(quotient):
            return False
    return True
