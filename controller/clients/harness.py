"""The harness: runs one agent module (or its tests) in a process of its own, fenced in by the
kernel, and serves its tool calls over JSON lines on the process's stdin/stdout.

Each run gets a process of its own, never used before nor after (`agent_process.py`): a fresh
temporary working directory holding the runtime (`agent_runtime/`), then the agent's module and
its test; a clean environment (no variable of the controller's, so no secret); its own process
group (`start_new_session`), killed whole past the timeout or when the run ends. The process
starts as the sandbox launcher (`agent_runtime/launcher.py`: namespaces, Landlock, seccomp,
limits), which reports what it set up on a descriptor of its own and then execs the bootstrap;
that report is the run's `isolation`, and when the sandbox is required and the kernel cannot
give it, the run ends `refused` before any agent code exists. With a warm pool
(`warm_pool.py`) that process was started and fenced in ahead, waiting for a run; without, the
run starts it (the cold path): the same process either way, the agent's code written only once
it is fenced in. A run that answered is killed at once; a test run is left to exit (its
verdict is its exit status). Lines are at most
`max_line` bytes, `max_output` bytes in all on stdout; stderr is kept up to `max_stderr` bytes.
Tool calls are handed to `serve(tool, method, args)`; whatever it raises as `ToolRefused` is
answered to the agent as an error, anything else ends the run as failed. A test run's verdict
is its process's exit status, not a line the code under test could write.
Decides nothing about grants, budgets or records: the caller's `serve` does.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import orjson

from controller.clients.agent_process import AgentProcess, cpu_seconds, start
from controller.clients.sandbox import REQUIRED, UNSANDBOXED_HINT, Sandbox

if TYPE_CHECKING:
    from controller.clients.warm_pool import WarmPool

EXIT_GRACE = 2.0  # seconds a finished agent has to exit before its group is killed

Outcome = Literal["succeeded", "failed", "timed_out", "killed", "refused"]
TESTS_FAILED = 1  # the bootstrap's exit status when a test failed (0: every test passed)


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
    """How a run (or a test run) ended. `outcome` failed/killed/timed_out/refused come with
    `error`; `refused`: the sandbox was required and the kernel could not give it."""

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
                    sandbox: Sandbox = REQUIRED, python: str = sys.executable,
                    pool: WarmPool | None = None) -> Finished:
    """Run `code`'s `run(task)` (mode run) or `test`'s test functions (mode test). With a
    `pool` whose processes fit this run (its sandbox, its interpreter, limits under its
    ceilings), the run takes a pooled process, already fenced in; else it starts its own."""
    started = time.perf_counter()
    agent: AgentProcess | None = None
    pooled = False
    session: _Session | None = None
    isolation: dict[str, str] = {}
    try:
        try:
            async with asyncio.timeout(limits.timeout):
                if pool is not None and pool.fits(limits, sandbox, python):
                    agent = await pool.take()
                    pooled = agent is not None
                if agent is None:
                    agent = await start(memory_bytes=limits.memory_bytes,
                                        timeout=limits.timeout, sandbox=sandbox, python=python,
                                        max_line=limits.max_line, max_stderr=limits.max_stderr)
                isolation = _isolation(agent, limits)
                if "refused" in isolation:
                    finished = Finished("refused", error=(
                        f"the agent was not started: the kernel cannot sandbox it here "
                        f"({isolation['refused']}); {UNSANDBOXED_HINT}"))
                elif isolation:
                    agent.write_code(code, test)
                    session = _Session(agent.process, limits, serve, testing=mode == "test")
                    await session.send({"mode": mode, "input": input,
                                        "state": dict(state or {}), "tools": tools,
                                        "limits": {"memory": limits.memory_bytes,
                                                   "cpu": cpu_seconds(limits.timeout)}})
                    finished = await session.converse()
                else:
                    finished = Finished("failed")
        except TimeoutError:
            finished = Finished("timed_out", error=f"the run took longer than its timeout of "
                                                   f"{limits.timeout:g}s; its process group "
                                                   "was killed")
        if agent is not None and finished.outcome != "timed_out" and \
                (mode == "test" or session is None or session.ended):
            # (A run that answered is killed at once; a test run's verdict is its exit
            # status, and a process that closed its stdout is ending: they get a grace.)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(EXIT_GRACE):
                    await agent.process.wait()
    finally:
        stderr = await agent.end(remove=not pooled) if agent is not None else ""
        if pooled and pool is not None and agent is not None:
            pool.done(agent)  # its folder removed and its replacement started, meanwhile
    finished.stderr = stderr
    returncode = agent.process.returncode if agent is not None else None
    finished.tool_calls = session.tool_calls if session is not None else 0
    finished.isolation = isolation
    if mode == "test" and finished.outcome in ("succeeded", "failed"):
        _judge_tests(finished, returncode)
    if finished.outcome == "failed" and returncode is not None \
            and returncode < 0 and finished.error is None:
        finished.outcome = "killed"
        finished.error = f"the agent process was killed by signal {-returncode}"
    if not isolation and finished.outcome != "timed_out":
        finished.outcome, finished.error = "failed", (
            "the sandbox launcher ended without a report (see its stderr)")
    finished.seconds = time.perf_counter() - started
    return finished


def _isolation(agent: AgentProcess, limits: Limits) -> dict[str, str]:
    """What the launcher reported; for a pooled process started under the pool's ceilings,
    the limits its bootstrap lowers to this run's before reading the agent's code."""
    isolation = dict(agent.isolation)
    if isolation and agent.memory_bytes != limits.memory_bytes:
        isolation["memory"] = (f"RLIMIT_AS {limits.memory_bytes} bytes (set by the bootstrap "
                               "before the agent's code was read)")
    if isolation and agent.cpu_seconds != cpu_seconds(limits.timeout):
        isolation["cpu_time"] = (f"RLIMIT_CPU {cpu_seconds(limits.timeout)} s (set by the "
                                 "bootstrap before the agent's code was read)")
    return isolation


def _judge_tests(finished: Finished, returncode: int | None) -> None:
    """The verdict of a test run is the exit status the kernel reports for its process; the
    report it wrote only says which tests, and cannot turn a failure into a pass."""
    failed = (finished.tests or {}).get("failed") or []
    if returncode == 0 and finished.tests is not None and not failed:
        finished.outcome, finished.error = "succeeded", None
        return
    finished.outcome = "failed"
    if returncode == TESTS_FAILED and failed:
        finished.error = f"{len(failed)} test(s) failed"
    elif finished.error is None:
        finished.error = (f"the test process exited with status {returncode}; what it reported "
                          "is not taken as a pass")


class _Session:
    def __init__(self, process: asyncio.subprocess.Process, limits: Limits,
                 serve: Serve | None, *, testing: bool = False) -> None:
        assert process.stdin is not None and process.stdout is not None
        self._stdin = process.stdin
        self._stdout = process.stdout
        self._limits = limits
        self._serve = serve
        self._read = 0
        self.tool_calls = 0
        self.tests: dict[str, Any] | None = None  # the last test report, read to the end
        self._testing = testing  # a test run has no tool calls and no result
        self.ended = False  # its stdout reached its end: the process is exiting

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
                self.ended = True
                if self.tests is not None:
                    return Finished("failed", tests=self.tests)  # judged by the exit status
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
            if self._testing and ("call" in message or "result" in message):
                continue
            if "call" in message:
                await self._answer(message["call"])
            elif "result" in message:
                result = message["result"] if isinstance(message["result"], dict) else {}
                state = result.get("state")
                return Finished("succeeded", output=result.get("output"),
                                state=state if isinstance(state, dict) else {})
            elif "tests" in message:  # which tests; the verdict is the exit status
                self.tests = message["tests"] if isinstance(message["tests"], dict) else {}
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
