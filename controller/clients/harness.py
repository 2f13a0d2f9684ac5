"""The harness: runs one agent module (or its tests) in a process of its own, fenced in by the
kernel, and serves its tool calls over JSON lines on the process's stdin/stdout.

Each run gets a fresh temporary working directory holding the agent's module, its test, and the
runtime (`agent_runtime/`); a clean environment (no variable of the controller's, so no secret);
its own process group (`start_new_session`), killed whole past the timeout or when the run ends.
The process starts as the sandbox launcher (`agent_runtime/launcher.py`: namespaces, Landlock,
seccomp, limits), which reports what it set up on a descriptor of its own and then execs the
bootstrap; that report is the run's `isolation`, and when the sandbox is required and the
kernel cannot give it, the run ends `refused` before any agent code exists. Lines are at most
`max_line` bytes, `max_output` bytes in all on stdout; stderr is kept up to `max_stderr` bytes.
Tool calls are handed to `serve(tool, method, args)`; whatever it raises as `ToolRefused` is
answered to the agent as an error, anything else ends the run as failed. A test run's verdict
is its process's exit status, not a line the code under test could write.
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

from controller.clients.sandbox import (
    REQUIRED,
    UNSANDBOXED_HINT,
    Sandbox,
    encode,
    interpreter,
    launch_config,
    launcher_path,
    read_report,
)

RUNTIME_FILES = ("bootstrap.py", "p38_agent.py")
CODE, FILES = "code", "files"  # the run folder's two parts
CLEAN_ENV = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8",
             "PYTHONIOENCODING": "utf-8", "PYTHONDONTWRITEBYTECODE": "1", "TZ": "UTC"}
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
                    sandbox: Sandbox = REQUIRED, python: str = sys.executable) -> Finished:
    """Run `code`'s `run(task)` (mode run) or `test`'s test functions (mode test)."""
    started = time.perf_counter()
    workdir = await asyncio.to_thread(_prepare, code, test)
    try:
        finished = await _supervise(workdir, mode=mode, input=input, state=state, tools=tools,
                                    limits=limits, serve=serve, sandbox=sandbox,
                                    python=interpreter(python))
    finally:
        await asyncio.to_thread(shutil.rmtree, workdir, True)
    finished.seconds = time.perf_counter() - started
    return finished


def _prepare(code: str, test: str | None) -> Path:
    """The run's folder: `code/` (the module, its test, the runtime: read only to the agent,
    the only folder it imports from) and `files/`, its working directory."""
    workdir = Path(tempfile.mkdtemp(prefix="p38-run-"))
    (workdir / CODE).mkdir()
    (workdir / FILES).mkdir()
    runtime = resources.files("controller.clients.agent_runtime")
    for name in RUNTIME_FILES:
        (workdir / CODE / name).write_text(runtime.joinpath(name).read_text("utf-8"), "utf-8")
    (workdir / CODE / "agent.py").write_text(code, "utf-8")
    if test is not None:
        (workdir / CODE / "test_agent.py").write_text(test, "utf-8")
    return workdir


async def _supervise(workdir: Path, *, mode: str, input: Any, state: Mapping[str, Any] | None,
                     tools: list[str], limits: Limits, serve: Serve | None, sandbox: Sandbox,
                     python: str) -> Finished:
    scratch = workdir / FILES
    env = dict(CLEAN_ENV, HOME=str(scratch), TMPDIR=str(scratch))
    read_end, write_end = os.pipe()
    config = launch_config(code=workdir / CODE, scratch=scratch, python=python,
                           argv=["-I", "-S", "-B", str(workdir / CODE / "bootstrap.py")],
                           env=env, memory_bytes=limits.memory_bytes, timeout=limits.timeout,
                           report_fd=write_end, sandbox=sandbox)
    try:
        process = await asyncio.create_subprocess_exec(
            python, "-I", "-S", "-B", launcher_path(), encode(config),
            cwd=scratch, env=env, stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            start_new_session=True, limit=limits.max_line, pass_fds=(write_end,))
    except BaseException:
        os.close(read_end)
        raise
    finally:
        os.close(write_end)
    stderr = asyncio.ensure_future(_tail(process.stderr, limits.max_stderr))
    session = _Session(process, limits, serve, testing=mode == "test")
    isolation: dict[str, str] = {}
    try:
        try:
            async with asyncio.timeout(limits.timeout):
                isolation = await read_report(read_end)
                if "refused" in isolation:
                    finished = Finished("refused", error=(
                        f"the agent was not started: the kernel cannot sandbox it here "
                        f"({isolation['refused']}); {UNSANDBOXED_HINT}"))
                else:
                    await session.send({"mode": mode, "input": input,
                                        "state": dict(state or {}), "tools": tools})
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
    finished.isolation = isolation
    if mode == "test" and finished.outcome in ("succeeded", "failed"):
        _judge_tests(finished, process.returncode)
    if finished.outcome == "failed" and process.returncode is not None \
            and process.returncode < 0 and finished.error is None:
        finished.outcome = "killed"
        finished.error = f"the agent process was killed by signal {-process.returncode}"
    if not isolation and finished.outcome != "timed_out":
        finished.outcome, finished.error = "failed", (
            "the sandbox launcher ended without a report (see its stderr)")
    return finished


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
