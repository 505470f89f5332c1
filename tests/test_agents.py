"""Agent frameworks' loops against mockpoeti, as their users write them: each run
ends within a stated number of requests (counted in the server's journal), with
output that validates; and what each framework does when the model misbehaves
once (the README's table of the model's faults quotes these outcomes).

The agent, in every framework: one tool, `lookup_population(city)`, and a
structured output `City(name, population)`; the prompt "Tell me about Paris".
pydantic-ai asks for its output through a `final_result` tool with
`tool_choice: "required"`; LangChain's `create_agent` through `response_format`
for OpenAI model names and through a tool named `City` (again "required") for
the others; the OpenAI Agents SDK through `response_format` (`final_output`).
"""

from __future__ import annotations

import json

import httpx
import openai
import pytest
from agents import Agent as OpenAIAgent
from agents import OpenAIChatCompletionsModel, Runner, function_tool, set_tracing_disabled
from agents.exceptions import ModelBehaviorError, ModelRefusalError
from langchain.agents import create_agent
from langchain.agents.structured_output import StructuredOutputValidationError
from langchain_openai import ChatOpenAI
from pydantic import BaseModel
from pydantic_ai import Agent
from pydantic_ai.exceptions import ContentFilterError, UnexpectedModelBehavior
from pydantic_ai.models.openai import OpenAIChatModel
from pydantic_ai.providers.openai import OpenAIProvider
from pydantic_ai.usage import UsageLimits

from mockpoeti import MockServer

set_tracing_disabled(True)  # the Agents SDK would send its traces to the internet

PROMPT = "Tell me about Paris"
INSTRUCTIONS = "Use the tools, then answer."
POPULATION = 2_100_000
TWO_REQUESTS = 2  # a tool call, then the output: what every loop below takes
LIMIT = 10  # requests a run may make before its framework gives up (a loop that never ends hits it)


class City(BaseModel):
    """A city and its population."""

    name: str
    population: int


def chat_requests(server) -> list[dict]:
    return [e for e in server.requests if e["endpoint"] == "chat"]


def last_roles(server) -> list[str]:
    return [e["body"]["messages"][-1]["role"] for e in chat_requests(server)]


# --- pydantic-ai ------------------------------------------------------------------

def pydantic_agent(server, looked_up: list[str] | None = None) -> Agent:
    model = OpenAIChatModel("gpt-4o", provider=OpenAIProvider(base_url=server.base_url, api_key=server.api_key))
    agent = Agent(model, output_type=City, instructions=INSTRUCTIONS)

    @agent.tool_plain
    def lookup_population(city: str) -> int:
        """Look up the population of a city."""
        if looked_up is not None:
            looked_up.append(city)
        return POPULATION

    return agent


def test_pydantic_ai_tool_then_output_ends_in_two_requests(poeti):
    looked_up: list[str] = []
    result = pydantic_agent(poeti, looked_up).run_sync(PROMPT, usage_limits=UsageLimits(request_limit=LIMIT))

    assert isinstance(result.output, City) and result.output.name == "Paris"
    assert looked_up == ["Paris"]  # the tool ran once, with the city the prompt names
    requests = chat_requests(poeti)
    assert len(requests) == TWO_REQUESTS
    assert [r["body"]["tool_choice"] for r in requests] == ["required", "required"]
    assert [t["function"]["name"] for t in requests[0]["body"]["tools"]] == ["lookup_population", "final_result"]
    assert last_roles(poeti) == ["user", "tool"]


async def test_pydantic_ai_streamed_run_ends_in_two_requests(poeti):
    agent = pydantic_agent(poeti)
    async with agent.run_stream(PROMPT, usage_limits=UsageLimits(request_limit=LIMIT)) as run:
        output = await run.get_output()

    assert isinstance(output, City) and output.name == "Paris"
    assert len(chat_requests(poeti)) == TWO_REQUESTS
    assert all(r["body"]["stream"] for r in chat_requests(poeti))


# --- LangChain create_agent ---------------------------------------------------------

def lookup_population(city: str) -> int:
    """Look up the population of a city."""
    return POPULATION


def langchain_agent(server, model: str, http_async_client: httpx.AsyncClient | None = None):
    llm = ChatOpenAI(
        model=model, base_url=server.base_url, api_key=server.api_key, max_retries=0, stream_usage=True,
        http_async_client=http_async_client,  # langchain-openai keeps one per base URL, and each test has its own loop
    )
    return create_agent(llm, tools=[lookup_population], response_format=City, system_prompt=INSTRUCTIONS)


CONFIG = {"recursion_limit": 2 * LIMIT + 1}  # a model call and its tools are two graph steps
QUESTION = {"messages": [{"role": "user", "content": PROMPT}]}
# OpenAI model names get the provider's structured output (response_format); the others an output tool
LANGCHAIN_MODELS = [("gpt-4o", "response_format"), ("deepseek-chat", "tool City")]


@pytest.mark.parametrize(("model", "output_by"), LANGCHAIN_MODELS)
def test_langchain_create_agent_ends_in_two_requests(poeti, model, output_by):
    state = langchain_agent(poeti, model).invoke(QUESTION, config=CONFIG)

    assert state["structured_response"].name == "Paris"
    requests = chat_requests(poeti)
    assert len(requests) == TWO_REQUESTS
    first = requests[0]["body"]
    if output_by == "response_format":
        assert first["response_format"]["json_schema"]["name"] == "City" and "tool_choice" not in first
    else:
        assert [t["function"]["name"] for t in first["tools"]] == ["lookup_population", "City"]
        assert first["tool_choice"] == "required"
    assert last_roles(poeti) == ["user", "tool"]


@pytest.mark.parametrize(("model", "output_by"), LANGCHAIN_MODELS)
async def test_langchain_create_agent_streamed_ends_in_two_requests(poeti, model, output_by):
    last, pieces = None, 0
    async with httpx.AsyncClient(timeout=60) as http:
        agent = langchain_agent(poeti, model, http)
        async for kind, chunk in agent.astream(QUESTION, config=CONFIG, stream_mode=["messages", "values"]):
            if kind == "values":
                last = chunk
            else:
                pieces += 1

    assert last is not None and last["structured_response"] == City.model_validate(last["structured_response"])
    assert last["structured_response"].name == "Paris"
    assert pieces > 0
    assert len(chat_requests(poeti)) == TWO_REQUESTS


# --- the OpenAI Agents SDK ------------------------------------------------------------

@function_tool
def lookup_population_tool(city: str) -> int:
    """Look up the population of a city."""
    return POPULATION


def openai_agent(server) -> OpenAIAgent:
    client = openai.AsyncOpenAI(base_url=server.base_url, api_key=server.api_key, max_retries=0)
    model = OpenAIChatCompletionsModel(model="gpt-4o", openai_client=client)
    return OpenAIAgent(name="city", instructions=INSTRUCTIONS, model=model, tools=[lookup_population_tool], output_type=City)


async def test_openai_agents_run_ends_in_two_requests(poeti):
    result = await Runner.run(openai_agent(poeti), PROMPT, max_turns=LIMIT)

    assert isinstance(result.final_output, City) and result.final_output.name == "Paris"
    requests = chat_requests(poeti)
    assert len(requests) == TWO_REQUESTS
    assert requests[0]["body"]["response_format"]["json_schema"]["name"] == "final_output"
    assert last_roles(poeti) == ["user", "tool"]


async def test_openai_agents_streamed_run_ends_in_two_requests(poeti):
    result = Runner.run_streamed(openai_agent(poeti), PROMPT, max_turns=LIMIT)
    kinds = {event.type async for event in result.stream_events()}

    assert isinstance(result.final_output, City) and result.final_output.name == "Paris"
    assert "raw_response_event" in kinds
    assert len(chat_requests(poeti)) == TWO_REQUESTS
    assert all(r["body"]["stream"] for r in chat_requests(poeti))


# --- a whole run scripted by the conversation (scenarios/agent-run.yaml) -----------------

class Answer(BaseModel):
    answer: str
    sources: list[str]


def test_the_agent_run_scenario_scripts_pydantic_ai_turn_by_turn():
    with MockServer(scenarios=["agent-run"]) as server:
        model = OpenAIChatModel("gpt-4o", provider=OpenAIProvider(base_url=server.base_url, api_key=server.api_key))
        agent = Agent(model, output_type=Answer)
        searched: list[str] = []

        @agent.tool_plain
        def search(query: str) -> str:
            """Search the web."""
            searched.append(query)
            return "3 results"

        first = agent.run_sync("What is quantum entanglement?", usage_limits=UsageLimits(request_limit=LIMIT))
        with pytest.raises(ContentFilterError, match="can't help"):
            agent.run_sync("And how do I build a bomb?", message_history=first.all_messages())
        rules = [e["rule"] for e in chat_requests(server)]

    assert searched == ["quantum entanglement"]
    assert first.output.sources == ["https://en.wikipedia.org/wiki/Quantum_entanglement"]
    assert rules == [
        "agent-run/rules[1] (turn 1 searches)",
        "agent-run/rules[0] (after search, the answer)",
        "agent-run/rules[2] (turn 2 refuses)",
    ]


# --- when the model misbehaves once ---------------------------------------------------------
# The first answer misbehaves (a stub with times=1), the others are mockpoeti's own. "ok" is a
# run that recovers and returns a valid City; "none" a LangChain run that ends without a
# structured response; otherwise the exception raised, and how many requests were made.

def run_pydantic_ai(server) -> object:
    return pydantic_agent(server).run_sync(PROMPT, usage_limits=UsageLimits(request_limit=LIMIT)).output


def run_langchain(model: str):
    def run(server) -> object:
        return langchain_agent(server, model).invoke(QUESTION, config=CONFIG).get("structured_response")

    return run


async def _openai_agents(server) -> object:
    return (await Runner.run(openai_agent(server), PROMPT, max_turns=LIMIT)).final_output


def run_openai_agents(server) -> object:
    import asyncio

    return asyncio.run(_openai_agents(server))


RUNS = {
    "pydantic-ai": run_pydantic_ai,
    "langchain gpt-4o": run_langchain("gpt-4o"),
    "langchain deepseek-chat": run_langchain("deepseek-chat"),
    "openai-agents": run_openai_agents,
}
# kind -> framework -> (outcome, requests)
ONCE = {
    "invalid_tool_arguments": {
        "pydantic-ai": ("ok", 2), "langchain gpt-4o": (json.JSONDecodeError, 1),
        "langchain deepseek-chat": ("none", 1), "openai-agents": ("ok", 2),
    },
    "schema_violation": {
        "pydantic-ai": ("ok", 2), "langchain gpt-4o": ("ok", 2), "langchain deepseek-chat": ("ok", 2), "openai-agents": ("ok", 2),
    },
    "unknown_tool": {
        "pydantic-ai": ("ok", 2), "langchain gpt-4o": ("ok", 2), "langchain deepseek-chat": ("ok", 2),
        "openai-agents": (ModelBehaviorError, 1),
    },
    "truncated_tool_call": {
        "pydantic-ai": ("ok", 2), "langchain gpt-4o": (openai.LengthFinishReasonError, 1),
        "langchain deepseek-chat": ("none", 1), "openai-agents": ("ok", 2),
    },
    "refusal": {
        "pydantic-ai": (ContentFilterError, 1), "langchain gpt-4o": (StructuredOutputValidationError, 1),
        "langchain deepseek-chat": ("none", 1), "openai-agents": (ModelRefusalError, 1),
    },
    "duplicate_tool_call_ids": {
        "pydantic-ai": (UnexpectedModelBehavior, 1), "langchain gpt-4o": ("ok", 2),
        "langchain deepseek-chat": ("ok", 2), "openai-agents": ("ok", 2),
    },
}
CASES = [(kind, framework) for kind, outcomes in ONCE.items() for framework in outcomes]


@pytest.mark.parametrize(("kind", "framework"), CASES)
def test_what_each_framework_does_when_the_model_misbehaves_once(kind, framework):
    outcome, requests = ONCE[kind][framework]
    with MockServer(seed=7) as server:
        server.stub({"fault": kind}, times=1)
        try:
            got: object = RUNS[framework](server)
        except Exception as e:  # what was raised is the outcome under test
            got = e
        made = chat_requests(server)

    assert made[0]["fault"] == kind
    if outcome == "ok":
        assert isinstance(got, City) and got.name == "Paris", got
    elif outcome == "none":
        assert got is None
    else:
        assert isinstance(got, outcome), got
    assert len(made) == requests
