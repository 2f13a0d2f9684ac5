"""What an agent's code sees: `Task` (input, state, tools) and, for its test, `FakeTools`.

This file is copied next to the agent's module into the run's working directory and imported
there by the agent process (never by the controller). A tool call is one JSON line to the
controller and one answer back (`bootstrap.py` holds the pipe); the controller checks the grant
and the budget again, so nothing here is a security boundary. Standard library only.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

TOOLS = ("http", "notify", "github", "railway", "n8n", "claude")


class ToolError(Exception):
    """The controller refused or could not perform a tool call; the message says why."""


class ToolNotGranted(ToolError):
    """The agent's manifest does not grant this tool."""


Send = Callable[[str, str, dict[str, Any]], Any]


class Tool:
    """One granted tool: every method call is a request to the controller."""

    def __init__(self, name: str, send: Send) -> None:
        self._name = name
        self._send = send

    def __getattr__(self, method: str) -> Callable[..., Any]:
        if method.startswith("_"):
            raise AttributeError(method)

        def call(*args: Any, **kwargs: Any) -> Any:
            if args:
                raise TypeError(f"tools.{self._name}.{method}: pass arguments by name")
            return self._send(self._name, method, kwargs)

        return call


class Tools:
    """`task.tools.<tool>` for each granted tool; any other name raises `ToolNotGranted`."""

    def __init__(self, granted: list[str], send: Send) -> None:
        self._granted = tuple(granted)
        self._tools = {name: Tool(name, send) for name in granted}

    def __getattr__(self, name: str) -> Tool:
        if name.startswith("_"):
            raise AttributeError(name)
        tool = self._tools.get(name)
        if tool is None:
            raise ToolNotGranted(f"tool {name!r} is not granted to this agent (granted: "
                                 f"{', '.join(self._granted) or 'none'})")
        return tool


class Task:
    """`input`: what this run was started with. `state`: what the previous run left (a dict;
    what it holds when `run` returns is handed to the next run). `tools`: the granted tools."""

    def __init__(self, input: Any = None, state: dict[str, Any] | None = None,
                 tools: Any = None) -> None:
        self.input = input
        self.state: dict[str, Any] = state if state is not None else {}
        self.tools = tools if tools is not None else FakeTools()


class FakeTools:
    """Tools for an agent's test: `FakeTools(http=answer, notify=answer, ...)`, where an answer
    is a value or a function `(method, **kwargs) -> value`; every call is kept in `calls` as
    `(tool, method, kwargs)`. A tool given no answer returns None; one not named is not
    granted."""

    def __init__(self, **answers: Any) -> None:
        unknown = sorted(set(answers) - set(TOOLS))
        if unknown:
            raise ValueError(f"unknown tools {unknown}; the tools are {', '.join(TOOLS)}")
        self.calls: list[tuple[str, str, dict[str, Any]]] = []
        self._answers = answers
        self._tools = Tools(list(answers), self._answer)

    def _answer(self, tool: str, method: str, kwargs: dict[str, Any]) -> Any:
        self.calls.append((tool, method, kwargs))
        answer = self._answers[tool]
        return answer(method, **kwargs) if callable(answer) else answer

    def __getattr__(self, name: str) -> Tool:
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._tools, name)  # type: ignore[no-any-return]

    def called(self, tool: str, method: str | None = None) -> list[dict[str, Any]]:
        """The arguments of every call of `tool` (and `method`), in order."""
        return [kw for t, m, kw in self.calls if t == tool and method in (None, m)]
