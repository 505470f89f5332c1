"""The build hook that compiles the hot path with mypyc (README: Set-up; Performance).

The modules a chat call runs through are plain typed Python; mypyc turns them into C
extensions that do the same work in about three quarters of the CPU. A wheel
(`pip install .`) carries them beside their sources; an editable install (`pip install -e
.`) builds them into `build/native/`, where `mockpoeti/_native.py` loads them only while
every source is as it was built (an edited checkout runs its Python, never a stale copy).
Without a C compiler, or with MOCKPOETI_PURE=1 set, the build carries none and the
package runs as plain Python: the same answers, measured by the same tests.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

# The modules compiled: those a chat call spends its CPU in, each passing mypy and mypyc.
# Not: http/edge and http/whole_answer (they subclass aiohttp's classes, which mypyc cannot),
# base/settings (a compiled dataclass refuses a wrong type before the one-line error is made).
NATIVE_MODULES = (
    "mockpoeti/answers/chat_request.py",
    "mockpoeti/answers/completion.py",
    "mockpoeti/answers/generate.py",
    "mockpoeti/answers/script.py",
    "mockpoeti/answers/tool_choice.py",
    "mockpoeti/base/catalog.py",
    "mockpoeti/base/clock.py",
    "mockpoeti/base/jsonio.py",
    "mockpoeti/books/journal.py",
    "mockpoeti/books/ledger.py",
    "mockpoeti/books/meters.py",
    "mockpoeti/books/sessions.py",
    "mockpoeti/books/state.py",
    "mockpoeti/http/auth.py",
    "mockpoeti/http/call.py",
    "mockpoeti/http/cors.py",
    "mockpoeti/http/match.py",
    "mockpoeti/http/pipeline.py",
    "mockpoeti/http/router.py",
    "mockpoeti/http/routes/chat.py",
    "mockpoeti/http/wire.py",
    "mockpoeti/scripting/matching.py",
    "mockpoeti/scripting/rule_index.py",
    "mockpoeti/scripting/scenario.py",
    "mockpoeti/scripting/view.py",
)
GROUP = "mockpoeti"  # mypyc's shared library: the top-level module mockpoeti__mypyc
COMPILE_TIMEOUT_S = 900

# Run in a copy of the package (no pyproject.toml there for setuptools to read): mypyc
# type-checks the package, writes C, and setuptools compiles it with two jobs.
_SETUP = """
import sys
from setuptools import setup
from mypyc.build import mypycify
modules, out = sys.argv[1].split(","), sys.argv[2]
setup(name="mockpoeti-native", ext_modules=mypycify(modules, group_name={group!r}, opt_level="3"),
      script_args=["build_ext", "--build-lib", out, "--build-temp", "tmp", "-j", "2"])
"""
# The same types whatever the build environment holds: third-party packages are never read
# (pip builds before it installs the dependencies), so their classes are Any, and an attribute
# of such a base class has a type mypy cannot determine (has-type) where `mypy` in CI can.
_MYPY_INI = """[mypy]
python_version = 3.11
no_site_packages = True
ignore_missing_imports = True
check_untyped_defs = True
disable_error_code = has-type
"""


def _native(root: Path) -> Any:
    """mockpoeti/_native.py, read from the tree being built (stdlib only): where an editable build
    goes and which sources it lists are its answers, the same ones the package reads at import."""
    spec = importlib.util.spec_from_file_location("mockpoeti_native_layout", root / "mockpoeti" / "_native.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def source_lines(root: Path, native: Any) -> list[str]:
    """Every source of the package as the manifest lists it: path, size, mtime_ns, sha256.
    Compiled modules call each other in C and rely on the others' types, so a change to any
    makes the whole build stale."""
    out = []
    for name in native.sources(str(root)):
        path = root / name
        stat = path.stat()
        out.append(f"source {name} {stat.st_size} {stat.st_mtime_ns} {native.digest(str(path))}")
    return out


def compile_native(root: Path, out: Path) -> list[Path]:
    """Compile NATIVE_MODULES into `out` (the package's layout under it); return the files made."""
    with tempfile.TemporaryDirectory(prefix="mockpoeti-mypyc-") as folder:
        work = Path(folder)
        shutil.copytree(root / "mockpoeti", work / "mockpoeti", ignore=shutil.ignore_patterns("__pycache__", "*.so"))
        (work / "mypy.ini").write_text(_MYPY_INI)
        done = subprocess.run(
            [sys.executable, "-c", _SETUP.format(group=GROUP), ",".join(NATIVE_MODULES), str(out)],
            cwd=work, capture_output=True, text=True, timeout=COMPILE_TIMEOUT_S,
        )
        if done.returncode != 0:
            raise RuntimeError((done.stdout + done.stderr)[-4000:])
    return sorted(p for p in out.rglob("*") if p.is_file() and p.suffix in (".so", ".pyd"))


class NativeBuildHook(BuildHookInterface):
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict) -> None:
        if self.target_name != "wheel" or os.environ.get("MOCKPOETI_PURE"):
            return
        root = Path(self.root)
        try:
            import mypyc  # noqa: F401  (a build requirement; absent when the build is not isolated)
        except ImportError:
            self.app.display_warning("mockpoeti: mypyc is not installed; the package is built as plain Python")
            return
        if version == "editable":
            self._editable(root)
            return
        out = Path(tempfile.mkdtemp(prefix="mockpoeti-native-"))  # removed in finalize, once the wheel holds them
        self._made = out
        try:
            built = compile_native(root, out)
        except (RuntimeError, OSError, subprocess.SubprocessError) as error:
            self.app.display_warning(f"mockpoeti: compiling with mypyc failed; built as plain Python\n{error}")
            return
        for path in built:
            build_data["force_include"][str(path)] = path.relative_to(out).as_posix()
        build_data["pure_python"] = False
        build_data["infer_tag"] = True

    def finalize(self, version: str, build_data: dict, artifact_path: str) -> None:
        made = getattr(self, "_made", None)
        if made is not None:
            shutil.rmtree(made, ignore_errors=True)

    def _editable(self, root: Path) -> None:
        """Compile into build/native/TAG with a manifest of the sources; a failure leaves none."""
        native = _native(root)
        home = Path(native.NATIVE_HOME)
        shutil.rmtree(home, ignore_errors=True)
        sources = source_lines(root, native)
        try:
            built = compile_native(root, home)
        except (RuntimeError, OSError, subprocess.SubprocessError) as error:
            shutil.rmtree(home, ignore_errors=True)
            self.app.display_warning(f"mockpoeti: compiling with mypyc failed; the checkout runs as plain Python\n{error}")
            return
        modules = [f"module {p.relative_to(home).as_posix()}" for p in built]
        (home / native.MANIFEST).write_text("\n".join(sources + modules) + "\n", encoding="utf-8")
