"""Seeded values that validate against a JSON Schema, with bounded work.

Pure: no I/O, no aiohttp. This answers `response_format: json_schema` and
tool-call arguments, so client code that validates what "the model" said
(`client.chat.completions.parse`, pydantic, LangChain) gets a value it accepts.

It covers the JSON Schema that pydantic and OpenAI emit: `type` (lists, null),
`properties`/`required`/`additionalProperties`, `enum`, `const`,
`anyOf`/`oneOf`/`allOf`, local `$ref` (recursive ones too), `items`/
`prefixItems`, item counts and `uniqueItems`, string lengths, `pattern`
(drawn with rstr's xeger, then checked), `format`, and numeric bounds with
`multipleOf`.

Work is bounded by the constants below. A schema that needs more than they
allow (`minItems: 1e9`, a recursion that never ends, `minimum` above
`maximum`) is refused with an `invalid_request` that names the bound and the
schema path, never a hang: the generator is synchronous on the event loop.
"""

from __future__ import annotations

import json
import math
import random
import re
import string
from collections.abc import Callable, Sequence
from functools import lru_cache
from itertools import chain
from typing import TYPE_CHECKING, Any

from rstr.xeger import Xeger

from mockpoeti.base.errors import ApiError
from mockpoeti.base.regexes import SchemaPattern, SlowPatternError

if TYPE_CHECKING:
    from decimal import Decimal

# --- the bounds (per answer: the choices of one response share them) ----------
MAX_ITEMS = 100  # elements of one array (and entries of one map): a larger minItems is refused
MAX_STRING_LENGTH = 5000  # characters of one string: a larger minLength is refused
MAX_DEPTH = 10  # levels of nested arrays and objects (OpenAI's structured outputs allow 10)
MAX_NODES = 1000  # schema nodes visited to make one answer, backtracking included
MAX_OUTPUT_BYTES = 65536  # JSON text of one answer
MAX_PATTERN_LENGTH = 1000  # characters of one `pattern` (compiled patterns are cached: a bound keeps them small)
MAX_PATTERN_STEPS = 2000  # regex states expanded for all the `pattern` strings of one answer
PATTERN_DRAWS = 16  # seeded tries at a string that matches its pattern(s) and length bounds
MAX_PATTERN_SECONDS = 0.05  # checking strings against patterns RE2 cannot run (lookarounds), per answer
UNIQUE_DRAWS = 32  # tries at an array item that differs from the ones before it (uniqueItems)
SOFT_DEPTH = 4  # from this depth on, optional parts are left out, so recursive schemas end

TYPES = ("object", "array", "string", "integer", "number", "boolean", "null")
_ANNOTATIONS = frozenset({
    "title", "description", "default", "examples", "$comment", "$schema", "$id", "$defs", "definitions",
    "readOnly", "writeOnly", "deprecated", "discriminator", "strict", "name",
})
_OBJECT_KEYS = ("properties", "required", "additionalProperties", "minProperties", "maxProperties", "patternProperties")
_ARRAY_KEYS = ("items", "prefixItems", "minItems", "maxItems", "uniqueItems")
_NUMBER_KEYS = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf")
_STRING_KEYS = ("minLength", "maxLength", "pattern", "format")

# Which pool of realistic strings a field gets, by a word in its name, when no constraint says more.
NAMED_STRINGS = {
    "city": "city", "location": "city", "country": "country", "name": "name",
    "email": "email", "address": "address", "company": "company", "url": "url",
    "date": "date", "time": "time", "phone": "phone_number", "query": "sentence",
    "text": "sentence", "title": "sentence", "description": "sentence",
}

Pools = Callable[[str], Sequence[str]]  # provider name -> realistic strings (Faker's, made once)


class Budget:
    """What one answer may still spend. Shared by the choices and tool calls of a
    response, each given its share, so a request's total work is bounded."""

    __slots__ = ("bytes", "nodes", "seconds", "steps")

    def __init__(self, share: int = 1) -> None:
        share = max(1, share)
        self.nodes = MAX_NODES // share
        self.bytes = MAX_OUTPUT_BYTES // share
        self.steps = MAX_PATTERN_STEPS // share
        self.seconds = MAX_PATTERN_SECONDS / share


class _Dead(Exception):
    """This branch gives no value (unsatisfiable, too deep, a $ref cycle, past a
    bound): another `anyOf` branch or `type` may; if none does, it is the answer."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(message)
        self.path, self.message = path, message


class _Spent(Exception):
    """The answer's budget ran out: nothing else is tried."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(message)
        self.path, self.message = path, message


def generate(schema: object, rnd: random.Random, pools: Pools, where: str, budget: Budget | None = None) -> object:
    """A value valid against `schema`, drawn with `rnd`; `where` names the schema
    in error messages (`response_format.json_schema.schema`, `tools[0].function.parameters`).

    Raises `ApiError("invalid_request")` naming the path when the schema is not
    a schema, cannot be satisfied, or needs more than the bounds allow.
    """
    gen = _Generator(schema, rnd, pools, budget or Budget(), where)
    try:
        return gen.value(schema, where, 0, "value")
    except (_Dead, _Spent) as e:
        raise ApiError("invalid_request", f"Invalid schema at '{e.path}': {e.message}.") from None
    except RecursionError:  # a schema nested deeper than Python's stack: refused, not a 500
        raise ApiError("invalid_request", f"Invalid schema at '{where}': nested too deeply to generate a value.") from None


def _bad(path: str, expected: str) -> ApiError:
    return ApiError("invalid_request", f"Invalid schema at '{path}': expected {expected}.")


class _Generator:
    def __init__(self, root: object, rnd: random.Random, pools: Pools, budget: Budget, where: str) -> None:
        self.root = root
        self.where = where
        self.rnd = rnd
        self.pools = pools
        self.budget = budget
        self.initial_nodes = budget.nodes

    # --- bookkeeping ---------------------------------------------------------

    def tick(self, path: str) -> None:
        self.budget.nodes -= 1
        if self.budget.nodes < 0:
            raise _Spent(path, f"a value needs more than {MAX_NODES} schema nodes (MAX_NODES, shared by the answer's choices)")

    def spend(self, size: int, path: str) -> None:
        self.budget.bytes -= size
        if self.budget.bytes < 0:
            raise _Spent(
                path, f"a value is longer than {MAX_OUTPUT_BYTES} bytes of JSON (MAX_OUTPUT_BYTES, shared by the choices)"
            )

    def terse(self, depth: int) -> bool:
        """Leave optional parts out: deep in a recursion, or when the budget runs low."""
        return depth >= SOFT_DEPTH or self.budget.nodes < self.initial_nodes // 4

    # --- schemas -------------------------------------------------------------

    def resolve(self, schema: object, path: str, refs: tuple[str, ...]) -> tuple[dict, str, tuple[str, ...]]:
        """Follow `$ref` and merge `allOf`, until a schema that says what to generate."""
        self.tick(path)
        if schema is True:
            return {}, path, refs
        if schema is False:
            raise _Dead(path, "the schema `false` admits no value")
        if not isinstance(schema, dict):
            raise _bad(path, "a JSON Schema (an object or a boolean)")
        if "$ref" in schema:
            ref = schema["$ref"]
            if not isinstance(ref, str) or not ref.startswith("#"):
                raise _bad(path + ".$ref", "a local reference such as '#/$defs/Name'")
            if ref in refs:
                raise _Dead(path + ".$ref", f"'{ref}' refers back to itself without ever giving a value")
            target, target_path = self.pointer(ref, path + ".$ref")
            resolved, where, refs = self.resolve(target, target_path, (*refs, ref))
            rest = {k: v for k, v in schema.items() if k != "$ref" and k not in _ANNOTATIONS}
            if not rest:
                return resolved, where, refs
            schema = {"allOf": [resolved, rest]}
        if "allOf" in schema:
            parts = schema["allOf"]
            if not isinstance(parts, list) or not parts:
                raise _bad(path + ".allOf", "a non-empty array of schemas")
            merged = {k: v for k, v in schema.items() if k != "allOf"}
            for i, part in enumerate(parts):
                resolved, _, refs = self.resolve(part, f"{path}.allOf[{i}]", refs)
                merged = _merge(merged, resolved)
            return merged, path, refs
        return schema, path, refs

    def target(self, schema: object) -> object:
        """Where a branch's `$ref` chain leads (a few steps, no bookkeeping): enough to rank it.
        A reference that leads nowhere is left as it is, for `value` to report."""
        for _ in range(8):
            if not (isinstance(schema, dict) and isinstance(schema.get("$ref"), str) and schema["$ref"].startswith("#")):
                break
            try:
                schema, _ = self.pointer(schema["$ref"], self.where)
            except ApiError:
                break
        return schema

    def pointer(self, ref: str, path: str) -> tuple[object, str]:
        """The schema a local `$ref` points at, and its path (`….schema.$defs.Node`)."""
        target: object = self.root
        where = self.where
        for raw in ref[1:].split("/")[1:] if ref != "#" else ():
            part = raw.replace("~1", "/").replace("~0", "~")
            if isinstance(target, dict) and part in target:
                target, where = target[part], f"{where}.{part}"
            elif isinstance(target, list) and part.isdigit() and int(part) < len(target):
                target, where = target[int(part)], f"{where}[{part}]"
            else:
                raise _bad(path, f"a reference to a schema in this document ('{ref}' leads nowhere)")
        return target, where

    # --- values --------------------------------------------------------------

    def value(self, schema: object, path: str, depth: int, name: str, refs: tuple[str, ...] = ()) -> Any:
        s, path, refs = self.resolve(schema, path, refs)
        if "const" in s:
            if not self.admits(s, s["const"], path):
                raise _Dead(path + ".const", "the constant does not satisfy the schema's other keywords")
            self.spend(len(_json(s["const"])), path)
            return _copy(s["const"])
        if "enum" in s:
            return self.enum(s, path)
        for combo in ("anyOf", "oneOf"):
            if combo in s:
                return self.branches(s, combo, path, depth, name, refs)
        kinds = self.types(s, path)
        if len(kinds) == 1:
            return self.typed(kinds[0], s, path, depth, name)
        if not kinds:
            raise _Dead(path + ".type", "no type satisfies every part of the schema")
        if self.terse(depth):
            kinds.sort(key=lambda k: k != "null")
        else:  # as for `anyOf`: what a model would write
            kinds.sort(key=lambda k: _preference({**s, "type": k}))
        first: _Dead | None = None
        for kind in kinds:
            try:
                return self.typed(kind, s, path, depth, name)
            except _Dead as e:
                first = first or e
        assert first is not None  # there was at least one to try
        raise first

    def enum(self, s: dict, path: str) -> Any:
        values = s["enum"]
        if not isinstance(values, list):
            raise _bad(path + ".enum", "an array")
        allowed = [v for v in values if self.admits(s, v, path)]
        if not allowed:
            raise _Dead(path + ".enum", "no value of the enum satisfies the schema's other keywords")
        value = allowed[self.rnd.randrange(len(allowed))]
        self.spend(len(_json(value)), path)
        return _copy(value)

    def admits(self, s: dict, value: object, path: str) -> bool:
        """Whether a given value (an enum's, a const) meets the schema's scalar keywords."""
        if "type" in s and not any(_is_type(value, k) for k in self.types(s, path)):
            return False
        if "enum" in s and "const" in s:
            if not isinstance(s["enum"], list):
                raise _bad(path + ".enum", "an array")
            if _unique_key(value) not in {_unique_key(v) for v in s["enum"]}:
                return False
        if isinstance(value, str):
            high = _count(s, "maxLength", path, None)
            return _count(s, "minLength", path, 0) <= len(value) and (high is None or len(value) <= high) and all(
                self.matches(p, value, path) for p in _patterns(s, path)
            )
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            low, high = _bounds(s, path)
            step = s.get("multipleOf")
            if step is not None:
                step = _positive(step, path + ".multipleOf")
            return (
                (low is None or (value > low[0] if low[1] else value >= low[0]))
                and (high is None or (value < high[0] if high[1] else value <= high[0]))
                and (step is None or _is_multiple(value, step))
            )
        return True

    def branches(self, s: dict, combo: str, path: str, depth: int, name: str, refs: tuple[str, ...]) -> Any:
        options = s[combo]
        if not isinstance(options, list) or not options:
            raise _bad(f"{path}.{combo}", "a non-empty array of schemas")
        rest = {k: v for k, v in s.items() if k != combo and k not in _ANNOTATIONS}
        order = list(range(len(options)))
        if self.terse(depth):  # end recursions: the simplest branch first
            order.sort(key=lambda i: _weight(options[i]))
        else:  # a real answer: the branch a model would take (stable: the schema's order breaks ties)
            order.sort(key=lambda i: _preference(self.target(options[i])))
        first: _Dead | None = None
        for i in order:
            branch = options[i] if not rest else {"allOf": [options[i], rest]}
            try:
                return self.value(branch, f"{path}.{combo}[{i}]", depth, name, refs)
            except _Dead as e:
                first = first or e
        assert first is not None  # there was at least one to try
        raise first

    def types(self, s: dict, path: str) -> list[str]:
        kind = s.get("type")
        if kind is None:
            return [_inferred_type(s)]
        kinds = [kind] if isinstance(kind, str) else kind
        if not isinstance(kinds, list) or not all(isinstance(k, str) and k in TYPES for k in kinds):
            raise _bad(path + ".type", "one of " + ", ".join(TYPES) + " or an array of them")
        return list(dict.fromkeys(kinds))

    def typed(self, kind: str, s: dict, path: str, depth: int, name: str) -> Any:
        if kind == "object":
            return self.object(s, path, depth)
        if kind == "array":
            return self.array(s, path, depth, name)
        if kind == "string":
            text = self.string(s, path, name)
            self.spend(len(text.encode()) + 2, path)
            return text
        if kind in ("integer", "number"):
            number = self.integer(s, path) if kind == "integer" else self.number(s, path)
            self.spend(len(repr(number)), path)
            return number
        self.spend(5, path)
        return None if kind == "null" else self.rnd.random() < 0.5

    def shuffled(self, items: list, last: object) -> list:
        out = list(items)
        self.rnd.shuffle(out)
        return sorted(out, key=lambda x: x == last) if last is not None else out

    # --- containers ----------------------------------------------------------

    def object(self, s: dict, path: str, depth: int) -> dict:
        if depth >= MAX_DEPTH:
            raise _Dead(path, f"a value needs more than {MAX_DEPTH} levels of nesting (MAX_DEPTH)")
        props = s.get("properties", {})
        if not isinstance(props, dict):
            raise _bad(path + ".properties", "an object of schemas")
        required = s.get("required", [])
        if not isinstance(required, list) or not all(isinstance(r, str) for r in required):
            raise _bad(path + ".required", "an array of property names")
        extra = s.get("additionalProperties", True)
        if not isinstance(extra, (bool, dict)):
            raise _bad(path + ".additionalProperties", "a boolean or a schema")
        low = _count(s, "minProperties", path, 0)
        high = _count(s, "maxProperties", path, None)
        if low > MAX_ITEMS:
            raise _Dead(path + ".minProperties", f"{low} properties is more than mockpoeti generates (MAX_ITEMS: {MAX_ITEMS})")
        needed = list(dict.fromkeys(required))
        if high is not None and len(needed) > high:
            raise _Dead(path + ".maxProperties", f"{len(needed)} properties are required but at most {high} allowed")
        terse = self.terse(depth)
        if terse and len(needed) >= low:
            keys = needed  # the required ones only: work in proportion to what is written
        else:
            wanted = set(needed)
            optional = [k for k in props if k not in wanted]
            chosen = [] if terse else [k for k in optional if depth == 0 or self.rnd.random() < 0.6]
            if len(needed) + len(chosen) < low:  # minProperties: the named ones first
                taken = set(chosen)
                chosen += [k for k in optional if k not in taken][: low - len(needed) - len(chosen)]
            if high is not None:
                chosen = chosen[: high - len(needed)]
            wanted.update(chosen)
            keys = [k for k in props if k in wanted] + [k for k in needed if k not in props]
        out: dict = {}
        self.spend(2, path)
        for key in keys:
            sub = props.get(key, extra if isinstance(extra, dict) else True)
            where = f"{path}.properties.{key}" if key in props else f"{path}.additionalProperties"
            self.spend(len(key.encode()) + 4, where)
            out[key] = self.value(sub, where, depth + 1, key)
        # maps (dict[str, X]) and minProperties: entries beyond the named properties
        if extra is not False and (not props or len(out) < low):
            count = low if terse else max(low, self.rnd.randint(1, 2) if not props and isinstance(extra, dict) else low)
            if high is not None:
                count = min(count, high)
            words = self.pools("word")
            while len(out) < count:
                key = f"{words[self.rnd.randrange(len(words))]}_{len(out) + 1}"
                self.spend(len(key.encode()) + 4, path)
                out[key] = self.value(extra, f"{path}.additionalProperties", depth + 1, key)
        if len(out) < low:
            raise _Dead(path + ".minProperties", f"at least {low} properties are needed but additionalProperties is false")
        return out

    def array(self, s: dict, path: str, depth: int, name: str) -> list:
        if depth >= MAX_DEPTH:
            raise _Dead(path, f"a value needs more than {MAX_DEPTH} levels of nesting (MAX_DEPTH)")
        prefix = s.get("prefixItems", [])
        items = s.get("items", True)
        if isinstance(items, list):  # draft 4 tuples
            prefix, items = items, s.get("additionalItems", True)
        if not isinstance(prefix, list):
            raise _bad(path + ".prefixItems", "an array of schemas")
        if not isinstance(items, (bool, dict)):
            raise _bad(path + ".items", "a schema")
        low = _count(s, "minItems", path, 0)
        high = _count(s, "maxItems", path, None)
        if low > MAX_ITEMS:
            raise _Dead(path + ".minItems", f"{low} items is more than mockpoeti generates (MAX_ITEMS: {MAX_ITEMS} per array)")
        if items is False:
            high = len(prefix) if high is None else min(high, len(prefix))
        if high is not None and low > high:
            raise _Dead(path + ".minItems", f"minItems {low} is above the {high} items allowed")
        size = low if self.terse(depth) else max(low, self.rnd.randint(1, 3))
        if high is not None:
            size = min(size, high)
        unique = s.get("uniqueItems", False)
        if not isinstance(unique, bool):
            raise _bad(path + ".uniqueItems", "a boolean")
        out: list = []
        seen: set[str] = set()
        self.spend(2, path)
        for i in range(size):
            sub, where = (prefix[i], f"{path}.prefixItems[{i}]") if i < len(prefix) else (items, f"{path}.items")
            item = self.value(sub, where, depth + 1, name)
            if unique:
                for _ in range(UNIQUE_DRAWS):
                    if _unique_key(item) not in seen:
                        break
                    item = self.value(sub, where, depth + 1, name)
                else:
                    if len(out) >= low:
                        break
                    raise _Dead(path + ".uniqueItems", f"no {low} distinct items found in {UNIQUE_DRAWS} draws each")
                seen.add(_unique_key(item))
            out.append(item)
            self.spend(1, where)
        return out

    # --- scalars -------------------------------------------------------------

    def string(self, s: dict, path: str, name: str) -> str:
        low = _count(s, "minLength", path, 0)
        high = _count(s, "maxLength", path, None)
        if low > MAX_STRING_LENGTH:
            raise _Dead(
                path + ".minLength", f"{low} characters is more than mockpoeti generates (MAX_STRING_LENGTH: {MAX_STRING_LENGTH})"
            )
        if high is not None and low > high:
            raise _Dead(path + ".minLength", f"minLength {low} is above maxLength {high}")
        if low > self.budget.bytes:  # it could not be written out anyway: refuse before making it
            self.spend(low, path)
        patterns = _patterns(s, path)
        fmt = s.get("format")
        if fmt is not None and not isinstance(fmt, str):
            raise _bad(path + ".format", "a string")
        maker = _FORMATS.get(fmt or "")
        if not patterns and maker is None:
            return self.plain(name, low, high)
        def fits(text: str) -> bool:
            return low <= len(text) <= (high if high is not None else MAX_STRING_LENGTH) and all(
                self.matches(p, text, path) for p in patterns
            )

        for draw in range(PATTERN_DRAWS):
            text = maker(self) if maker is not None else self.xeger(patterns[0].pattern, path, low, high, draw)
            if fits(text):
                return text
        if patterns:
            top = high if high is not None else MAX_STRING_LENGTH
            bounds = f" with {low} to {top} characters" if low or high is not None else ""
            message = f"no string matching {patterns[0].pattern!r}{bounds} found in {PATTERN_DRAWS} seeded draws"
            raise _Dead(path + ".pattern", message)
        raise _Dead(path + ".format", f"no '{fmt}' string with {low} to {high} characters")

    def plain(self, name: str, low: int, high: int | None) -> str:
        """A realistic string for the field's name, cut or lengthened to fit."""
        lowered = name.lower()
        provider = next((p for word, p in NAMED_STRINGS.items() if word in lowered), "word")
        pool = self.pools(provider)
        for _ in range(4):
            text = pool[self.rnd.randrange(len(pool))]
            if low <= len(text) <= (high if high is not None else len(text)):
                return text
        if len(text) < low:
            words = self.pools("word")
            more = self.rnd.choices(words, k=(low - len(text)) // 4 + 1)  # words are at least 3 letters and a space
            text = " ".join([text, *more])
        if high is not None and len(text) > high:
            text = text[:high]
            if len(text.rstrip()) >= low:
                text = text.rstrip()
        return text

    def matches(self, pattern: SchemaPattern, text: str, path: str) -> bool:
        """Does `text` match? RE2 is linear; a pattern only `regex` can run gets what is left of
        the answer's MAX_PATTERN_SECONDS, for a text of at most MAX_BACKTRACKING_TEXT characters."""
        try:
            found, took = pattern.search(text, self.budget.seconds)
        except SlowPatternError as e:
            raise _Spent(
                path + ".pattern",
                f"{pattern.pattern!r} needs a backtracking engine (lookarounds or backreferences), and {e.reason} "
                f"(MAX_PATTERN_SECONDS: {MAX_PATTERN_SECONDS * 1000:g} ms per answer)",
            ) from None
        self.budget.seconds -= took
        return found

    def xeger(self, pattern: str, path: str, low: int, high: int | None, draw: int) -> str:
        """One draw from the pattern; open repeats (`*`, `+`, `{n,}`) are kept short,
        shorter on each retry, aimed at the length bounds."""
        target = self.rnd.randint(low, min(high if high is not None else low + 16, low + 16))
        cap = max(0, target >> (draw // 3)) if draw % 3 != 2 else 8
        xeger = _BoundedXeger(self.rnd, cap, self.budget.steps, path + ".pattern")
        try:
            return xeger.build(_parsed(pattern))
        except (KeyError, IndexError, ValueError, TypeError):  # a construct rstr cannot draw: this draw fails the check
            return ""
        finally:
            self.budget.steps = xeger.steps

    def integer(self, s: dict, path: str) -> int:
        low, high = _bounds(s, path)
        # the integers inside: past an exclusive bound that is itself an integer, one step in
        lo = None if low is None else math.floor(low[0]) + 1 if low[1] and low[0] == int(low[0]) else math.ceil(low[0])
        hi = None if high is None else math.ceil(high[0]) - 1 if high[1] and high[0] == int(high[0]) else math.floor(high[0])
        lo, hi = _window(lo, hi, 1, 100)
        step = s.get("multipleOf")
        if step is not None:
            step = _positive(step, path + ".multipleOf")
            # k * p/q is an integer exactly when k is a multiple of q: integers that are multiples of p
            step = _decimal(step).as_integer_ratio()[0] if isinstance(step, float) else step
            first, last = -((-lo) // step), hi // step
            if first > last:
                raise _Dead(path + ".multipleOf", f"no multiple of {s['multipleOf']} between {lo} and {hi}")
            return int(step * self.rnd.randint(first, min(last, first + 1000)))
        if lo > hi:
            raise _Dead(path + ".minimum", f"no integer between {lo} and {hi}")
        return self.rnd.randint(lo, hi)

    def number(self, s: dict, path: str) -> float | int:
        low, high = _bounds(s, path)

        def inside(x: float) -> bool:
            return (low is None or (x > low[0] if low[1] else x >= low[0])) and (
                high is None or (x < high[0] if high[1] else x <= high[0])
            )

        lo, hi = _window(None if low is None else low[0], None if high is None else high[0], 0.0, 100.0)
        if lo > hi or (lo == hi and not inside(lo)):
            raise _Dead(path + ".minimum", f"no number between {lo} and {hi}")
        step = s.get("multipleOf")
        if step is not None:
            step = _positive(step, path + ".multipleOf")
            exact = _decimal(step)
            if not (math.isfinite(lo / step) and math.isfinite(hi / step)):
                raise _Dead(path + ".multipleOf", f"multiples of {step} between {lo} and {hi} are past floating point")
            first, last = math.ceil(lo / step), math.floor(hi / step)
            # a multiple whose quotient is exact in floating point, as validators compute it (0.3 / 0.1 is not 3)
            if last - first <= 64:
                candidates = self.shuffled(list(range(first, last + 1)), last=None)
            else:
                candidates = [self.rnd.randint(first, last) for _ in range(32)]
                candidates += [k for k in (0, first, last) if first <= k <= last]
            for k in candidates:
                x = float(exact * k)
                if inside(x) and _is_multiple(x, step):
                    return int(x) if isinstance(step, int) else x
            raise _Dead(path + ".multipleOf", f"no multiple of {step} found between {lo} and {hi}")
        for _ in range(8):
            x = self.rnd.uniform(lo, hi)
            rounded = round(x, 2)
            if inside(rounded):
                return rounded
            if inside(x):
                return x
        middle = lo / 2 + hi / 2
        if inside(middle):
            return middle
        raise _Dead(path + ".minimum", f"no number found between {lo} and {hi}")


# --- formats -------------------------------------------------------------------

def _date(g: _Generator) -> str:
    rnd = g.rnd
    return f"{rnd.randint(2000, 2030):04d}-{rnd.randint(1, 12):02d}-{rnd.randint(1, 28):02d}"


def _time(g: _Generator) -> str:
    rnd = g.rnd
    return f"{rnd.randint(0, 23):02d}:{rnd.randint(0, 59):02d}:{rnd.randint(0, 59):02d}Z"


def _duration(g: _Generator) -> str:
    rnd = g.rnd
    return f"P{rnd.randint(0, 30)}DT{rnd.randint(0, 23)}H{rnd.randint(0, 59)}M{rnd.randint(0, 59)}S"


def _ipv4(g: _Generator) -> str:
    rnd = g.rnd
    return f"{rnd.randint(1, 223)}.{rnd.randint(0, 255)}.{rnd.randint(0, 255)}.{rnd.randint(1, 254)}"


def _ipv6(g: _Generator) -> str:
    return "2001:db8:" + ":".join(format(g.rnd.randrange(65536), "x") for _ in range(6))


def _uuid(g: _Generator) -> str:
    """A version 4 UUID (the version nibble 4, the variant bits 10)."""
    h = format(g.rnd.getrandbits(122), "031x")
    return f"{h[:8]}-{h[8:12]}-4{h[12:15]}-{'89ab'[int(h[15], 16) & 3]}{h[16:19]}-{h[19:31]}"


def _pooled(provider: str) -> Callable[[_Generator], str]:
    def make(g: _Generator) -> str:
        pool = g.pools(provider)
        return pool[g.rnd.randrange(len(pool))]

    return make


def _email(g: _Generator) -> str:
    names = g.pools("user_name")
    local = re.sub(r"\.+", ".", re.sub(r"[^a-z0-9.]", "", names[g.rnd.randrange(len(names))].lower())).strip(".")
    return f"{local or 'user'}@example.com"


_FORMATS: dict[str, Callable[[_Generator], str]] = {
    "date-time": lambda g: f"{_date(g)}T{_time(g)}",
    "date": _date,
    "time": _time,
    "duration": _duration,
    "email": _email,
    "idn-email": _email,
    "hostname": _pooled("hostname"),
    "idn-hostname": _pooled("hostname"),
    "ipv4": _ipv4,
    "ipv6": _ipv6,
    "ipvanyaddress": _ipv4,
    "ipvanyinterface": lambda g: _ipv4(g) + "/24",
    "ipvanynetwork": lambda g: _ipv4(g).rsplit(".", 1)[0] + ".0/24",
    "uri": _pooled("url"),
    "iri": _pooled("url"),
    "uri-reference": _pooled("url"),
    "iri-reference": _pooled("url"),
    "uuid": _uuid,
    "json-pointer": lambda g: "/" + _pooled("word")(g),
    "relative-json-pointer": lambda g: "0/" + _pooled("word")(g),
    "regex": lambda g: "^[a-z]+$",
}


# --- patterns ------------------------------------------------------------------

class _BoundedXeger(Xeger):
    """rstr's xeger with bounds: it raises on `{n}` past 100 and would expand
    nested repeats without limit; here open repeats get at most `cap` extra
    turns, every state costs a step of the answer's budget, and a string
    longer than MAX_STRING_LENGTH stops the draw. Negated classes draw from a
    sorted alphabet (rstr's come from a set, whose order changes per process)."""

    def __init__(self, rnd: random.Random, cap: int, steps: int, path: str) -> None:
        super().__init__(rnd, nonword="".join(sorted(set(string.printable) - set(string.ascii_letters + string.digits + "_"))))
        self.cap, self.steps, self.path, self.produced = cap, steps, path, 0
        self._cases = {
            **self._cases,
            "in": self._pick_in,
            "atomic_group": lambda x: "".join(self._handle_state(i) for i in x),
            "possessive_repeat": lambda x: self._handle_repeat(*x),
        }
        # RE2 checks the draws, and its `\s` leaves out the vertical tab that rstr's draws from
        self._categories = {**self._categories, "category_space": lambda: " \t\n\r\x0c"}

    def build(self, parsed: Any) -> str:
        return self._build_string(parsed)

    def _handle_state(self, state: Any) -> Any:
        self.steps -= 1
        if self.steps < 0:
            raise _Spent(self.path, f"the patterns need more than {MAX_PATTERN_STEPS} regex steps (MAX_PATTERN_STEPS)")
        return super()._handle_state(state)

    def _alphabet(self, value: Any) -> list[str]:
        candidates = list(chain(*(self._handle_state(i) for i in value)))
        if candidates and candidates[0] is False:
            return sorted(set(string.printable) - set(candidates[1:]))
        return candidates

    def _pick_in(self, value: Any) -> str:
        return self._random.choice(self._alphabet(value))

    def _handle_repeat(self, start_range: int, end_range: int, value: Any) -> str:
        if start_range > MAX_STRING_LENGTH:
            raise _Dead(self.path, f"a repeat of {start_range} is longer than MAX_STRING_LENGTH ({MAX_STRING_LENGTH})")
        times = self._random.randint(start_range, min(end_range, start_range + self.cap))
        if len(value) == 1 and value[0][0].name.lower() in ("in", "category", "literal", "any"):
            op, arg = value[0]
            op = op.name.lower()
            self.steps -= 1 + times // 16
            if op == "literal":
                text = chr(arg) * times
            else:
                alphabet = self._alphabet(arg) if op == "in" else None
                if op == "category":
                    alphabet = list(self._categories[arg.name.lower()]())
                elif op == "any":
                    alphabet = [c for c in string.printable if c != "\n"]
                text = "".join(self._random.choices(alphabet or ["a"], k=times))
            self.grow(len(text))
            return text
        pieces = []
        for _ in range(times):
            piece = "".join(self._handle_state(i) for i in value)
            self.grow(len(piece))
            pieces.append(piece)
        return "".join(pieces)

    def grow(self, n: int) -> None:
        self.produced += n
        if self.produced > MAX_STRING_LENGTH * 2:
            raise _Dead(self.path, f"the pattern makes strings longer than MAX_STRING_LENGTH ({MAX_STRING_LENGTH})")


_NAMED_GROUP = re.compile(r"\(\?<(?=[A-Za-z_])")  # ECMA-262 `(?<name>` is Python's `(?P<name>`


@lru_cache(maxsize=256)
def _compiled(pattern: str) -> SchemaPattern | None:
    """The pattern, if `re` can read it (xeger draws from `re`'s parse): RE2 runs it, or `regex`."""
    python = _NAMED_GROUP.sub("(?P<", pattern)
    try:
        re.compile(python)
        return SchemaPattern(python)
    except (re.error, OverflowError, RecursionError):
        return None


@lru_cache(maxsize=256)
def _parsed(pattern: str) -> Any:
    import re._parser as sre_parse  # type: ignore[import-not-found]

    return sre_parse.parse(pattern)


def _patterns(s: dict, path: str) -> list[SchemaPattern]:
    out = []
    for where, pattern in (("pattern", s.get("pattern")), *(("allOf", p) for p in s.get("_patterns", ()))):
        if pattern is None:
            continue
        if not isinstance(pattern, str):
            raise _bad(f"{path}.{where}", "a regular expression (a string)")
        if len(pattern) > MAX_PATTERN_LENGTH:
            raise _bad(f"{path}.{where}", f"a regular expression of at most {MAX_PATTERN_LENGTH} characters (MAX_PATTERN_LENGTH)")
        compiled = _compiled(pattern)
        if compiled is None:
            raise _bad(f"{path}.{where}", f"a regular expression; {pattern!r} is not one mockpoeti can read")
        out.append(compiled)
    return out


# --- helpers -------------------------------------------------------------------

def _count(s: dict, key: str, path: str, default: int | None) -> Any:
    value = s.get(key)
    if value is None:
        return default
    if isinstance(value, float) and value.is_integer() and math.isfinite(value):
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _bad(f"{path}.{key}", "a non-negative integer")
    return value


def _number_at(s: dict, key: str, path: str) -> float | int | None:
    value = s.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise _bad(f"{path}.{key}", "a number")
    return value


def _decimal(step: float | int) -> Decimal:
    """The decimal that a multipleOf step is written as (0.1, not 0.1000000000000000055...)."""
    from decimal import Decimal  # with the first `multipleOf` (decimal is ~2 ms of a start)

    return Decimal(repr(step))


def _positive(value: object, path: str) -> float | int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise _bad(path, "a number above 0")
    return value


def _bounds(s: dict, path: str) -> tuple[tuple[float, bool] | None, tuple[float, bool] | None]:
    """(bound, exclusive) below and above, from 2020-12's numbers or draft 4's booleans."""
    out = []
    for inclusive, exclusive in (("minimum", "exclusiveMinimum"), ("maximum", "exclusiveMaximum")):
        edge = _number_at(s, inclusive, path)
        flag = s.get(exclusive)
        if isinstance(flag, bool):
            out.append(None if edge is None else (edge, flag))
            continue
        strict = _number_at(s, exclusive, path)
        bound = None if edge is None else (edge, False)
        if strict is not None and (bound is None or (strict >= bound[0] if inclusive == "minimum" else strict <= bound[0])):
            bound = (strict, True)
        out.append(bound)
    return out[0], out[1]


def _window(lo: Any, hi: Any, low: Any, high: Any) -> tuple[Any, Any]:
    """The range to draw from: the bounds given, completed around the default window."""
    if lo is None and hi is None:
        return low, high
    if lo is None:
        return (low if hi >= low else hi - (high - low)), hi
    if hi is None:
        return lo, (high if lo <= high else lo + (high - low))
    return lo, hi


def _inferred_type(s: dict) -> str:
    if any(k in s for k in _OBJECT_KEYS):
        return "object"
    if any(k in s for k in _ARRAY_KEYS):
        return "array"
    if any(k in s for k in _NUMBER_KEYS):
        return "number"
    return "string"


def _is_type(value: object, kind: str) -> bool:
    if kind == "integer":
        return (isinstance(value, int) and not isinstance(value, bool)) or (isinstance(value, float) and value.is_integer())
    if kind == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    expected = {"object": dict, "array": list, "string": str, "boolean": bool, "null": type(None)}[kind]
    return isinstance(value, expected)


def _preference(schema: object) -> int:
    """Which union branch (`anyOf`, `oneOf`, a `type` list) a model would answer with, lowest
    first: a literal, then a structure, an integer or a boolean, then any number, then a
    string with constraints, then a free string, and `null` last. A model asked for pydantic's
    `Decimal` (`anyOf: [number, string]`) writes a number; a free string would be a word that
    validates against the schema and fails the model (`Decimal('personal')`)."""
    if not isinstance(schema, dict):
        return 1
    if "const" in schema or "enum" in schema:
        return 0
    kind = schema.get("type")
    if isinstance(kind, list):  # its own preference decides inside; rank it by its best
        return min((_preference({**schema, "type": k}) for k in kind if isinstance(k, str)), default=1)
    if kind == "null":
        return 5
    if kind == "number":
        return 2
    if kind == "string" or (kind is None and set(schema) <= {*_ANNOTATIONS, *_STRING_KEYS}):  # `{}` is a string too
        return 3 if any(k in schema for k in _STRING_KEYS) else 4
    return 1


def _weight(schema: object) -> int:
    """How likely a branch is to end a recursion: null, then scalars, then the rest."""
    if not isinstance(schema, dict):
        return 1
    if schema.get("type") == "null":
        return 0
    if "$ref" in schema or any(k in schema for k in (*_OBJECT_KEYS, *_ARRAY_KEYS, "anyOf", "oneOf", "allOf")):
        return 2
    return 1


_LOWER = ("minimum", "minLength", "minItems", "minProperties")
_UPPER = ("maximum", "maxLength", "maxItems", "maxProperties")


def _merge(a: dict, b: dict) -> dict:
    """Both schemas at once (`allOf`), for the keywords generation looks at."""
    out = dict(a)
    for key, value in b.items():
        if key not in out:
            out[key] = value
            continue
        mine = out[key]
        if key == "properties" and isinstance(mine, dict) and isinstance(value, dict):
            out[key] = {**mine, **{k: ({"allOf": [mine[k], v]} if k in mine else v) for k, v in value.items()}}
        elif key == "required" and isinstance(mine, list) and isinstance(value, list):
            out[key] = list(dict.fromkeys([*mine, *value]))
        elif key in _LOWER and _numeric(mine) and _numeric(value):
            out[key] = max(mine, value)
        elif key in _UPPER and _numeric(mine) and _numeric(value):
            out[key] = min(mine, value)
        elif key == "type":
            mine_list = [mine] if isinstance(mine, str) else mine
            theirs = [value] if isinstance(value, str) else value
            if isinstance(mine_list, list) and isinstance(theirs, list):
                both = [t for t in mine_list if t in theirs or (t == "integer" and "number" in theirs)]
                both += [t for t in theirs if t == "integer" and "number" in mine_list and t not in both]
                out[key] = both
        elif key == "enum" and isinstance(mine, list) and isinstance(value, list):
            theirs_keys = {_unique_key(v) for v in value}
            out[key] = [v for v in mine if _unique_key(v) in theirs_keys]
        elif key == "additionalProperties":
            out[key] = False if mine is False or value is False else mine
        elif key == "items" and isinstance(mine, dict) and isinstance(value, dict):
            out[key] = {"allOf": [mine, value]}
        elif key in ("anyOf", "oneOf") and isinstance(mine, list) and isinstance(value, list):
            out[key] = [{"allOf": [branch, {key: value}]} for branch in mine]
        elif key == "pattern" and value != mine:
            out["_patterns"] = [*out.get("_patterns", ()), value]
        elif key == "const" and _unique_key(mine) != _unique_key(value):
            out["enum"] = []  # two different constants: nothing satisfies both
    return out


def _is_multiple(value: float | int, step: float | int) -> bool:
    """As validators check it: the quotient is a whole number (in floating point for floats)."""
    if isinstance(value, int) and isinstance(step, int):
        return value % step == 0
    quotient = value / step
    return math.isfinite(quotient) and quotient == int(quotient)


def _numeric(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _unique_key(value: object) -> str:
    """Equality as JSON Schema's uniqueItems sees it: 1 == 1.0, true != 1."""

    def norm(v: object) -> object:
        if isinstance(v, float) and v.is_integer():
            return int(v)
        if isinstance(v, list):
            return [norm(x) for x in v]
        if isinstance(v, dict):
            return {k: norm(x) for k, x in v.items()}
        return v

    return json.dumps(norm(value), sort_keys=True)


def _json(value: object) -> str:
    return json.dumps(value, ensure_ascii=False)


def _copy(value: Any) -> Any:
    return json.loads(json.dumps(value))
