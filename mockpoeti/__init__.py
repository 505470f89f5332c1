"""mockpoeti: an offline, stateful test double of the poeti.ai API.

Public names are loaded on first use, so `import mockpoeti` (and the pytest
plugin it registers) stays cheap until a server is actually wanted.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

__version__ = "0.1.0"
__all__ = ["ApiError", "ConfigError", "MockServer", "MockpoetiError", "Settings", "__version__"]

if TYPE_CHECKING:
    from .errors import ApiError, ConfigError, MockpoetiError
    from .server import MockServer
    from .settings import Settings

_WHERE = {
    "MockServer": "server",
    "Settings": "settings",
    "MockpoetiError": "errors",
    "ApiError": "errors",
    "ConfigError": "errors",
}


def __getattr__(name: str):
    if name in _WHERE:
        from importlib import import_module

        return getattr(import_module(f".{_WHERE[name]}", __name__), name)
    raise AttributeError(f"module 'mockpoeti' has no attribute {name!r}")
