"""Which handler a method and path go to: a dict for fixed paths, a short list
for paths with `{name}` segments. Route names double as scenario `endpoint`s.

aiohttp's Application router would do this too, but it comes with the layers
(match info objects, middleware chain, signals) that every request pays for;
mockpoeti needs a few dozen routes and one pipeline (see `pipeline.py`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, NamedTuple

from aiohttp import web

from mockpoeti.base.errors import ApiError

if TYPE_CHECKING:
    from mockpoeti.http.call import Call

Handler = Callable[["Call"], Awaitable[web.StreamResponse]]


class Route(NamedTuple):
    name: str
    handler: Handler


class Router:
    def __init__(self) -> None:
        self._fixed: dict[str, dict[str, Route]] = {}
        self._templated: list[tuple[tuple[str, ...], dict[str, Route]]] = []

    def add(self, method: str, path: str, handler: Handler, *, name: str) -> None:
        route = Route(name, handler)
        if "{" not in path:
            methods = self._fixed.setdefault(path, {})
        else:
            parts = tuple(path.split("/"))
            methods = next((m for p, m in self._templated if p == parts), {})
            if not methods:
                self._templated.append((parts, methods))
        methods[method] = route
        if method == "GET":
            methods.setdefault("HEAD", route)

    def add_get(self, path: str, handler: Handler, *, name: str) -> None:
        self.add("GET", path, handler, name=name)

    def add_post(self, path: str, handler: Handler, *, name: str) -> None:
        self.add("POST", path, handler, name=name)

    def add_put(self, path: str, handler: Handler, *, name: str) -> None:
        self.add("PUT", path, handler, name=name)

    def add_delete(self, path: str, handler: Handler, *, name: str) -> None:
        self.add("DELETE", path, handler, name=name)

    def resolve(self, method: str, path: str) -> tuple[Route | None, dict[str, str], ApiError | None]:
        """The route, its path parameters, and the error to answer if nothing else does
        (404 for an unknown path, 405 with `Allow` for a known path and another method)."""
        params: dict[str, str] = {}
        methods = self._fixed.get(path)
        if methods is None:
            methods, params = self._templated_match(path)
        if methods is None:
            return None, params, ApiError("not_found")
        route = methods.get(method)
        if route is None:
            allowed = sorted(methods)
            error = ApiError(
                "method_not_allowed",
                f"Method {method} is not allowed on this endpoint; allowed: {', '.join(allowed)}.",
                headers={"Allow": ",".join(allowed)},
            )
            return None, params, error
        return route, params, None

    def _templated_match(self, path: str) -> tuple[dict[str, Route] | None, dict[str, str]]:
        parts = path.split("/")
        for template, methods in self._templated:
            if len(template) != len(parts):
                continue
            params = {}
            for want, got in zip(template, parts, strict=True):
                if want[:1] == "{":
                    if not got:
                        break
                    params[want[1:-1]] = got
                elif want != got:
                    break
            else:
                return methods, params
        return None, {}
