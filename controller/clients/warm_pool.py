"""The warm pool: agent processes started ahead, each already fenced in and waiting on its
stdin for one run, so a run does not pay for an interpreter, the launcher's kernel calls and
the runtime's imports (the way AWS Lambda and Cloudflare keep a warm start).

Each pooled process is what `agent_process.start` makes for a cold run, under the pool's
ceilings (`memory_bytes`, `timeout`): its folder, its session and process group, a clean
environment, the new namespaces (no network), Landlock, seccomp, the rlimits, the bootstrap
with the runtime imported. A run takes one (`take`), writes its code into it, and its
bootstrap lowers `RLIMIT_AS` and `RLIMIT_CPU` to the run's before the code is read; the
process serves that one run and is killed after it, never handed out twice. At most `size`
processes are idle or starting at once (`P38_RUN_WORKERS`, the runs this process carries out
at once); each one taken is replaced in the background (when its run ends, or
`REFILL_AFTER` into a run that has not), and one that dies while idle is removed and replaced.
When the launcher refuses (the kernel cannot sandbox here and the sandbox is required), or
starting fails, the pool stops refilling and `take` answers None: the run starts its own
process (the cold path) and ends as it would without a pool. `close` kills every idle process
and removes its folder. The pool's folders are in one of its own, `p38-pool-<pid>-*` in the
temporary folder; opening a pool removes those of controller processes that no longer exist
(a crash, a SIGKILL: their processes died with them, `PR_SET_PDEATHSIG`). Owned by the app
(`controller/app.py`), one per controller process; decides nothing about runs.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import shutil
import sys
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

import structlog

from controller.clients.agent_process import AgentProcess, start
from controller.clients.sandbox import REQUIRED, Sandbox, interpreter

if TYPE_CHECKING:
    from controller.clients.harness import Limits

log = structlog.get_logger("p38.warm_pool")

MEMORY_CEILING = 4 * 1024 ** 3  # RLIMIT_AS a pooled process starts under; a run lowers it
TIMEOUT_CEILING = 3600.0  # (an agent's run may take an hour at most: manifests' MAX_RUN_SECONDS)
START_TIMEOUT = 30.0  # seconds a pooled process may take to become ready
REFILL_AFTER = 0.05  # seconds into a run before its replacement starts (if it has not ended)
FOLDER_PREFIX = "p38-pool-"  # then the controller process's id
MAX_LINE, MAX_STDERR = 1024 * 1024, 16 * 1024  # the harness's default Limits


class WarmPool:
    """Up to `size` fenced-in agent processes, idle or starting, each for one run."""

    def __init__(self, size: int, *, sandbox: Sandbox = REQUIRED,
                 python: str = sys.executable, memory_bytes: int = MEMORY_CEILING,
                 timeout: float = TIMEOUT_CEILING) -> None:
        self.size = size
        self.sandbox = sandbox
        self.python = interpreter(python)
        self.memory_bytes = memory_bytes
        self.timeout = timeout
        self.started = 0  # processes started, in all (for the tests and the log)
        self.refused: dict[str, str] | None = None  # the launcher's refusal, when it refused
        self.failed: str | None = None  # why the last start failed (None: it did not)
        self._idle: collections.deque[tuple[AgentProcess, asyncio.Task[None]]] = \
            collections.deque()
        self._starting: set[asyncio.Task[None]] = set()
        self._watching: set[asyncio.Task[None]] = set()
        self._removing: set[asyncio.Task[None]] = set()
        self._refills: dict[int, asyncio.TimerHandle] = {}  # by pid: a taken one's refill
        self._changed = asyncio.Event()  # a process became ready, died, or a start failed
        self._closed = False
        self.folder = Path(tempfile.mkdtemp(prefix=f"{FOLDER_PREFIX}{os.getpid()}-"))

    @classmethod
    @contextlib.asynccontextmanager
    async def open(cls, size: int, *, sandbox: Sandbox = REQUIRED,
                   python: str = sys.executable,
                   memory_bytes: int = MEMORY_CEILING) -> AsyncIterator[WarmPool]:
        """The pool, filling in the background while the block runs; closed after it."""
        await asyncio.to_thread(sweep)
        pool = cls(size, sandbox=sandbox, python=python, memory_bytes=memory_bytes)
        pool.fill()
        try:
            yield pool
        finally:
            await pool.close()

    @property
    def idle(self) -> int:
        return len(self._idle)

    @property
    def starting(self) -> int:
        return len(self._starting)

    def pids(self) -> list[int]:
        """The idle processes' ids, oldest first."""
        return [agent.pid for agent, _ in self._idle]

    def fits(self, limits: Limits, sandbox: Sandbox, python: str) -> bool:
        """Whether a pooled process can carry out a run of these limits: the same sandbox
        rule and interpreter, limits at most the ceilings it was started under."""
        return (sandbox.required == self.sandbox.required
                and interpreter(python) == self.python
                and limits.memory_bytes <= self.memory_bytes
                and limits.timeout <= self.timeout
                and (limits.max_line, limits.max_stderr) == (MAX_LINE, MAX_STDERR))

    def fill(self) -> None:
        """Start processes until `size` are idle or starting (nothing when closed, refused
        or failing: the next `take` tries again after a failure)."""
        while not self._closed and self.refused is None \
                and len(self._idle) + len(self._starting) < self.size:
            task = asyncio.create_task(self._start_one(), name="p38-warm-start")
            self._starting.add(task)
            task.add_done_callback(self._starting.discard)

    async def wait_full(self) -> None:
        """Until `size` processes are idle and ready and the folders of those used are
        removed (or the pool cannot fill: closed, refused, a start failed)."""
        while (len(self._idle) < self.size or self._removing) and not self._closed \
                and self.refused is None and self.failed is None:
            self.fill()
            await self.wait_changed()

    async def wait_changed(self) -> None:
        """Until a process becomes ready or dies, a start fails, or a folder is removed."""
        self._changed.clear()
        await self._changed.wait()

    async def take(self) -> AgentProcess | None:
        """A ready process, now this caller's alone (it kills it after its run), or None when
        the pool cannot give one (closed, refused, starting fails): start one of your own."""
        self.failed = None
        while True:
            while self._idle:
                agent, watch = self._idle.popleft()
                watch.cancel()
                if agent.alive():
                    self._refills[agent.pid] = asyncio.get_running_loop().call_later(
                        REFILL_AFTER, self.fill)
                    return agent
                await self._discard(agent, "died while idle")
            self.fill()
            if self._closed or self.refused is not None or self.failed is not None \
                    or not self._starting:
                return None
            await self.wait_changed()

    def done(self, agent: AgentProcess) -> None:
        """A process taken from the pool ended (its run's caller killed and reaped it): its
        folder is removed and its replacement started, in the background. (The replacement
        of a taken process starts when its run ends or `REFILL_AFTER` into it, whichever
        comes first, not at `take`: a start competes with the run for the CPU and the event
        loop, and most runs that are short end before.)"""
        refill = self._refills.pop(agent.pid, None)
        if refill is not None:
            refill.cancel()
        if self._closed:  # (a run that outlived the pool: nothing would await a task)
            shutil.rmtree(agent.workdir, True)
            with contextlib.suppress(OSError):
                self.folder.rmdir()
            return
        task = asyncio.create_task(agent.remove_folder(), name="p38-warm-remove")
        self._removing.add(task)
        task.add_done_callback(self._removed)
        self.fill()

    def _removed(self, task: asyncio.Task[None]) -> None:
        self._removing.discard(task)
        self._changed.set()

    async def close(self) -> None:
        """Kill every idle and starting process and remove its folder."""
        self._closed = True
        for refill in self._refills.values():
            refill.cancel()
        for task in (*self._starting, *self._watching):
            task.cancel()
        await asyncio.gather(*self._starting, *self._watching, *self._removing,
                             return_exceptions=True)
        while self._idle:
            agent, _watch = self._idle.popleft()
            await agent.end()
        with contextlib.suppress(OSError):  # (not empty while a run outlives the pool)
            self.folder.rmdir()
        self._changed.set()

    async def _start_one(self) -> None:
        try:
            agent: AgentProcess | None = await asyncio.wait_for(start(
                memory_bytes=self.memory_bytes, timeout=self.timeout, sandbox=self.sandbox,
                python=self.python, max_line=MAX_LINE, max_stderr=MAX_STDERR,
                parent=self.folder), START_TIMEOUT)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # no descriptors left, the interpreter gone, too slow...
            self.failed = f"{type(exc).__name__}: {exc}"
            log.warning("warm_pool_start_failed", error=self.failed)
            agent = None
        if agent is not None:
            self.started += 1
            if self._closed:
                await agent.end()
            elif "refused" in agent.isolation:
                self.refused = agent.isolation
                await agent.end()
            elif not agent.alive():
                stderr = await agent.end()
                self.failed = f"a pooled process ended before it was ready: {stderr[-500:]}"
                log.warning("warm_pool_start_failed", error=self.failed)
            else:
                watch = asyncio.create_task(self._watch(agent), name="p38-warm-watch")
                self._watching.add(watch)
                watch.add_done_callback(self._watching.discard)
                self._idle.append((agent, watch))
        self._changed.set()

    async def _watch(self, agent: AgentProcess) -> None:
        """An idle process that ends (killed from outside, out of memory) is removed and
        replaced at once. Cancelled when the process is taken."""
        await agent.process.wait()
        for entry in list(self._idle):
            if entry[0] is agent:
                self._idle.remove(entry)
                await self._discard(agent, "died while idle")
                self.fill()
                self._changed.set()

    async def _discard(self, agent: AgentProcess, why: str) -> None:
        log.info("warm_pool_discarded", pid=agent.pid, why=why)
        await agent.end()


def sweep() -> list[Path]:
    """Remove the pool folders of controller processes that no longer exist; the removed."""
    removed = []
    for folder in Path(tempfile.gettempdir()).glob(f"{FOLDER_PREFIX}*"):
        pid = folder.name[len(FOLDER_PREFIX):].partition("-")[0]
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            shutil.rmtree(folder, True)
            removed.append(folder)
        except PermissionError:
            pass  # another user's process, alive
    return removed
