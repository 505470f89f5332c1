"""YAML files read as plain data: the user's, and the ones that ship with mockpoeti.

A shipped file (the fixtures, the OpenAPI document) is read through a cached
parsed copy, kept as JSON beside the bytecode (`__pycache__`), checked against
the file's own bytes on every read: a start that reads only shipped files needs
no YAML parser at all. Importing PyYAML and parsing the fixtures was ~13 ms of
a ~230 ms `mockpoeti serve`; reading the copies is ~0.3 ms. PyYAML is imported
on first use, by the first file that has no valid copy (a user's fixtures, a
scenario file): reinstalling mockpoeti does not touch it.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import tempfile
from importlib.util import cache_from_source
from pathlib import Path
from typing import Any

import orjson

from mockpoeti.base.errors import ConfigError


def load_yaml(path: Path) -> Any:
    """Safe YAML only: `!!python` tags are refused, never executed."""
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        with open(path, encoding="utf-8") as f:
            return yaml.load(f, Loader=loader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = mark.line + 1 if mark else 1
        raise ConfigError([f"{path}:{line}: not valid YAML: {getattr(e, 'problem', e)}"]) from None
    except OSError as e:
        raise ConfigError([f"{path}:1: cannot read: {e.strerror}"]) from None


def load_shipped_yaml(path: Path) -> Any:
    """What `load_yaml(path)` returns, from the cached copy when it was made from these bytes;
    else parsed, and the copy written for the next start where the folder is writable (a
    read-only install parses at every start). PYTHONDONTWRITEBYTECODE, which is about
    bytecode and is set in many containers, does not stop it: pip compiles the bytecode at
    install time anyway, and nothing writes these copies but a first start."""
    try:
        content = path.read_bytes()
    except OSError as e:
        raise ConfigError([f"{path}:1: cannot read: {e.strerror}"]) from None
    digest = hashlib.blake2b(content, digest_size=16).hexdigest()
    copy = cached_copy(path)
    with contextlib.suppress(OSError, orjson.JSONDecodeError):
        kept = orjson.loads(copy.read_bytes())
        if type(kept) is dict and kept.get("digest") == digest and "data" in kept:
            return kept["data"]
    data = load_yaml(path)
    if is_plain(data):
        _write(copy, orjson.dumps({"digest": digest, "data": data}))
    return data


def cached_copy(path: Path) -> Path:
    """Where the parsed copy of `path` is kept: its folder's `__pycache__` (or under
    PYTHONPYCACHEPREFIX), named for the file and this Python, as its bytecode would be."""
    return Path(cache_from_source(f"{path}.py")).with_suffix(".json")


def is_plain(value: Any) -> bool:
    """Data that JSON gives back exactly as it was: the only data a copy may hold (a YAML
    date, a number key, a NaN or a 100-digit integer keeps the file parsed at every start)."""
    kind = type(value)
    if kind is dict:
        return all(type(k) is str and is_plain(v) for k, v in value.items())
    if kind is list:
        return all(is_plain(v) for v in value)
    if kind is float:
        return math.isfinite(value)
    if kind is int:
        return -(2**63) <= value < 2**64
    return value is None or kind is str or kind is bool


def _write(copy: Path, content: bytes) -> None:
    """Whole or not at all: another process starting at the same time reads either copy."""
    try:
        copy.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=copy.parent, prefix=copy.name, suffix=".tmp")
    except OSError:
        return
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(content)
        os.replace(temporary, copy)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
