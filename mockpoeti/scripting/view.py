"""What matching may look at of a request: `RequestView`, plain data read from it once.

Pure. Its own module so the rule index (`rule_index.py`, which `matching` imports) can
name the type of what it reads.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mockpoeti.answers.chat_request import message_text


class RequestView:
    """What matching may look at: plain data, no aiohttp, read from the request once: `message`
    (the last user message's text), `last_role`, `turn` (how many user messages), `after_tool`
    (the function whose result the last message is, "" when no call names it). The declared
    tools' function names (`tools`) are read when a condition first asks."""

    __slots__ = ("_tools", "after_tool", "body", "endpoint", "headers", "key", "last_role", "message", "method",
                 "misses", "model", "path", "stream", "turn", "verdicts")

    def __init__(
        self, endpoint: str | None, method: str, path: str, headers: Mapping[str, str], body: Any = None,
        key: str | None = None,
    ) -> None:
        self.endpoint, self.method, self.path, self.headers, self.body, self.key = endpoint, method, path, headers, body, key
        self.verdicts: dict[str, bool] = {}  # message regex -> found in `message`: each is searched once per request
        self.misses: Any = None  # what the playbook's indexes found this request fails (Playbook.decide)
        self._tools: tuple[str, ...] | None = None
        model, stream, message, last_role, turn, after_tool = None, False, "", None, 0, None
        if isinstance(body, dict):
            model = body.get("model")
            if not isinstance(model, str):
                model = None
            stream = body.get("stream") is True
            raw = body.get("messages")
            if isinstance(raw, list):
                last = user = None  # one pass over the messages
                for m in raw:
                    if isinstance(m, dict):
                        last = m
                        if m.get("role") == "user":
                            user = m
                            turn += 1
                if last is not None:
                    role = last.get("role")
                    last_role = role if isinstance(role, str) else None
                    if user is not None:
                        content = user.get("content")
                        message = content if isinstance(content, str) else message_text(user)
                    if last_role in ("tool", "function"):
                        after_tool = answered_tool([m for m in raw if isinstance(m, dict)])
        self.model: str | None = model
        self.stream: bool = stream
        self.message: str = message
        self.last_role: str | None = last_role
        self.turn: int = turn
        self.after_tool: str | None = after_tool

    @property
    def tools(self) -> tuple[str, ...]:
        tools = self._tools
        if tools is None:
            declared = self.body.get("tools") if isinstance(self.body, dict) else None
            tools = self._tools = tuple(_tool_name(t) for t in declared) if isinstance(declared, list) else ()
        return tools


def view_of(
    endpoint: str | None, method: str, path: str, headers: Mapping[str, str], body: Any, key: str | None = None
) -> RequestView:
    """A RequestView from the parts of a request (live, or from the journal)."""
    # a case-insensitive mapping (the request's own multidict) is used as it is
    if not hasattr(headers, "getall"):
        headers = {k.lower(): v for k, v in headers.items()}
    return RequestView(endpoint, method, path, headers, body, key)


def answered_tool(messages: list[dict]) -> str:
    """The name of the function whose result the last message is: the assistant's call with
    the tool message's `tool_call_id` (a legacy `function` message names it itself); "" when
    no earlier call has that id."""
    last = messages[-1]
    if last.get("role") == "function":
        return last["name"] if isinstance(last.get("name"), str) else ""
    wanted = last.get("tool_call_id")
    for message in messages[::-1]:  # (reversed() here stops mypyc with an internal error)
        calls = message.get("tool_calls") if message.get("role") == "assistant" else None
        for call in calls if isinstance(calls, list) else ():
            if isinstance(call, dict) and call.get("id") == wanted:
                function = call.get("function")
                name = function.get("name") if isinstance(function, dict) else None
                return name if isinstance(name, str) else ""
    return ""


def _tool_name(tool: Any) -> str:
    function = tool.get("function") if isinstance(tool, dict) else None
    name = function.get("name") if isinstance(function, dict) else None
    return name if isinstance(name, str) else ""
