"""mockpoeti: an offline, stateful test double of the poeti.ai API.

Public names are loaded on first use, so `import mockpoeti` (and the pytest
plugin it registers) stays cheap until a server is actually wanted.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mockpoeti import _native

_native.install()  # the compiled modules when they are built and current (README: Performance)

__version__ = "0.1.0"
__all__ = ["ApiError", "ConfigError", "MockServer", "MockpoetiError", "Settings", "__version__"]

if TYPE_CHECKING:
    from mockpoeti.base.errors import ApiError, ConfigError, MockpoetiError
    from mockpoeti.base.settings import Settings
    from mockpoeti.server import MockServer

_WHERE = {
    "MockServer": "server",
    "Settings": "base.settings",
    "MockpoetiError": "base.errors",
    "ApiError": "base.errors",
    "ConfigError": "base.errors",
}


def __getattr__(name: str):
    if name in _WHERE:
        from importlib import import_module

        return getattr(import_module(f".{_WHERE[name]}", __name__), name)
    raise AttributeError(f"module 'mockpoeti' has no attribute {name!r}")
