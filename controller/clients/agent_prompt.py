"""What Claude is told to write an agent, and how its reply becomes files.

`SYSTEM` is the long, stable part (the code contract, the tool API, what validation refuses, a
complete example): it is sent with `cache_control` so every generation after the first reads
it from the prompt cache. `brief` is the agent's own part; `fix` sends validation's exact
messages back. `parse_files` takes the reply apart: exactly one fenced block for `agent.py` and
one for `test_agent.py`, anything else a problem worded for Claude. Pure text, no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from controller.clients.agent_code import ALLOWED_IMPORTS

FILES = ("agent.py", "test_agent.py")
FENCE = re.compile(r"^```[ \t]*([^\n`]*)\n(.*?)^```[ \t]*$", re.DOTALL | re.MULTILINE)

TOOLS = """\
- http: task.tools.http.get/post/put/patch/delete/head(url=, headers=None, params=None,
  json=None) -> {"status", "content_type", "text", "json"}; public http(s) hosts only.
- notify: task.tools.notify.send(text=, target=None, data=None) -> {"status"}; posts to a
  notification target of the team's policy.
- github: task.tools.github.get(path=, params=None) -> {"json": ...}; read-only REST GET on
  the agent's own repository, path below /repos/{owner}/{repo} (e.g. "/pulls", params
  {"state": "open"}).
- n8n: task.tools.n8n.start(workflow=, data=None) -> {"status", "text", "json"}; starts
  one of the team's n8n workflows by name (once per call: not retried).
- railway: task.tools.railway.query(query=, variables=None) -> {"data": ...}; one read-only
  GraphQL query to Railway's public API (projects, services, deployments); mutations refused.
- claude: task.tools.claude.ask(prompt=, system=None, max_tokens=1024) -> {"text", "tokens"};
  counts against the agent's tokens per run.
A failed call raises p38_agent.ToolError; a tool not granted raises ToolNotGranted."""

SYSTEM_TEXT = f"""\
You write agents for project38, a GitOps controller. An agent is one Python 3.11 module,
agent.py, run in an isolated process with no network, no environment and no other files.

The contract:
- agent.py defines `run(task)` at module level. `task.input` is what the run was started with
  (any JSON value, often None), `task.state` a dict the previous run left (mutate it to hand
  something to the next run; keep it small), `task.tools.<name>` the granted tools. The return
  value is the run's result and must be JSON-serialisable.
- The outside world is reached only through tools; arguments by name. The tools:
{TOOLS}
- Imports: only these modules: {", ".join(sorted(ALLOWED_IMPORTS))}.
  Never os, sys, subprocess, socket, requests, httpx, urllib, importlib, ctypes, threading.
- Never eval, exec, compile, __import__, globals, vars, getattr with a computed name, an
  attribute whose name starts with "_" (self._x included: name attributes publicly), a module
  reached through another (contextlib.os), open() outside the working directory, or
  credentials in the code.
- The code must pass `ruff check --select E4,E7,E9,F,B` (no unused imports or names).

Also write test_agent.py: plain pytest-style `test_*` functions (no pytest import, no
fixtures) that import `run` from agent and `FakeTools`, `Task` from p38_agent.
`FakeTools(http=answer, notify=answer, ...)` answers each tool call with a value, or with
`lambda method, **kwargs: value`; `tools.called("http")` lists the calls made. Test the
behaviour the description asks for; the test must pass.

Reply with exactly two fenced code blocks and nothing else of substance:
```python agent.py
...
```
```python test_agent.py
...
```

A complete example (granted: http, notify):
```python agent.py
def run(task):
    answer = task.tools.http.get(url="https://status.example.com/api/v2/status.json")
    status = (answer.get("json") or {{}}).get("status", {{}}).get("indicator", "unknown")
    if status != task.state.get("last"):
        task.tools.notify.send(text=f"status is now {{status}}")
    task.state["last"] = status
    return {{"status": status}}
```
```python test_agent.py
from agent import run
from p38_agent import FakeTools, Task


def test_notifies_on_change_only():
    tools = FakeTools(http={{"status": 200, "json": {{"status": {{"indicator": "major"}}}}}},
                      notify={{"status": 200}})
    task = Task(input=None, state={{"last": "none"}}, tools=tools)
    assert run(task) == {{"status": "major"}}
    assert len(tools.called("notify")) == 1
    assert run(Task(input=None, state=task.state, tools=tools)) == {{"status": "major"}}
    assert len(tools.called("notify")) == 1
```
"""


def system_blocks() -> list[dict[str, Any]]:
    """The system prompt as one text block marked for the prompt cache."""
    return [{"type": "text", "text": SYSTEM_TEXT, "cache_control": {"type": "ephemeral"}}]


def brief(name: str, spec: Mapping[str, Any]) -> str:
    tools = ", ".join(spec.get("tools") or []) or "none"
    limits = spec.get("limits") or {}
    return (f"Write the agent `{name}`.\n\nWhat it must do (the team's words):\n"
            f"<description>\n{spec.get('description', '')}\n</description>\n\n"
            f"Granted tools: {tools}. A run may take at most {limits.get('timeout', '60s')} "
            f"and {limits.get('memory', '256Mi')} of memory.")


def fix(problems: Sequence[str]) -> str:
    listed = "\n".join(f"- {p}" for p in problems)
    return (f"Those files were refused:\n{listed}\n\nReply with both files again, whole and "
            "corrected, in the same two fenced blocks.")


@dataclass(frozen=True)
class Parsed:
    code: str | None
    test: str | None
    problems: tuple[str, ...]


def parse_files(text: str) -> Parsed:
    found: dict[str, list[str]] = {}
    problems: list[str] = []
    for info, body in FENCE.findall(text):
        words = info.split()
        name = next((w for w in words if w.endswith(".py") or "/" in w or "." in w), None)
        if name is None:
            problems.append("a code block names no file: open each block with ```python "
                            "agent.py or ```python test_agent.py")
        elif name not in FILES:
            problems.append(f"a code block for {name}: only agent.py and test_agent.py are "
                            "written")
        else:
            found.setdefault(name, []).append(body)
    if not found and not problems:
        return Parsed(None, None, ("no code block in the reply: send agent.py and "
                                   "test_agent.py as two fenced blocks",))
    for name in FILES:
        if len(found.get(name, [])) > 1:
            problems.append(f"two code blocks for {name}: send each file once")
        elif name not in found:
            problems.append(f"no code block for {name}")
    code = found.get("agent.py", [None])[0]
    test = found.get("test_agent.py", [None])[0]
    return Parsed(code, test, tuple(problems))
