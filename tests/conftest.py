"""Shared fixtures: real clients pointed at the `poeti` fixture's server, and its twin.

The suite runs seeded with a frozen clock (pyproject.toml: poeti_seed, poeti_clock),
so what the `poeti` fixture's server answers is exact and can be asserted exactly.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterator
from datetime import datetime

import httpx
import openai
import pytest

import mockpoeti
from mockpoeti import MockServer

# Imported here, before any test runs, because they are otherwise first imported lazily (by a server,
# a scenario file, a first request): `pytester` (tests/test_plugin.py runs pytest in this process) takes
# them out of sys.modules again after the test that first imported them, and the next import makes new
# classes while older modules keep the first ones. httpx2's exception map then no longer knew httpcore2's
# ReadTimeout (a client timeout escaped raw instead of as openai.APITimeoutError; httpx and httpcore
# the same: a RemoteProtocolError escaped `suppress(httpx.HTTPError)`), and YAML fixtures no longer
# loaded ("could not determine a constructor"). Which tests met which depended on how xdist shared
# them out between its workers, that is on timing.
for _module in ("httpcore", "httpcore2", "yaml", *(m.name for m in pkgutil.walk_packages(mockpoeti.__path__, "mockpoeti.")
                                       if not m.name.endswith("__main__"))):
    importlib.import_module(_module)


@pytest.fixture
def client(poeti) -> Iterator[openai.OpenAI]:
    """The official OpenAI SDK, as a user would configure it."""
    with openai.OpenAI(base_url=poeti.base_url, api_key=poeti.api_key, max_retries=0) as c:
        yield c


@pytest.fixture
def http(poeti) -> Iterator[httpx.Client]:
    """httpx with the default key, for wire-level checks and management endpoints."""
    with httpx.Client(base_url=poeti.url, headers={"Authorization": f"Bearer {poeti.api_key}"}) as c:
        yield c


@pytest.fixture(scope="session")
def frozen_at(poeti_clock: str | None) -> int:
    """The Unix second the `poeti` fixture's clock is frozen at: every `created` it answers."""
    assert poeti_clock, "the suite runs with a frozen clock: poeti_clock in pyproject.toml"
    return int(datetime.fromisoformat(poeti_clock).timestamp())


@pytest.fixture
def twin(poeti_seed: int | None, poeti_clock: str | None) -> Iterator[openai.OpenAI]:
    """The SDK on a second, fresh server set up as the `poeti` fixture's (same seed, same
    frozen clock): the same requests in the same order get the same answers from both, ids
    and text included. What the twin answers is what the fixture's server must answer."""
    assert poeti_seed is not None and poeti_clock, "the suite runs seeded: poeti_seed and poeti_clock in pyproject.toml"
    with MockServer(seed=poeti_seed, clock=poeti_clock) as server:
        with openai.OpenAI(base_url=server.base_url, api_key=server.api_key, max_retries=0) as c:
            yield c
