"""Our own regular expressions that a server may never use, compiled when first used.

Compiling is not free: sre builds a character class of Unicode ranges one
character at a time (the CJK token pattern took ~4 ms of every start), and a
dozen patterns for tool arguments and dates cost ~1 ms more of an import for a
server that never sees a tool. A `LazyPattern` is compiled by its first search;
from then on its methods are the compiled pattern's own, bound once, so a call
costs what it costs on an `re.Pattern`.
"""

from __future__ import annotations

import re
from typing import Any

_METHODS = ("search", "match", "fullmatch", "finditer", "findall", "sub", "subn", "split")


class LazyPattern:
    def __init__(self, pattern: str, flags: int = 0) -> None:
        self.pattern, self.flags = pattern, flags

    def compiled(self) -> re.Pattern[str]:
        """The compiled pattern (compiled now if it was not), its methods kept on this object."""
        compiled = self.__dict__.get("_compiled")
        if compiled is None:
            compiled = self.__dict__["_compiled"] = re.compile(self.pattern, self.flags)
            for method in _METHODS:
                setattr(self, method, getattr(compiled, method))
        return compiled

    def __getattr__(self, name: str) -> Any:
        """Called only for what this object does not hold yet: a method before the first
        search, or an attribute of the pattern that `_METHODS` leaves out (`groups`, ...)."""
        if name.startswith("__") or name in ("pattern", "flags", "_compiled"):
            raise AttributeError(name)
        return getattr(self.compiled(), name)

    def __repr__(self) -> str:
        return f"LazyPattern({self.pattern!r}, {self.flags!r})"
