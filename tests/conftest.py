"""Shared fixtures: real clients pointed at the `poeti` fixture's server."""

from __future__ import annotations

import httpx
import openai
import pytest


@pytest.fixture
def client(poeti) -> openai.OpenAI:
    """The official OpenAI SDK, as a user would configure it."""
    with openai.OpenAI(base_url=poeti.base_url, api_key=poeti.api_key, max_retries=0) as c:
        yield c


@pytest.fixture
def http(poeti) -> httpx.Client:
    """httpx with the default key, for wire-level checks and management endpoints."""
    with httpx.Client(base_url=poeti.url, headers={"Authorization": f"Bearer {poeti.api_key}"}) as c:
        yield c
