"""One agent process, started and fenced in before it holds any agent code: the cold path
(`harness.run_agent` starting one for its run) and the warm pool (`warm_pool.WarmPool`
starting them ahead) both start them here.

`start()` makes the run's folder (`code/`: the runtime, read only to the agent and the only
folder it imports from; `files/`: its working directory, HOME and TMPDIR, a tmpfs of its own
once the launcher mounted it), starts the sandbox launcher in a session of its own with a
clean environment, reads the isolation report the launcher wrote before it exec'd the
bootstrap, then the bootstrap's `ready` line: the runtime is imported and the process waits on
its stdin for one start message. Only then does `write_code` put the agent's module (and its
test) into `code/`, from the controller's side: the Landlock rules name the folder, which
exists from the start, and cover a file created in it later. Speaks nothing of the run's
protocol (harness.py does) and decides nothing about runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import shutil
import signal
import tempfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from controller.clients.sandbox import (
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
READY = b'{"ready": true}\n'  # the bootstrap's first line: runtime imported, waiting
CPU_SLACK = 5  # the launcher's CPU_SLACK: CPU seconds past the timeout (RLIMIT_CPU)


def cpu_seconds(timeout: float) -> int:
    """RLIMIT_CPU for a run of `timeout` seconds (what the launcher sets for it)."""
    return int(timeout) + 1 + CPU_SLACK


@functools.cache
def _runtime() -> tuple[tuple[str, str], ...]:
    files = resources.files("controller.clients.agent_runtime")
    return tuple((name, files.joinpath(name).read_text("utf-8")) for name in RUNTIME_FILES)


def make_folder(parent: Path | None = None) -> Path:
    """The run's folder with the runtime in `code/` and an empty `files/` (no agent code),
    in `parent` (default: the temporary folder)."""
    workdir = Path(tempfile.mkdtemp(prefix="p38-run-", dir=parent))
    (workdir / CODE).mkdir()
    (workdir / FILES).mkdir()
    for name, text in _runtime():
        (workdir / CODE / name).write_text(text, "utf-8")
    return workdir


@dataclass
class AgentProcess:
    """A started agent process: its folder, its process (the leader of its own group), what
    the launcher reported, its stderr's tail (read to the end in the background), and the
    limits the launcher set (a run may lower them, never raise them)."""

    workdir: Path
    process: asyncio.subprocess.Process
    isolation: dict[str, str]
    stderr: asyncio.Future[str]
    memory_bytes: int
    cpu_seconds: int
    ready: bool

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        """Ready and waiting: it reported, imported the runtime, and has not exited."""
        stdout = self.process.stdout
        return self.ready and self.process.returncode is None and \
            stdout is not None and not stdout.at_eof()

    def write_code(self, code: str, test: str | None) -> None:
        """The agent's module (and its test) into `code/`, once the process is fenced in.
        A few kilobytes into the page cache: written on the loop, not worth a thread."""
        (self.workdir / CODE / "agent.py").write_text(code, "utf-8")
        if test is not None:
            (self.workdir / CODE / "test_agent.py").write_text(test, "utf-8")

    def kill(self) -> None:
        """SIGKILL to its whole process group (whatever it started dies with it)."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)

    async def end(self, *, remove: bool = True) -> str:
        """Kill its group, reap it, remove its folder (unless `remove` is false: then the
        caller must, with `remove_folder`); its stderr's tail."""
        self.kill()
        try:
            await self.process.wait()
            return await self.stderr
        finally:
            if remove:
                await self.remove_folder()

    async def remove_folder(self) -> None:
        await asyncio.to_thread(shutil.rmtree, self.workdir, True)


async def start(*, memory_bytes: int, timeout: float, sandbox: Sandbox, python: str,
                max_line: int, max_stderr: int, parent: Path | None = None) -> AgentProcess:
    """Start one agent process and wait until it is fenced in and ready (or the launcher
    refused: then `isolation` says why and the process has ended). Cancelled or failed
    part-way, it leaves no process and no folder behind."""
    python = interpreter(python)
    workdir = make_folder(parent)
    process: asyncio.subprocess.Process | None = None
    try:
        scratch = workdir / FILES
        env = dict(CLEAN_ENV, HOME=str(scratch), TMPDIR=str(scratch))
        read_end, write_end = os.pipe()
        config = launch_config(code=workdir / CODE, scratch=scratch, python=python,
                               argv=["-I", "-S", "-B", str(workdir / CODE / "bootstrap.py")],
                               env=env, memory_bytes=memory_bytes, timeout=timeout,
                               report_fd=write_end, sandbox=sandbox)
        try:
            process = await asyncio.create_subprocess_exec(
                python, "-I", "-S", "-B", launcher_path(), encode(config),
                cwd=scratch, env=env, stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
                start_new_session=True, limit=max_line, pass_fds=(write_end,))
        except BaseException:
            os.close(read_end)
            raise
        finally:
            os.close(write_end)
        stderr = asyncio.ensure_future(_tail(process.stderr, max_stderr))
        isolation = await read_report(read_end)
        ready = False
        if isolation and "refused" not in isolation:
            assert process.stdout is not None
            with contextlib.suppress(ValueError):  # (a line past the limit: not ready)
                ready = await process.stdout.readline() == READY
        return AgentProcess(workdir, process, isolation, stderr, memory_bytes,
                            cpu_seconds(timeout), ready)
    except BaseException:
        if process is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
            await asyncio.shield(process.wait())
        shutil.rmtree(workdir, True)
        raise


async def _tail(stream: asyncio.StreamReader | None, keep: int) -> str:
    """The last `keep` bytes of a stream, read to its end (a flood costs no memory)."""
    if stream is None:
        return ""
    kept = b""
    while chunk := await stream.read(65536):
        kept = (kept + chunk)[-keep:]
    return kept.decode("utf-8", "replace")
