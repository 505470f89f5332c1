"""Records made on every call write their `__init__` out (`@dataclass(init=False)`): mypyc
compiles a written-out `__init__`, while the one `dataclass` writes at import runs
interpreted, ~8x slower (~270 ns against ~35 ns for five fields). The written-out
parameters must stay the fields, in order, with the same defaults; these tests hold
every such record of the package to that, and show which `__init__` the import runs."""

from __future__ import annotations

import dataclasses
import importlib
import inspect
from pathlib import Path

import pytest
from sources import from_source

import mockpoeti
from mockpoeti import _native

PACKAGE = Path(mockpoeti.__path__[0])
# every module with a record whose __init__ is written out, found from the sources
WRITTEN_OUT = sorted(
    "mockpoeti." + ".".join(path.relative_to(PACKAGE).with_suffix("").parts)
    for path in PACKAGE.rglob("*.py") if "init=False" in path.read_text()
)


def _records(module) -> list[type]:
    return [
        cls for cls in vars(module).values()
        if isinstance(cls, type) and cls.__module__ == module.__name__ and dataclasses.is_dataclass(cls)
        and not cls.__dataclass_params__.init  # type: ignore[attr-defined]
    ]


def test_the_hot_records_write_their_init_out():
    found = {cls.__name__ for name in WRITTEN_OUT for cls in _records(from_source(name))}
    assert {"ChatRequest", "Choice", "Completion", "Trace", "JournalEntry"} <= found


@pytest.mark.parametrize("name", WRITTEN_OUT)
def test_a_written_out_init_takes_the_fields(name):
    for cls in _records(from_source(name)):
        params = list(inspect.signature(cls.__init__).parameters.values())[1:]
        fields = dataclasses.fields(cls)
        assert [p.name for p in params] == [f.name for f in fields], cls
        assert all(p.kind is p.POSITIONAL_OR_KEYWORD for p in params), cls
        defaults = [p.default for p in params]
        assert defaults == [inspect.Parameter.empty if f.default is dataclasses.MISSING else f.default for f in fields], cls
        assert all(f.default_factory is dataclasses.MISSING for f in fields), cls  # a factory has no place in a signature
        values = [object() for _ in fields]  # from source: no type checks, so any value shows where it lands
        for record in (cls(*values), cls(**{f.name: v for f, v in zip(fields, values, strict=True)})):
            assert [getattr(record, f.name) for f in fields] == values, cls


@pytest.mark.parametrize("name", WRITTEN_OUT)
def test_the_import_runs_the_written_out_init(name):
    """Compiled: a native constructor, not a Python function. Python: the function in the
    module's source, not one `dataclass` wrote (whose code is `<string>`'s)."""
    for cls in _records(importlib.import_module(name)):
        init = cls.__init__
        if _native.state == "compiled":
            assert not inspect.isfunction(init), cls
        else:
            assert init.__code__.co_filename.endswith(".py"), cls
