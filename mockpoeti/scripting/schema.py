"""A small vocabulary of types that both validate parsed YAML and print JSON Schema.

One description serves `mockpoeti validate` and the published schema, so the
two can never disagree. Every problem is reported, with the file's line and
the dotted path of the field, and a "did you mean" for near-miss spellings.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import yaml

# --- YAML that remembers where things were --------------------------------------
# PyYAML is imported by the first file read, not with this module: a server that reads
# no scenario file (stubs come as JSON) never loads it (yamlfiles.py reads the fixtures).

class LineDict(dict):
    """A mapping from YAML that knows the line of each key (1-based)."""

    line = 1
    key_lines: dict


class LineList(list):
    line = 1
    item_lines: list


@cache
def _loaders() -> tuple[type[yaml.SafeLoader], type[yaml.SafeLoader]]:
    """(libyaml's loader where PyYAML has it, PyYAML's own), both recording lines: made once."""
    import yaml

    class _LineLoader(yaml.SafeLoader):
        """SafeLoader (no !!python tags, ever) that records lines and refuses duplicate keys."""

    fast_base: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

    class _FastLineLoader(fast_base):  # type: ignore[misc,valid-type]  # libyaml's loader when PyYAML has it
        """The same over libyaml's parser, where PyYAML has it: a 1,000-rule file loads
        four times faster. Its syntax errors say less ("found character that cannot
        start any token"), so a file it refuses is read again by `_LineLoader`."""

    for loader in (_LineLoader, _FastLineLoader):
        loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)
        loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _sequence)
    return _FastLineLoader, _LineLoader


def _mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> LineDict:
    import yaml

    loader.flatten_mapping(node)
    out = LineDict()
    out.line, out.key_lines = node.start_mark.line + 1, {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, (str, int, float, bool)) and key is not None:
            raise yaml.constructor.ConstructorError(None, None, "a mapping key must be a plain value", key_node.start_mark)
        if key in out:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key '{key}'", key_node.start_mark)
        out[key] = loader.construct_object(value_node, deep=True)
        out.key_lines[key] = key_node.start_mark.line + 1
    return out


def _sequence(loader: yaml.SafeLoader, node: yaml.SequenceNode) -> LineList:
    out = LineList(loader.construct_object(child, deep=True) for child in node.value)
    out.line, out.item_lines = node.start_mark.line + 1, [child.start_mark.line + 1 for child in node.value]
    return out


MAX_YAML_DEPTH = 100  # levels of nesting in a scenario file (a JSON body may have as many)
MAX_YAML_NODES = 500_000  # values in a scenario file, each alias counted as what it stands for


class ShapeError(ValueError):
    """Valid YAML, but nested too deep or (through aliases) too large to build: `line` is where."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line, self.message = line, message


def load_with_lines(text: str) -> Any:
    """Parse YAML; raises yaml.YAMLError (with problem_mark) on bad syntax, ShapeError past the bounds."""
    import yaml

    check_shape(text)
    fast, thorough = _loaders()
    try:
        return yaml.load(text, Loader=fast)
    except yaml.YAMLError:
        return yaml.load(text, Loader=thorough)


def check_shape(text: str) -> None:
    """Refuse, before anything is built, YAML nested deeper than MAX_YAML_DEPTH (PyYAML builds
    recursively: 2,000 nested `[` were a RecursionError) or standing, through aliases, for more
    than MAX_YAML_NODES values (a billion laughs). One pass over libyaml's events, ~10 % of a
    load; libyaml calls 1,000 levels a syntax error, so then PyYAML's own parser says where.
    Other syntax errors are left to the load, which reports them better."""
    import yaml

    for loader in _loaders():
        try:
            _Shape().walk(yaml.parse(text, Loader=loader))
            return
        except yaml.YAMLError:
            continue


class _Shape:
    """How deep and how large a document is, counted on its parse events."""

    def __init__(self) -> None:
        self.open: list[list] = []  # per open collection: [values in it, levels in it, its anchor]
        self.anchors: dict[str, tuple[int, int]] = {}  # anchor -> (values, levels) of what it names

    def walk(self, events: Any) -> None:
        import yaml

        for event in events:
            if isinstance(event, yaml.CollectionStartEvent):
                self.add(0, 1, event)
                self.open.append([1, 1, event.anchor])
            elif isinstance(event, yaml.CollectionEndEvent):
                size, levels, anchor = self.open.pop()
                if anchor:
                    self.anchors[anchor] = (size, levels)
                self.add(size, levels, event)
            elif isinstance(event, yaml.ScalarEvent):
                if event.anchor:
                    self.anchors[event.anchor] = (1, 0)
                self.add(1, 0, event)
            elif isinstance(event, yaml.AliasEvent):
                self.add(*self.anchors.get(event.anchor or "", (1, 0)), event)

    def add(self, size: int, levels: int, event: Any) -> None:
        """A value of `size` values and `levels` levels, in the innermost open collection."""
        if len(self.open) + levels > MAX_YAML_DEPTH:
            raise ShapeError(event.start_mark.line + 1, f"nested more than {MAX_YAML_DEPTH} levels deep (MAX_YAML_DEPTH)")
        if self.open:
            parent = self.open[-1]
            parent[0] += size
            parent[1] = max(parent[1], levels + 1)
            if parent[0] > MAX_YAML_NODES:
                raise ShapeError(
                    event.start_mark.line + 1, f"stands for more than {MAX_YAML_NODES} values, aliases expanded (MAX_YAML_NODES)"
                )


# --- where a value sits, and what is wrong with it ---------------------------------

@dataclass
class Site:
    """Where a value sits in a file (line, dotted path), and the problems found so far."""

    file: str
    path: str = ""
    line: int = 1
    problems: list[str] = field(default_factory=list)
    context: dict = field(default_factory=dict)  # what checks may consult, e.g. the error codes

    def child(self, key: str | int, line: int | None = None) -> Site:
        path = f"{self.path}[{key}]" if isinstance(key, int) else (f"{self.path}.{key}" if self.path else str(key))
        return Site(self.file, path, line or self.line, self.problems, self.context)

    def fail(self, message: str) -> None:
        where = f"{self.path}: " if self.path else ""
        self.problems.append(f"{self.file}:{self.line}: {where}{message}")


def _show(value: Any) -> str:
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return str(value)


def did_you_mean(word: str, choices: list[str]) -> str:
    import difflib  # with the first refused value: most starts refuse none

    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f"did you mean '{close[0]}'? " if close else ""


# --- the types ---------------------------------------------------------------------

class Type:
    """A kind of value. `rule` is an extra check for what the kind cannot say
    (a regex compiles, a code is in the catalog), run once the kind is right."""

    description = ""
    rule: Callable[[Any, Site], None] | None = None

    def accepts(self, value: Any) -> bool:
        """Is this the right kind of value at all (used to pick a branch of OneOf)?"""
        raise NotImplementedError

    def check(self, value: Any, site: Site) -> None:
        if not self.accepts(value):
            site.fail(f"{_show(value)} is not {self.expected()}")
        else:
            self.check_value(value, site)
            if self.rule is not None:
                self.rule(value, site)

    def check_value(self, value: Any, site: Site) -> None:
        pass

    def checked_by(self, rule: Callable[[Any, Site], None]) -> Type:
        self.rule = rule
        return self

    def expected(self) -> str:
        raise NotImplementedError

    def schema(self) -> dict:
        raise NotImplementedError

    def described(self, text: str) -> Type:
        self.description = text
        return self

    def _with_description(self, out: dict) -> dict:
        if self.description:
            out["description"] = self.description
        return out


class Str(Type):
    def __init__(self, max_chars: int | None = None):
        self.max_chars = max_chars

    def accepts(self, value: Any) -> bool:
        return isinstance(value, str)

    def check_value(self, value: str, site: Site) -> None:
        if self.max_chars is not None and len(value) > self.max_chars:
            site.fail(f"{len(value)} characters; expected {self.expected()}")

    def expected(self) -> str:
        return "a string" if self.max_chars is None else f"a string of at most {self.max_chars} characters"

    def schema(self) -> dict:
        out: dict[str, Any] = {"type": "string"}
        if self.max_chars is not None:
            out["maxLength"] = self.max_chars
        return self._with_description(out)


class Bool(Type):
    def accepts(self, value: Any) -> bool:
        return isinstance(value, bool)

    def expected(self) -> str:
        return "true or false"

    def schema(self) -> dict:
        return self._with_description({"type": "boolean"})


class Num(Type):
    def __init__(self, low: float | None = None, high: float | None = None, integer: bool = False):
        self.low, self.high, self.integer = low, high, integer

    def accepts(self, value: Any) -> bool:
        kinds = int if self.integer else (int, float)
        return isinstance(value, kinds) and not isinstance(value, bool)

    def check_value(self, value: Any, site: Site) -> None:
        if (self.low is not None and value < self.low) or (self.high is not None and value > self.high):
            site.fail(f"{_show(value)} is out of range; expected {self.expected()}")

    def expected(self) -> str:
        kind = "an integer" if self.integer else "a number"
        def show(n: float) -> str:
            return str(int(n)) if self.integer or float(n).is_integer() else f"{n:g}"

        if self.low is not None and self.high is not None:
            return f"{kind} from {show(self.low)} to {show(self.high)}"
        if self.low is not None:
            return f"{kind} of at least {show(self.low)}"
        return kind

    def schema(self) -> dict:
        out: dict[str, Any] = {"type": "integer" if self.integer else "number"}
        if self.low is not None:
            out["minimum"] = self.low
        if self.high is not None:
            out["maximum"] = self.high
        return self._with_description(out)


def Int(low: int | None = None, high: int | None = None) -> Num:
    return Num(low, high, integer=True)


class Enum(Type):
    def __init__(self, values: tuple[str, ...], noun: str = "an accepted value"):
        self.values, self.noun = values, noun

    def accepts(self, value: Any) -> bool:
        return isinstance(value, str)

    def check_value(self, value: Any, site: Site) -> None:
        if value not in self.values:
            hint = did_you_mean(value, list(self.values))
            site.fail(f"{value!r} is not {self.noun}; {hint}expected one of {', '.join(self.values)}")

    def expected(self) -> str:
        return "one of " + ", ".join(self.values)

    def schema(self) -> dict:
        return self._with_description({"enum": list(self.values)})


class AnyValue(Type):
    def accepts(self, value: Any) -> bool:
        return True

    def expected(self) -> str:
        return "any value"

    def schema(self) -> dict:
        return self._with_description({})


class MapOf(Type):
    """A mapping with free keys (headers, a JSON body subset)."""

    def __init__(self, values: Type):
        self.values = values

    def accepts(self, value: Any) -> bool:
        return isinstance(value, dict)

    def check_value(self, value: dict, site: Site) -> None:
        lines = getattr(value, "key_lines", {})
        for key, item in value.items():
            self.values.check(item, site.child(str(key), lines.get(key)))

    def expected(self) -> str:
        return "a mapping"

    def schema(self) -> dict:
        return self._with_description({"type": "object", "additionalProperties": self.values.schema()})


class ListOf(Type):
    def __init__(self, items: Type, min_items: int = 0):
        self.items, self.min_items = items, min_items

    def accepts(self, value: Any) -> bool:
        return isinstance(value, list)

    def check_value(self, value: list, site: Site) -> None:
        if len(value) < self.min_items:
            site.fail(f"expected at least {self.min_items} item{'s' if self.min_items > 1 else ''}")
        lines = getattr(value, "item_lines", [])
        for i, item in enumerate(value):
            self.items.check(item, site.child(i, lines[i] if i < len(lines) else None))

    def expected(self) -> str:
        return "a list"

    def schema(self) -> dict:
        out: dict[str, Any] = {"type": "array", "items": self.items.schema()}
        if self.min_items:
            out["minItems"] = self.min_items
        return self._with_description(out)


class Obj(Type):
    """A mapping with known keys: unknown ones are errors, with a did-you-mean."""

    def __init__(self, fields: dict[str, Type], required: tuple[str, ...] = (), noun: str = "a mapping"):
        self.fields, self.required, self.noun = fields, required, noun

    def accepts(self, value: Any) -> bool:
        return isinstance(value, dict)

    def check_value(self, value: dict, site: Site) -> None:
        lines = getattr(value, "key_lines", {})
        known = list(self.fields)
        for key, item in value.items():
            here = site.child(str(key), lines.get(key))
            if key not in self.fields:
                here.fail(f"unknown key; {did_you_mean(str(key), known)}expected one of {', '.join(known)}")
            else:
                self.fields[key].check(item, here)
        for key in self.required:
            if key not in value:
                site.child(key).fail(f"missing; expected {self.fields[key].expected()}")

    def expected(self) -> str:
        return self.noun

    def schema(self) -> dict:
        out = {
            "type": "object",
            "properties": {k: t.schema() for k, t in self.fields.items()},
            "additionalProperties": False,
        }
        if self.required:
            out["required"] = list(self.required)
        return self._with_description(out)


class OneOf(Type):
    """The first branch that accepts the value's kind checks it: `3` or `{median: 3}`."""

    def __init__(self, *branches: Type, noun: str | None = None):
        self.branches, self.noun = branches, noun

    def accepts(self, value: Any) -> bool:
        return any(b.accepts(value) for b in self.branches)

    def check_value(self, value: Any, site: Site) -> None:
        next(b for b in self.branches if b.accepts(value)).check(value, site)

    def expected(self) -> str:
        return self.noun or " or ".join(b.expected() for b in self.branches)

    def schema(self) -> dict:
        return self._with_description({"anyOf": [b.schema() for b in self.branches]})
