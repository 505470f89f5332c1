"""The pytest plugin: fixture `poeti`, a running MockServer with fresh state per test.

Kept import-light: pytest loads it in every session once mockpoeti is installed.
"""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "poeti_scenario(*names): activate mockpoeti scenarios for this test")


@pytest.fixture
def poeti():
    from .server import MockServer

    with MockServer() as server:
        yield server
