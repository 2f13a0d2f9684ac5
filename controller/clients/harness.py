"""The harness: runs one agent module (or its tests) in a process of its own and serves its tool
calls, over JSON lines on the process's stdin/stdout.

Each run gets a fresh temporary working directory holding the agent's module, its test, and the
runtime (`agent_runtime/`); a clean environment (no variable of the controller's, so no secret);
its own process group (`start_new_session`), killed whole past the timeout or when the run ends;
the memory limit (set by the child before any agent code runs: `agent_runtime/bootstrap.py`);
lines of at most `max_line` bytes and `max_output` bytes in all on stdout; stderr kept up to
`max_stderr` bytes. Tool calls are handed to `serve(tool, method, args)`; whatever it raises as
`ToolRefused` is answered to the agent as an error, anything else ends the run as failed.
Decides nothing about grants, budgets or records: the caller's `serve` does.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import orjson

RUNTIME_FILES = ("bootstrap.py", "p38_agent.py")
CLEAN_ENV = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8",
             "PYTHONIOENCODING": "utf-8", "PYTHONDONTWRITEBYTECODE": "1", "TZ": "UTC"}
EXIT_GRACE = 2.0  # seconds a finished agent has to exit before its group is killed

Outcome = Literal["succeeded", "failed", "timed_out", "killed"]


class ToolRefused(Exception):
    """A tool call the controller will not or could not perform; the agent gets the message."""


Serve = Callable[[str, str, Mapping[str, Any]], Awaitable[Any]]


@dataclass(frozen=True)
class Limits:
    timeout: float
    memory_bytes: int
    max_line: int = 1024 * 1024
    max_output: int = 8 * 1024 * 1024
    max_stderr: int = 16 * 1024


@dataclass
class Finished:
    """How a run (or a test run) ended. `outcome` failed/killed/timed_out come with `error`."""

    outcome: Outcome
    output: Any = None
    state: dict[str, Any] | None = None
    tests: dict[str, Any] | None = None
    error: str | None = None
    trace: str | None = None
    stderr: str = ""
    tool_calls: int = 0
    isolation: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0


async def run_agent(*, code: str, test: str | None = None, mode: Literal["run", "test"] = "run",
                    input: Any = None, state: Mapping[str, Any] | None = None,
                    tools: list[str], limits: Limits, serve: Serve | None = None,
                    python: str = sys.executable) -> Finished:
    """Run `code`'s `run(task)` (mode run) or `test`'s test functions (mode test)."""
    started = time.perf_counter()
    workdir = await asyncio.to_thread(_prepare, code, test)
    try:
        finished = await _supervise(workdir, mode=mode, input=input, state=state, tools=tools,
                                    limits=limits, serve=serve, python=python)
    finally:
        await asyncio.to_thread(shutil.rmtree, workdir, True)
    finished.seconds = time.perf_counter() - started
    return finished


def _prepare(code: str, test: str | None) -> Path:
    workdir = Path(tempfile.mkdtemp(prefix="p38-run-"))
    runtime = resources.files("controller.clients.agent_runtime")
    for name in RUNTIME_FILES:
        (workdir / name).write_text(runtime.joinpath(name).read_text("utf-8"), "utf-8")
    (workdir / "agent.py").write_text(code, "utf-8")
    if test is not None:
        (workdir / "test_agent.py").write_text(test, "utf-8")
    return workdir


async def _supervise(workdir: Path, *, mode: str, input: Any, state: Mapping[str, Any] | None,
                     tools: list[str], limits: Limits, serve: Serve | None,
                     python: str) -> Finished:
    env = dict(CLEAN_ENV, HOME=str(workdir), TMPDIR=str(workdir))
    process = await asyncio.create_subprocess_exec(
        python, "-I", "-S", "-B", "bootstrap.py", cwd=workdir, env=env,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, start_new_session=True, limit=limits.max_line)
    stderr = asyncio.ensure_future(_tail(process.stderr, limits.max_stderr))
    session = _Session(process, limits, serve)
    try:
        try:
            async with asyncio.timeout(limits.timeout):
                await session.send({"mode": mode, "input": input, "state": dict(state or {}),
                                    "tools": tools, "memory_bytes": limits.memory_bytes})
                finished = await session.converse()
        except TimeoutError:
            finished = Finished("timed_out", error=f"the run took longer than its timeout of "
                                                   f"{limits.timeout:g}s; its process group "
                                                   "was killed")
        if finished.outcome != "timed_out":
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(EXIT_GRACE):
                    await process.wait()
    finally:
        _kill_group(process)
        await process.wait()
    finished.stderr = await stderr
    finished.tool_calls = session.tool_calls
    finished.isolation = session.isolation
    if finished.outcome == "failed" and process.returncode is not None \
            and process.returncode < 0 and finished.error is None:
        finished.outcome = "killed"
        finished.error = f"the agent process was killed by signal {-process.returncode}"
    return finished


class _Session:
    def __init__(self, process: asyncio.subprocess.Process, limits: Limits,
                 serve: Serve | None) -> None:
        assert process.stdin is not None and process.stdout is not None
        self._stdin = process.stdin
        self._stdout = process.stdout
        self._limits = limits
        self._serve = serve
        self._read = 0
        self.tool_calls = 0
        self.isolation: dict[str, str] = {}

    async def send(self, message: Mapping[str, Any]) -> None:
        self._stdin.write(orjson.dumps(message, default=str) + b"\n")
        with contextlib.suppress(ConnectionError):
            await self._stdin.drain()

    async def converse(self) -> Finished:
        while True:
            try:
                line = await self._stdout.readline()
            except ValueError:  # asyncio's "Separator is not found, and chunk exceed the limit"
                return Finished("killed", error=f"the agent wrote a line longer than "
                                                f"{self._limits.max_line} bytes")
            if not line:
                return Finished("failed", error="the agent process ended without a result "
                                                "(see its stderr)")
            self._read += len(line)
            if self._read > self._limits.max_output:
                return Finished("killed", error=f"the agent wrote more than "
                                                f"{self._limits.max_output} bytes of output")
            try:
                message = orjson.loads(line)
            except orjson.JSONDecodeError:
                return Finished("failed", error="the agent process broke the protocol")
            if not isinstance(message, dict):
                return Finished("failed", error="the agent process broke the protocol")
            if "isolation" in message:
                self.isolation = {str(k): str(v) for k, v in dict(message["isolation"]).items()}
            elif "call" in message:
                await self._answer(message["call"])
            elif "result" in message:
                result = message["result"] if isinstance(message["result"], dict) else {}
                state = result.get("state")
                return Finished("succeeded", output=result.get("output"),
                                state=state if isinstance(state, dict) else {})
            elif "tests" in message:
                tests = message["tests"] if isinstance(message["tests"], dict) else {}
                return Finished("succeeded" if not tests.get("failed") else "failed",
                                tests=tests, error=None if not tests.get("failed") else
                                f"{len(tests['failed'])} test(s) failed")
            elif "error" in message:
                error = message["error"] if isinstance(message["error"], dict) else {}
                kind = str(error.get("type") or "Error")
                text = f"{kind}: {error.get('message') or ''}".rstrip(": ")
                if kind == "MemoryError":
                    return Finished("killed", error=f"the memory limit of "
                                                    f"{self._limits.memory_bytes} bytes was "
                                                    "reached")
                return Finished("failed", error=text, trace=str(error.get("trace") or ""))

    async def _answer(self, call: Any) -> None:
        call = call if isinstance(call, dict) else {}
        self.tool_calls += 1
        ident = call.get("id")
        tool, method = str(call.get("tool") or ""), str(call.get("method") or "")
        args = call.get("args") if isinstance(call.get("args"), dict) else {}
        if self._serve is None:
            await self.send({"id": ident, "ok": False, "error": "no tools in this run"})
            return
        try:
            value = await self._serve(tool, method, args)
        except ToolRefused as exc:
            await self.send({"id": ident, "ok": False, "error": str(exc)})
            return
        await self.send({"id": ident, "ok": True, "value": value})


async def _tail(stream: asyncio.StreamReader | None, keep: int) -> str:
    """The last `keep` bytes of a stream, read to its end (a flood costs no memory)."""
    if stream is None:
        return ""
    kept = b""
    while chunk := await stream.read(65536):
        kept = (kept + chunk)[-keep:]
    return kept.decode("utf-8", "replace")


def _kill_group(process: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
