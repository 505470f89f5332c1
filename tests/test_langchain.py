"""LangChain's standard integration suite for chat models (`langchain-tests`), run
with `ChatOpenAI` against the `poeti` fixture's server.

Every test that needs no judgement from a model passes, and so do the tool-call
tests whose arguments are in the prompt ("What is the value of
magic_function(3)?" calls `magic_function(input=3)`; a customer named '你好啊集团'
is called so): arguments take the prompt's numbers, quoted text and names where
they fit the schema. The one that needs judgement is strict-xfailed below, with
its reason.
The multimodal tests stay skipped (their switches are off): each downloads its
image, PDF or audio from the internet first.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable

import httpx
import pytest
from langchain_openai import ChatOpenAI
from langchain_tests.integration_tests import ChatModelIntegrationTests

SEED = 20240611  # answers are seeded: with a fixed seed, the xfails below fail the same way every run


def needs_judgement(reason: str) -> Callable:
    """The standard test of that name, strict-xfailed (its parametrization kept)."""

    def mark(method: Callable) -> Callable:
        base = getattr(ChatModelIntegrationTests, method.__name__)
        if inspect.iscoroutinefunction(base):

            @functools.wraps(base)
            async def test(self, *args, **kwargs):
                return await base(self, *args, **kwargs)

        else:

            @functools.wraps(base)
            def test(self, *args, **kwargs):
                return base(self, *args, **kwargs)

        return pytest.mark.xfail(strict=True, reason=reason)(test)

    return mark


class TestChatOpenAIAgainstPoeti(ChatModelIntegrationTests):
    @pytest.fixture(autouse=True)
    def _server(self, poeti):
        poeti.reset(seed=SEED)
        self.server = poeti
        # langchain-openai caches one async httpx client per base URL; each test has its own event loop
        self.async_http = httpx.AsyncClient(timeout=60)

    @property
    def chat_model_class(self) -> type[ChatOpenAI]:
        return ChatOpenAI

    @property
    def chat_model_params(self) -> dict:
        return {
            "model": "gpt-4o",
            "base_url": self.server.base_url,
            "api_key": self.server.api_key,
            "stream_usage": True,  # ChatOpenAI asks for usage in streams only from api.openai.com unless told
            "http_async_client": self.async_http,
        }

    @property
    def model_override_value(self) -> str:
        return "gpt-4o-mini"

    @property
    def supports_json_mode(self) -> bool:
        return True

    @needs_judgement("json_object mode has no schema: the keys 'setup' and 'punchline' are named only in the prompt's prose")
    def test_json_mode(self): ...
