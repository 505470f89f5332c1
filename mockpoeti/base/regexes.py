"""The one place that compiles a regular expression a user wrote.

Python's `re` backtracks: `^(a|a)+b` on 24 `a`s, or `error.*timeout` on a 120k
prompt, held the event loop for seconds. Scenario and stub `message` regexes
run on RE2 (google-re2), whose time is linear in the text; what RE2 cannot
run (lookarounds, backreferences) is refused when the rule is loaded, naming
the pattern. JSON Schema `pattern`s keep their ECMA-262 lookarounds: they run
on RE2 when it can, else on the `regex` package under a time budget and a cap
on the text's length.

RE2's own bounds: a program of at most MAX_PROGRAM_SIZE instructions, and
MAX_MEMORY bytes for its program and the DFA states it caches while it
searches (its default, 8 MiB a regex, let 200 regexes grow the process by
600 MiB on one 64 KiB prompt). The worst RE2 search costs about 5 ns per byte
of text and instruction of program (its NFA, when the DFA's cache thrashes):
`regex_work` estimates it, so a caller can run a costly search off the loop.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from fnmatch import fnmatchcase, translate
from functools import cache
from typing import Any

from mockpoeti.base.errors import MockpoetiError

MAX_PROGRAM_SIZE = 2000  # RE2 instructions of one regex: its worst search is ~5 ns x this per byte of text
MAX_MEMORY = 64 * 1024  # bytes RE2 may use per regex, program and DFA cache together
MAX_BACKTRACKING_TEXT = 65536  # characters a backtracking (`regex`) search may look at: its timeout overshoots past this
MAX_BACKTRACKING_EXPANSION = 10_000  # states `regex` makes of a pattern's counted repeats (`a{60000}`: 40 ms to compile)
# Globs (a match's model, path, key, headers, after_tool) run on fnmatch, that is on `re`: the work
# of one grows with the glob's length times the text's (`*` and 1,000 `?` against a 4 MB model
# held the loop 2.7 s). Both are bounded: a glob of at most MAX_GLOB_CHARS (checked when loaded),
# tried on at most MAX_GLOB_TEXT characters; the worst such match costs ~1 ms.
MAX_GLOB_CHARS = 256
MAX_GLOB_TEXT = 4096
_GLOB_WILDCARDS = frozenset("*?[")


@cache
def _re2() -> tuple[Any, Any]:
    """RE2 and its options, loaded with the first regex (7 ms of import a server without one never spends)."""
    import re2

    options = re2.Options()
    options.log_errors = False  # else every refused pattern prints an absl line on stderr
    options.never_capture = True  # a yes or no is all matching needs: groups cost 10x on long texts
    options.max_mem = MAX_MEMORY
    return re2, options


class PatternError(MockpoetiError, ValueError):
    """A pattern mockpoeti will not run; the message names it and says why."""


def compile_linear(pattern: str) -> Any:
    """An RE2 regex for `pattern`, or PatternError saying why there is none."""
    re2, options = _re2()
    try:
        compiled = re2.compile(_re2_syntax(pattern), options)
    except re2.error as e:
        try:
            re.compile(pattern)
        except (re.error, OverflowError, RecursionError) as syntax:
            raise PatternError(f"not a valid regular expression: {syntax}; expected /regex/") from None
        raise PatternError(
            f"/{_shown(pattern)}/ is not supported: {_reason(e)} (matching runs on RE2, in time linear in the text: "
            "no lookarounds, no backreferences)"
        ) from None
    if compiled.programsize > MAX_PROGRAM_SIZE:
        raise PatternError(
            f"/{_shown(pattern)}/ is too large: {compiled.programsize} RE2 instructions, "
            f"at most {MAX_PROGRAM_SIZE} (MAX_PROGRAM_SIZE)"
        )
    return compiled


def is_glob(pattern: str) -> bool:
    """Whether a match's string is a glob, not a value compared as it is."""
    return not _GLOB_WILDCARDS.isdisjoint(pattern)


def glob_holds(text: str, pattern: str) -> bool:
    """`text` matches the glob `pattern` (fnmatch's, case-sensitive), in bounded time: a text
    longer than MAX_GLOB_TEXT matches only a pattern without wildcards, compared as it is."""
    if not is_glob(pattern):
        return text == pattern
    return len(text) <= MAX_GLOB_TEXT and fnmatchcase(text, pattern)


def glob_shape(pattern: str) -> tuple[str, str]:
    """What a glob asks, when a string method can say it: ("exact", s) for a plain string,
    ("prefix", s) for `s*`, ("suffix", s) for `*s`, ("infix", s) for `*s*` (any run of `*`);
    ("other", pattern) for the rest. For a text of at most MAX_GLOB_TEXT characters,
    startswith/endswith/`in` answer exactly what fnmatchcase does (its `*` matches newlines too)."""
    if not is_glob(pattern):
        return "exact", pattern
    core = pattern.strip("*")
    if is_glob(core):
        return "other", pattern
    if not pattern.startswith("*"):
        return "prefix", core
    return ("infix", core) if pattern.endswith("*") else ("suffix", core)


def glob_matcher(pattern: str) -> Callable[[str], Any]:
    """fnmatchcase's own test for `pattern`, compiled once (for a text of at most MAX_GLOB_TEXT)."""
    return re.compile(translate(pattern)).match


def search(compiled: Any, text: str) -> bool:
    """Does `compiled` (from compile_linear) occur in `text`?"""
    try:
        return compiled.search(text) is not None
    except UnicodeEncodeError:  # a lone surrogate, which JSON may carry: RE2 wants UTF-8
        return compiled.search(text.encode("utf-8", "surrogatepass")) is not None


_METACHARACTERS = frozenset("\\.^$|?*+()[]{}")
_QUANTIFIERS = frozenset("?*+{")
# escapes that take more than the one character after the backslash (octal digits, \x41, \pL,
# \Q...\E, ...): `required_text` does not read patterns that hold one
_ARGUMENT_ESCAPE = re.compile(r"\\[^dDwWsSbBAzntrfv\W]")


def required_text(pattern: str) -> str:
    """A substring of every text `pattern` (RE2 syntax) occurs in, or "" when it cannot tell:
    its longest run of plain characters outside any group, class or repetition. Read only
    for patterns without alternation (`|` anywhere) and without flags or special groups
    (`(?`), where each such character must appear, in order; an escape, class or group ends
    a run and is not looked into. A search for a pattern whose required text is not in the
    message can say no without RE2."""
    if "|" in pattern or "(?" in pattern or _ARGUMENT_ESCAPE.search(pattern):
        return ""
    best, run, depth, i, n = "", [], 0, 0, len(pattern)
    while i < n:
        ch = pattern[i]
        if depth == 0 and ch not in _METACHARACTERS:
            run.append(ch)
            i += 1
            continue
        if run and depth == 0 and ch in _QUANTIFIERS:
            run.pop()  # the quantifier makes the character before it optional or repeated
        if depth == 0 and len(run) > len(best):
            best = "".join(run)
        run = []
        if ch == "\\":
            i += 2
        elif ch == "[":
            i = _class_end(pattern, i)
        elif ch == "(":
            depth += 1
            i += 1
        elif ch == ")":
            depth = max(depth - 1, 0)
            i += 1
        elif ch == "{" and depth == 0:
            close = pattern.find("}", i)
            i = n if close < 0 else close + 1
        else:
            i += 1
    return best if len(run) <= len(best) else "".join(run)


def _class_end(pattern: str, start: int) -> int:
    """Just past the character class that opens at `start` (a `]` first in it is a member;
    `[:alpha:]` names inside it hold a `]` of their own)."""
    i, n = start + 1, len(pattern)
    if i < n and pattern[i] == "^":
        i += 1
    if i < n and pattern[i] == "]":
        i += 1
    while i < n:
        ch = pattern[i]
        if ch == "\\":
            i += 2
        elif ch == "[" and pattern.startswith("[:", i):
            close = pattern.find(":]", i + 2)
            i = n if close < 0 else close + 2
        elif ch == "]":
            return i + 1
        else:
            i += 1
    return n


def search_encoded(compiled: Any, data: bytes) -> bool:
    """`search` on a text already encoded (UTF-8, lone surrogates passed): several regexes, one encoding."""
    return compiled.search(data) is not None


def encoded(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


def either(regexes: list[Any]) -> Any:
    """One RE2 regex that occurs in a text where any of `regexes` does (their alternation), so
    that one search says "none" for all of them; None when it would be larger than one regex may be."""
    try:
        return compile_linear("|".join(f"(?:{regex.pattern})" for regex in regexes))
    except PatternError:
        return None


def search_all(regexes: dict[str, Any], text: str) -> dict[str, bool]:
    """Each regex's verdict on `text`, the text encoded once. RE2 releases the GIL while it
    searches: run in a worker thread, a costly search keeps nobody else waiting."""
    data = encoded(text)
    return {pattern: compiled.search(data) is not None for pattern, compiled in regexes.items()}


class SlowPatternError(MockpoetiError):
    """A backtracking search that would take too long; `reason` says which bound it met."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class SchemaPattern:
    """A JSON Schema `pattern` (already through `re`'s syntax check, ECMA names rewritten):
    RE2 when it can run it, else `regex` (compiled on first use) under a time budget."""

    __slots__ = ("_backtracking", "_linear", "pattern")

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern
        self._backtracking: Any = None
        try:
            self._linear: Any = compile_linear(pattern)
        except PatternError:
            self._linear = None

    def search(self, text: str, seconds: float) -> tuple[bool, float]:
        """Whether the pattern occurs in `text`, and the seconds it took. Raises SlowPatternError when a
        backtracking search needs more than `seconds`, the text is longer than
        MAX_BACKTRACKING_TEXT (where `regex`'s timeout is no longer precise), or the pattern's
        counted repeats expand past MAX_BACKTRACKING_EXPANSION (`regex` compiles them out)."""
        if self._linear is not None:
            return search(self._linear, text), 0.0
        if len(text) > MAX_BACKTRACKING_TEXT:
            raise SlowPatternError(f"a string of {len(text)} characters is longer than the {MAX_BACKTRACKING_TEXT} "
                          "(MAX_BACKTRACKING_TEXT) mockpoeti checks against one")
        if self._backtracking is None:  # once per pattern (and bounded): not counted against an answer's time
            self._backtracking = _backtracking(self.pattern)
        started = time.perf_counter()
        try:
            found = self._backtracking.search(text, timeout=max(seconds, 0.0)) is not None
        except TimeoutError:
            raise SlowPatternError(f"checking strings against it took longer than the {max(seconds, 0.0) * 1000:.0f} ms "
                          "the answer had left") from None
        return found, time.perf_counter() - started


def _backtracking(pattern: str) -> Any:
    """`regex`'s compiled pattern (imported only for the few patterns RE2 refuses)."""
    import re._parser as sre_parse  # type: ignore[import-not-found]

    import regex

    expanded = _expansion(sre_parse.parse(pattern).data)
    if expanded > MAX_BACKTRACKING_EXPANSION:
        raise SlowPatternError(f"its counted repeats expand to {expanded} or more states, more than the "
                      f"{MAX_BACKTRACKING_EXPANSION} (MAX_BACKTRACKING_EXPANSION) mockpoeti compiles for one")
    return regex.compile(pattern)


def _expansion(items: Any) -> int:
    """How many states `regex` makes of a parsed pattern: it writes a counted repeat out `min` times."""
    total = 0
    for op, av in items:
        name = str(op)
        if name in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"):
            low, _, sub = av
            total += max(low, 1) * _expansion(sub)
        elif name == "SUBPATTERN":
            total += _expansion(av[-1])
        elif name in ("ASSERT", "ASSERT_NOT"):
            total += _expansion(av[1])
        elif name == "ATOMIC_GROUP":
            total += _expansion(av)
        elif name == "BRANCH":
            total += sum(_expansion(branch) for branch in av[1])
        elif name == "GROUPREF_EXISTS":
            total += sum(_expansion(branch) for branch in av[1:] if branch is not None)
        else:
            total += 1
        if total > MAX_BACKTRACKING_EXPANSION:
            return total
    return total


def _re2_syntax(pattern: str) -> str:
    r"""`\uXXXX` (ECMA-262, Python) is RE2's `\x{XXXX}`; everything else is passed as it is."""
    if "\\u" not in pattern:
        return pattern
    out, i = [], 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\" and i + 1 < len(pattern):
            escaped = pattern[i + 1]
            digits = pattern[i + 2 : i + 6]
            if escaped == "u" and len(digits) == 4 and all(c in "0123456789abcdefABCDEF" for c in digits):
                out.append("\\x{" + digits + "}")
                i += 6
                continue
            out.append(ch + escaped)
            i += 2
            continue
        out.append(ch)
        i += 1
    return "".join(out)


def _reason(error: Exception) -> str:
    reason = error.args[0] if error.args else ""
    return reason.decode("utf-8", "replace") if isinstance(reason, bytes) else str(reason)


def _shown(pattern: str, limit: int = 200) -> str:
    return pattern if len(pattern) <= limit else pattern[: limit - 1] + "…"
