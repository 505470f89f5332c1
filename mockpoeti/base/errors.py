"""The exceptions mockpoeti raises: one base class, two families.

`ApiError` is an answer to a client (rendered in the unified error format by
the HTTP edge); `ConfigError` is a problem in a file the user gave us.
"""

from __future__ import annotations


class MockpoetiError(Exception):
    """Base class of every error mockpoeti raises on purpose."""


class ApiError(MockpoetiError):
    """An error answer: a code from the error catalog, a message, extra headers.

    The HTTP status comes from the catalog, so a user's catalog can change it.
    """

    def __init__(
        self,
        code: str,
        message: str | None = None,
        *,
        headers: dict[str, str] | None = None,
        status: int | None = None,
        close: bool = False,
    ):
        super().__init__(message or code)
        self.code = code
        self.message = message
        self.headers = headers or {}
        self.status = status  # overrides the catalog's (scenarios may script any status)
        self.close = close  # the connection cannot be trusted any further (a body that cannot be decoded)

    def again(self) -> ApiError:
        """The same error, fresh: to keep or raise again without the frames of the first raise."""
        return ApiError(self.code, self.message, headers=self.headers, status=self.status, close=self.close)


class ConfigError(MockpoetiError):
    """A fixture or scenario file that cannot be used, with where and why."""

    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = problems


def invalid(field: str, expected: str) -> ApiError:
    """An `invalid_request` naming the offending field: clients fix what we name."""
    return ApiError("invalid_request", f"Invalid value for '{field}': expected {expected}.")
