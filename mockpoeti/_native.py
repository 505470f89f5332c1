"""Which code runs: the mypyc-compiled modules, or their Python sources.

A wheel carries the compiled modules beside their sources, and Python's own import picks
them. An editable install keeps them in the checkout's `build/native/TAG/` (hatch_build.py),
found here, and used only while every source of the package is as it was when they were
built: compiled modules call each other in C, so one edited file makes them all stale, and
the checkout then runs as plain Python until `pip install -e .` compiles it again.
MOCKPOETI_PURE=1 runs the Python sources in any install (for comparing the two).
"""

from __future__ import annotations

import os
import sys
from importlib.machinery import EXTENSION_SUFFIXES, ExtensionFileLoader, ModuleSpec, SourceFileLoader
from importlib.util import spec_from_file_location

# os.path and a text manifest, not pathlib, json or sysconfig: this runs in every `import mockpoeti`
PACKAGE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(PACKAGE)
EXTENSION = EXTENSION_SUFFIXES[0]  # ".cpython-311-x86_64-linux-gnu.so": the interpreter and platform
NATIVE_HOME = os.path.join(ROOT, "build", "native", EXTENSION.strip(".").rsplit(".", 1)[0])
MANIFEST = "manifest.txt"  # "source PATH SIZE MTIME_NS SHA256" and "module PATH" lines (hatch_build.py)

state = "pure"  # "compiled", "pure", or "pure (why)"
stale_build: str | None = None  # an editable build that is not used, and why (`mockpoeti serve` says so)


class _Finder:
    """Finds the modules named in `where` (module name -> file) with the given loader."""

    def __init__(self, where: dict[str, str], loader: type) -> None:
        self.where, self.loader = where, loader

    def find_spec(self, name: str, path: object = None, target: object = None) -> ModuleSpec | None:
        file = self.where.get(name)
        return None if file is None else spec_from_file_location(name, file, loader=self.loader(name, file))


def sources(root: str = ROOT) -> list[str]:
    """The package's Python files under `root`, relative to it, sorted."""
    out = []
    for folder, dirs, files in os.walk(os.path.join(root, "mockpoeti")):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        out += [os.path.relpath(os.path.join(folder, f), root).replace(os.sep, "/") for f in files if f.endswith(".py")]
    return sorted(out)


def stale(built: dict[str, tuple[int, int, str]], root: str = ROOT) -> str | None:
    """None when every source under `root` is the one the build compiled (`built`: path ->
    size, mtime_ns, sha256); else what changed. Size and time first, the digest only where they
    moved (a checkout of the same text changes the time)."""
    if sources(root) != sorted(built):
        return "a source was added or removed since the build"
    for name, (size, mtime_ns, sha256) in built.items():
        path = os.path.join(root, name)
        stat = os.stat(path)
        if (stat.st_size, stat.st_mtime_ns) != (size, mtime_ns) and digest(path) != sha256:
            return f"{name} changed since the build"
    return None


def digest(path: str) -> str:
    """A source's sha256, as the manifest records it (hatch_build.py writes it with this too)."""
    import hashlib  # only when a size or time moved: not on every import

    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def read_manifest() -> tuple[dict[str, tuple[int, int, str]], list[str]]:
    """What the editable build compiled: its sources (path -> size, mtime_ns, sha256) and the
    files it made; FileNotFoundError where none was made. A damaged line raises ValueError or
    IndexError (the build is then not used)."""
    with open(os.path.join(NATIVE_HOME, MANIFEST), encoding="utf-8") as f:
        lines = [line.split() for line in f]
    return {p[1]: (int(p[2]), int(p[3]), p[4]) for p in lines if p[0] == "source"}, \
        [p[1] for p in lines if p[0] == "module"]


def _module_name(relative: str) -> str:
    return relative[: -len(EXTENSION)].replace("/", ".")


def install() -> None:
    """Put the right finder first on sys.meta_path (once, from mockpoeti/__init__)."""
    global state, stale_build
    if os.environ.get("MOCKPOETI_PURE"):
        where = {name[:-3].replace("/", "."): os.path.join(ROOT, name) for name in sources()
                 if not name.endswith("__init__.py")}
        sys.meta_path.insert(0, _Finder(where, SourceFileLoader))
        state = "pure (MOCKPOETI_PURE is set)"
        return
    if os.path.exists(os.path.join(PACKAGE, "answers", "generate" + EXTENSION)):  # a wheel with its compiled modules
        state = "compiled"
        return
    try:
        built, modules = read_manifest()
        why = stale(built) if modules else "build/native has no modules"
    except FileNotFoundError:
        return  # never compiled here
    except (OSError, ValueError, IndexError) as error:
        why = f"build/native is unreadable ({error!r})"
    if why is not None:
        stale_build = f"{why}; `pip install -e .` compiles it again"
        state = f"pure ({stale_build})"
        return
    where = {_module_name(m): os.path.join(NATIVE_HOME, m) for m in modules}
    sys.meta_path.insert(0, _Finder(where, ExtensionFileLoader))
    state = "compiled"
