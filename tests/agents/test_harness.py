"""The harness with real processes: limits, isolation and the tool protocol."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from controller.clients.harness import Limits, ToolRefused
from tests.agents.conftest import SECRET, RunAgent

QUICK = Limits(timeout=5.0, memory_bytes=256 * 1024 * 1024)


async def test_state_is_handed_over_and_tools_are_served(run: RunAgent) -> None:
    """`task.state` comes in and goes out; a granted tool call reaches `serve`."""
    seen: list[tuple[str, str, Mapping[str, Any]]] = []

    async def serve(tool: str, method: str, args: Mapping[str, Any]) -> Any:
        seen.append((tool, method, args))
        return {"status": 200}

    code = ("def run(task):\n    task.state['n'] = task.state['n'] + 1\n"
            "    return task.tools.http.get(url='https://example.com')\n")
    done = await run(code=code, tools=["http"], state={"n": 1}, limits=QUICK,
                           serve=serve)
    assert (done.outcome, done.output, done.state) == ("succeeded", {"status": 200}, {"n": 2})
    assert seen == [("http", "get", {"url": "https://example.com"})]


async def test_a_tool_not_granted_is_refused_before_and_by_the_controller(
        run: RunAgent) -> None:
    """The runtime refuses an ungranted tool; a refusal from `serve` reaches the agent."""
    async def serve(tool: str, method: str, args: Mapping[str, Any]) -> Any:
        raise ToolRefused("budget spent")

    code = ("def run(task):\n    out = []\n    for use in (lambda: task.tools.github.get(),\n"
            "                lambda: task.tools.notify.send(text='x')):\n"
            "        try:\n            use()\n        except Exception as exc:\n"
            "            out.append(str(exc))\n    return out\n")
    done = await run(code=code, tools=["notify"], limits=QUICK, serve=serve)
    assert done.output[0].startswith("tool 'github' is not granted")
    assert done.output[1] == "budget spent"


async def test_the_timeout_kills_the_process_group(run: RunAgent) -> None:
    done = await run(code="import time\n\n\ndef run(task):\n    time.sleep(30)\n",
                           tools=[], limits=Limits(timeout=1.0, memory_bytes=QUICK.memory_bytes))
    assert done.outcome == "timed_out" and done.seconds < 10


async def test_the_memory_limit_ends_the_run(run: RunAgent) -> None:
    done = await run(code="def run(task):\n    return len(bytearray(1 << 30))\n",
                           tools=[], limits=QUICK)
    assert done.outcome == "killed" and "memory limit" in (done.error or "")


async def test_a_flood_of_output_is_capped(run: RunAgent) -> None:
    """Prints go to stderr, kept to its tail; the protocol's lines are capped."""
    done = await run(code="def run(task):\n    print('x' * 100000)\n"
                                "    return 'y' * 3000000\n",
                           tools=[], limits=QUICK)
    assert done.outcome == "killed" and "longer than" in (done.error or "")
    assert len(done.stderr) <= QUICK.max_stderr


async def test_a_crash_is_reported_with_its_trace(run: RunAgent) -> None:
    done = await run(code="def run(task):\n    return 1 / 0\n", tools=[], limits=QUICK)
    assert done.outcome == "failed" and done.error == "ZeroDivisionError: division by zero"
    assert "agent.py" in (done.trace or "")


async def test_no_secret_reaches_the_agent(run: RunAgent) -> None:
    """The environment is clean; the controller's /proc environment cannot be read (its
    ANTHROPIC_API_KEY was set before any agent process started: the `run` fixture)."""
    assert os.environ["ANTHROPIC_API_KEY"] == SECRET
    code = ("def run(task):\n    seen = []\n    for path in ('/proc/self/environ', "
            f"'/proc/{os.getpid()}/environ'):\n"
            "        try:\n            seen.append(open(path, 'rb').read().decode())\n"
            "        except Exception as exc:\n            seen.append(type(exc).__name__)\n"
            "    return seen\n")
    done = await run(code=code, tools=[], limits=QUICK)
    assert done.outcome == "succeeded"
    assert "sk-ant" not in str(done.output) and done.output == ["Refused", "Refused"]


async def test_sockets_are_refused_at_run_time(run: RunAgent) -> None:
    """Even past the static check, the audit hook refuses the socket module."""
    sock = await run(code="import socket\n\n\ndef run(task):\n    return 1\n", tools=[],
                           limits=QUICK)
    assert sock.outcome == "failed" and "may not import socket" in (sock.error or "")
