"""A module of the package run from its Python source, whichever build the import gives."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import mockpoeti


def from_source(name: str) -> ModuleType:
    """`name` (mockpoeti.x.y) run from its source even where the import gave its compiled
    build (whose classes cannot be patched, nor their signatures read), under a name of its own."""
    path = Path(mockpoeti.__path__[0], *name.split(".")[1:]).with_suffix(".py")
    spec = importlib.util.spec_from_file_location(name + "_from_source", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses looks its module up while making the classes
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[spec.name]
    return module
