"""Rules indexed by what they ask of a request: which of them a request misses, and by how
much, in one pass over the request whatever the number of rules.

A rule is a bit, its place in the order rules are tried. The conditions of one kind on one
field form a family, which keeps for each wanted value the mask of the rules that want it:
a request's model is looked up once for every rule that names a model, its message searched
once for every rule's substring (and once, as one alternation, for all their regexes), its
body read once for each key the rules' subsets name. A family answers with the mask of the
rules it fails. From those masks, with integer operations rather than a loop over rules:
the first rule that misses nothing (which answers) and the rules that miss least (the near
misses). What each condition holds and how it explains a miss stay the conditions' own
(`matching`); a family only answers the same, for many at once.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Sequence
from operator import attrgetter
from typing import TYPE_CHECKING, Any, Final, Protocol

from mockpoeti.base.regexes import (
    MAX_GLOB_TEXT,
    MAX_PROGRAM_SIZE,
    either,
    encoded,
    glob_matcher,
    glob_shape,
    required_text,
    search_encoded,
)

if TYPE_CHECKING:
    from mockpoeti.scripting.view import RequestView

# a regex: (pattern, regex, rules, required text); regexes searched together: (the verdict's key, their
# alternation, the members, their patterns, the texts they need (() when one needs none), all not found)
Member = tuple[str, Any, int, str]
Masks = tuple[int, ...]  # one per family of an index: the rules (bits) each fails

MAX_SHAPES: Final = 256  # sets of request values whose answers an index keeps
MAX_SHAPE_CHARS: Final = 4096  # of request values in one set kept: a 4 MB model or header is answered, not kept
HEAD: Final = 4  # substrings are looked for by their first HEAD characters first: "refund 1".."refund 99" in one look
ABSENT: Final = object()  # a key the body does not have
NOT_AN_OBJECT: Final = object()  # a body that is not a JSON object
Group = tuple[str, Any, tuple[Member, ...], frozenset[str], tuple[str, ...], dict[str, bool]]


class Family(Protocol):
    """What rules want of one thing in a request. A family with a `source` (a view's attribute,
    a header, the body) answers from that value alone (`answer`), so the index can keep its
    answers by value; the others read the view themselves (`failing`)."""

    def add(self, wanted: Any, bit: int) -> None: ...

    def seal(self) -> None: ...


class Sieved(Protocol):
    """A condition the index can hold: `sieve()` names its family, makes one, and says what it wants."""

    def sieve(self) -> tuple[Hashable, Callable[[], Family], Any]: ...


def _or(table: dict[Any, int], key: Any, bit: int) -> None:
    table[key] = table.get(key, 0) | bit


class Values:
    """One value exactly (endpoint, method, stream, last_role, turn): one lookup for all."""

    __slots__ = ("having", "source", "wanting")

    def __init__(self, field: str) -> None:
        self.source, self.having = ("attr", field), 0
        self.wanting: dict[Any, int] = {}

    def add(self, wanted: Any, bit: int) -> None:
        _or(self.wanting, wanted, bit)
        self.having |= bit

    def seal(self) -> None:
        pass

    def answer(self, value: Any) -> int:
        return self.having & ~self.wanting.get(value, 0)


class Globs:
    """Globs on one string (path, model, key, after_tool, a header): plain strings by one lookup,
    `s*` and `*s` by one lookup per length wanted, `*s*` by `in`, the rest by fnmatch's regex.
    A value that is None fails them all, unless `none_is_empty` (path, model, key: None is "")."""

    __slots__ = ("exact", "having", "infixes", "none_is_empty", "others", "prefixes", "source", "suffixes")

    def __init__(self, field: str = "", header: str = "", none_is_empty: bool = False) -> None:
        self.source = ("header", header) if header else ("attr", field)
        self.none_is_empty, self.having = none_is_empty, 0
        self.exact: dict[str, int] = {}
        self.prefixes: Any = {}  # while adding: prefix -> mask; sealed: ((length, {prefix: mask}), ...)
        self.suffixes: Any = {}
        self.infixes: Any = {}  # sealed: ((infix, mask), ...)
        self.others: Any = {}  # pattern -> mask; sealed: ((match, mask), ...)

    def add(self, wanted: str, bit: int) -> None:
        self.having |= bit
        shape, text = glob_shape(wanted)
        _or({"exact": self.exact, "prefix": self.prefixes, "suffix": self.suffixes, "infix": self.infixes,
             "other": self.others}[shape], text, bit)

    def seal(self) -> None:
        self.prefixes, self.suffixes = _by_length(self.prefixes), _by_length(self.suffixes)
        self.infixes = tuple(self.infixes.items())
        self.others = tuple((glob_matcher(pattern), mask) for pattern, mask in self.others.items())

    def answer(self, text: str | None) -> int:
        if text is None:
            if not self.none_is_empty:
                return self.having
            text = ""
        holding = self.exact.get(text, 0)
        size = len(text)
        if size <= MAX_GLOB_TEXT:
            for length, wanted in self.prefixes:
                if length > size:
                    break
                holding |= wanted.get(text[:length], 0)
            for length, wanted in self.suffixes:
                if length > size:
                    break
                holding |= wanted.get(text[size - length :], 0)
            for infix, mask in self.infixes:
                if infix in text:
                    holding |= mask
            for match, mask in self.others:
                if match(text):
                    holding |= mask
        return self.having & ~holding


def _by_length(table: dict[str, int]) -> tuple[tuple[int, dict[str, int]], ...]:
    lengths: dict[int, dict[str, int]] = {}
    for text, mask in table.items():
        lengths.setdefault(len(text), {})[text] = mask
    return tuple(sorted(lengths.items()))


class Messages:
    """The last user message: substrings by `in`; regexes (RE2) alone, or in groups searched
    once as one alternation and member by member only where the group occurs. A regex whose
    required text (`base.regexes.required_text`) is not in the message is not searched at all.
    Every verdict is kept on the view (`verdicts`, by pattern), where the conditions read it again."""

    __slots__ = ("groups", "having", "regexes", "singles", "substrings", "wanted")

    def __init__(self) -> None:
        self.having = 0
        self.substrings: dict[str, int] = {}
        # the substrings by their first HEAD characters: (those, the ones that start so, or () for one alone)
        self.wanted: tuple[tuple[str, tuple[str, ...]], ...] = ()
        self.regexes: dict[str, tuple[Any, int]] = {}  # pattern -> (compiled, mask)
        self.singles: tuple[Member, ...] = ()
        self.groups: tuple[Group, ...] = ()

    def add(self, wanted: Any, bit: int) -> None:
        self.having |= bit
        if isinstance(wanted, str):
            _or(self.substrings, wanted, bit)
        else:
            compiled, mask = self.regexes.get(wanted.pattern, (wanted, 0))
            self.regexes[wanted.pattern] = (compiled, mask | bit)

    def seal(self) -> None:
        heads: dict[str, list[str]] = {}
        for substring in self.substrings:
            heads.setdefault(substring[:HEAD], []).append(substring)
        self.wanted = tuple((head, tuple(members)) if len(members) > 1 else (members[0], ())
                            for head, members in heads.items())
        singles: list[Member] = []
        groups: list[Group] = []
        for batch in _batches(self.regexes.items()):
            members = tuple((pattern, compiled, mask, required_text(pattern)) for pattern, (compiled, mask) in batch)
            found = either([compiled for _, compiled, _, _ in members]) if len(members) > 1 else None
            if found is None:  # one alone, or an alternation RE2 would not take
                singles += members
            else:
                patterns = frozenset(m[0] for m in members)
                needed = () if not all(m[3] for m in members) else tuple(m[3] for m in members)  # () when one needs none
                groups.append((found.pattern, found, members, patterns, needed, dict.fromkeys(patterns, False)))
        self.singles, self.groups = tuple(singles), tuple(groups)

    def failing(self, view: RequestView) -> int:
        message = view.message
        holding = 0
        for head, members in self.wanted:
            if head in message:
                if not members:
                    holding |= self.substrings[head]
                for substring in members:
                    if substring in message:
                        holding |= self.substrings[substring]
        verdicts = view.verdicts
        for pattern, compiled, mask, required in self.singles:
            verdict = verdicts.get(pattern)
            if verdict is None:
                verdict = verdicts[pattern] = (not required or required in message) and _holds(compiled, message)
            if verdict:
                holding |= mask
        if self.groups:
            holding |= self._found(verdicts, message)
        return self.having & ~holding

    def _found(self, verdicts: dict[str, bool], message: str) -> int:
        holding = 0
        for key, alternation, members, patterns, needed, none_found in self.groups:
            found = verdicts.get(key)
            if found is None:
                if patterns <= verdicts.keys():  # searched already (off the loop)
                    found = any(verdicts[pattern] for pattern in patterns)
                else:  # searched when the text one of them needs is there (or one needs none)
                    found = (not needed or any(map(message.__contains__, needed))) and _holds(alternation, message)
                verdicts[key] = found
            if not found:
                verdicts.update(none_found)
                continue
            for pattern, compiled, mask, required in members:
                verdict = verdicts.get(pattern)
                if verdict is None:
                    verdict = verdicts[pattern] = (not required or required in message) and _holds(compiled, message)
                if verdict:
                    holding |= mask
        return holding


def _holds(compiled: Any, message: str) -> bool:
    return search_encoded(compiled, encoded(message))


def _batches(regexes: Iterable[tuple[str, tuple[Any, int]]]) -> list[list[tuple[str, tuple[Any, int]]]]:
    """Regexes in runs whose programs add up to at most one regex's (MAX_PROGRAM_SIZE): an
    alternation of them is a regex RE2 takes, and searches in the time of its parts."""
    batches: list[list[tuple[str, tuple[Any, int]]]] = []
    size = MAX_PROGRAM_SIZE + 1
    for item in regexes:
        program = item[1][0].programsize
        if size + program > MAX_PROGRAM_SIZE:
            batches.append([])
            size = 0
        batches[-1].append(item)
        size += program
    return batches


class Subsets:
    """Bodies holding a flat subset ({key: a string, number, bool or null, ...}): the body is read
    once for each key some subset names, and its value looked up among the values wanted."""

    __slots__ = ("absent", "having", "keys", "source", "wanting")

    def __init__(self) -> None:
        self.source, self.having = ("body", ""), 0
        self.wanting: dict[str, tuple[int, dict[Any, int]]] = {}  # key -> (rules naming it, value -> rules)
        self.keys: tuple[str, ...] = ()
        self.absent: tuple[object, ...] = ()

    def add(self, wanted: dict, bit: int) -> None:
        self.having |= bit
        for key, value in wanted.items():
            naming, values = self.wanting.get(key, (0, {}))
            _or(values, value, bit)
            self.wanting[key] = (naming | bit, values)

    def seal(self) -> None:
        self.keys = tuple(self.wanting)
        self.absent = (ABSENT,) * len(self.keys)

    def answer(self, values: Any) -> int:
        """From the body's values at the keys named (ABSENT where it has none), or NOT_AN_OBJECT."""
        if values is NOT_AN_OBJECT:
            return self.having
        failing = 0
        for value, (naming, wanted) in zip(values, self.wanting.values(), strict=True):
            if value is ABSENT:
                failing |= naming
                continue
            try:
                holding = wanted.get(value, 0)
            except TypeError:  # a list or an object: equal to no scalar
                holding = 0
            failing |= naming & ~holding
        return failing


def is_flat(wanted: Any) -> bool:
    """A subset `Subsets` can hold: a non-empty mapping of keys to scalars."""
    return isinstance(wanted, dict) and bool(wanted) and all(
        value is None or isinstance(value, (str, int, float)) for value in wanted.values())


class Each:
    """Conditions asked one by one (tools, nested body subsets): their own `holds`."""

    __slots__ = ("conditions",)

    def __init__(self) -> None:
        self.conditions: list[tuple[Any, int]] = []

    def add(self, wanted: Any, bit: int) -> None:
        self.conditions.append((wanted, bit))

    def seal(self) -> None:
        pass

    def failing(self, view: RequestView) -> int:
        failing = 0
        for condition, bit in self.conditions:
            if not condition.holds(view):
                failing |= bit
        return failing


def _small(shape: tuple) -> bool:
    """A set of request values small enough to keep: at most MAX_SHAPE_CHARS of text in all (the
    count bounds how many are kept, this how big: 256 sets of 4 MB models would be a gigabyte)."""
    size = 0
    for value in shape:
        for part in value if type(value) is tuple else (value,):
            size += len(part) if isinstance(part, (str, bytes)) else 1
    return size <= MAX_SHAPE_CHARS


class RuleIndex:
    """Rules (each a sequence of conditions), in the order they are tried: bit i is rule i.

    What the families with a source answer depends only on the request's values there (its
    model, stream, key, the headers and body keys some rule names, ...), which mostly repeat
    from one request to the next: their answers are kept by those values (at most
    MAX_SHAPES sets of them, then forgotten at once; none of more than MAX_SHAPE_CHARS)."""

    __slots__ = ("attrs", "bodies", "everyone", "families", "header", "headers", "keyed", "places", "shapes", "unkeyed")

    def __init__(self, rules: Sequence[Sequence[Sieved]]) -> None:
        found: dict[tuple[Hashable, int], Any] = {}  # (name, k) -> its family
        wants: list[list[tuple[Any, Any]]] = []
        for i, conditions in enumerate(rules):
            bit, seen, mine = 1 << i, dict[Hashable, int](), []
            for condition in conditions:
                name, make, wanted = condition.sieve()
                k = seen[name] = seen.get(name, -1) + 1  # a second condition of a family in one rule has its own
                family = found.get((name, k))
                if family is None:
                    family = found[(name, k)] = make()
                family.add(wanted, bit)
                mine.append((condition, family))
            wants.append(mine)
        for family in found.values():
            family.seal()
        by_source: dict[str, list[Any]] = {"attr": [], "header": [], "body": []}
        unkeyed: list[Any] = []
        for family in found.values():
            source = getattr(family, "source", None)
            (by_source[source[0]] if source else unkeyed).append(family)
        self.keyed = (*by_source["attr"], *by_source["header"], *by_source["body"])
        self.unkeyed = tuple(unkeyed)
        self.families = (*self.keyed, *self.unkeyed)  # in the order `failing` answers
        place = {id(family): at for at, family in enumerate(self.families)}
        self.places = [tuple((condition, place[id(family)]) for condition, family in mine) for mine in wants]
        self.attrs = attributes([family.source[1] for family in by_source["attr"]])
        self.headers = tuple(family.source[1] for family in by_source["header"])
        self.header = self.headers[0] if len(self.headers) == 1 else ""  # the one header some rule names
        self.bodies = by_source["body"][0] if by_source["body"] else None  # one at most: a rule has one body
        self.shapes: dict[tuple, tuple[Masks, int]] = {}
        self.everyone = (1 << len(rules)) - 1

    def failing(self, view: RequestView) -> tuple[Masks, int]:
        """What each family fails (a mask per family, in `families`' order: a rule's bit is in as
        many as it has misses), and all of them together."""
        shape: tuple = self.attrs(view) if self.attrs is not None else ()
        if self.header:
            shape += (view.headers.get(self.header),)
        elif self.headers:
            shape += tuple(map(view.headers.get, self.headers))
        bodies = self.bodies
        if bodies is not None:
            body = view.body
            shape += (tuple(map(body.get, bodies.keys, bodies.absent)) if isinstance(body, dict) else NOT_AN_OBJECT,)
        try:
            known = self.shapes.get(shape)
        except TypeError:  # a list or an object among the body's values: answered, not kept
            known = self._answer(shape)
        else:
            if known is None:
                known = self._answer(shape)
                if _small(shape):
                    if len(self.shapes) >= MAX_SHAPES:
                        self.shapes.clear()
                    self.shapes[shape] = known
        masks, missed = known
        for family in self.unkeyed:
            failing = family.failing(view)
            masks += (failing,)
            missed |= failing
        return masks, missed

    def _answer(self, values: tuple) -> tuple[Masks, int]:
        masks = tuple([family.answer(value) for family, value in zip(self.keyed, values, strict=True)])
        missed = 0
        for mask in masks:
            missed |= mask
        return masks, missed


def attributes(names: list[str]) -> Callable[[Any], tuple] | None:
    """The view's attributes `names`, as a tuple, in one call."""
    if len(names) > 1:
        return attrgetter(*names)
    if names:
        one = attrgetter(names[0])
        return lambda view: (one(view),)
    return None


def fewest(masks: Masks, everyone: int, limit: int) -> list[tuple[int, int]]:
    """The `limit` rules that are in fewest of `masks`, as (how many, rule), fewest first and
    ties in rule order."""
    once = twice = 0  # the rules in at least one of the masks, and in at least two
    for mask in masks:
        twice |= once & mask
        once |= mask
    if twice and (everyone & ~twice).bit_count() < limit:  # some of the closest miss two things or more
        return _counted(masks, everyone, limit)
    out = _lowest(everyone & ~once, 0, limit)
    return out + _lowest(once & ~twice, 1, limit - len(out))


def _lowest(rules: int, count: int, limit: int) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    while rules and len(out) < limit:
        low = rules & -rules
        out.append((count, low.bit_length() - 1))
        rules ^= low
    return out


def _counted(masks: Masks, everyone: int, limit: int) -> list[tuple[int, int]]:
    """`fewest`, counted in binary across all rules at once: digits[j] holds the rules whose
    count has bit j set."""
    digits: list[int] = []
    for mask in masks:
        carry = mask
        for j, digit in enumerate(digits):
            digits[j] = digit ^ carry
            carry &= digit
            if not carry:
                break
        if carry:
            digits.append(carry)
    out: list[tuple[int, int]] = []
    for count in range(1 << len(digits)):
        rules = everyone
        for j, digit in enumerate(digits):
            rules &= digit if count >> j & 1 else ~digit
        out += _lowest(rules, count, limit - len(out))
        if len(out) == limit:
            break
    return out
