"""The warm pool with real processes: a process serves one run and is never handed out again,
the pool refills and stays within its bound, a process that dies while idle is replaced, and
closing it leaves no process and no folder behind."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from controller.app import create_app
from controller.clients.harness import Limits, run_agent
from controller.clients.warm_pool import FOLDER_PREFIX, WarmPool
from tests.helpers import make_settings, wait_until

QUICK = Limits(timeout=20.0, memory_bytes=256 * 1024 * 1024)

LEAVE_TRACES = '''import os
import sys


def run(task):
    found = {"pid": os.getpid(), "file": os.path.exists("left-by-run-1"),
             "memory": hasattr(sys, "left_by_run_1"), "cwd": os.getcwd()}
    with open("left-by-run-1", "w") as out:
        out.write("x")
    sys.left_by_run_1 = True
    return found
'''


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def fenced_in(pid: int) -> dict[str, Any]:
    """What the kernel says of a process: its namespaces, seccomp, no_new_privs, session,
    environment, limits and working directory."""
    proc = Path(f"/proc/{pid}")
    status = dict(line.split(":", 1) for line in (proc / "status").read_text().splitlines())
    limits = {line[:26].strip(): line[26:].split()[:2]
              for line in (proc / "limits").read_text().splitlines()[1:]}
    return {"namespaces": {n: os.readlink(proc / "ns" / n) != os.readlink(f"/proc/self/ns/{n}")
                           for n in ("net", "user", "mnt", "ipc")},
            "seccomp": status["Seccomp"].strip(), "no_new_privs": status["NoNewPrivs"].strip(),
            "session": (os.getsid(pid), os.getpgid(pid)),
            "environ": sorted(k.split(b"=")[0].decode() for k in
                              (proc / "environ").read_bytes().split(b"\0") if k),
            "memory": limits["Max address space"], "cpu": limits["Max cpu time"],
            "files": limits["Max open files"], "cwd": os.readlink(proc / "cwd")}


async def test_an_idle_process_is_fenced_in_before_it_has_any_code() -> None:
    """While it waits: no agent code in its folder, its own namespaces, seccomp and
    no_new_privs on, its own session, a clean environment, the pool's ceilings, its working
    directory; the run's own memory limit is in place when the agent's code runs."""
    async with WarmPool.open(1) as pool:
        await pool.wait_full()
        (agent, _), = pool._idle
        assert sorted(p.name for p in (agent.workdir / "code").iterdir()) == [
            "bootstrap.py", "p38_agent.py"]
        assert agent.isolation["sandbox"] == "complete"
        seen = await asyncio.to_thread(fenced_in, agent.pid)
        assert seen == {
            "namespaces": {"net": True, "user": True, "mnt": True, "ipc": True},
            "seccomp": "2", "no_new_privs": "1", "session": (agent.pid, agent.pid),
            "environ": ["HOME", "LANG", "LC_ALL", "PATH", "PYTHONDONTWRITEBYTECODE",
                        "PYTHONIOENCODING", "TMPDIR", "TZ"],
            "memory": [str(pool.memory_bytes)] * 2, "cpu": [str(int(pool.timeout) + 6)] * 2,
            "files": ["256", "256"], "cwd": str(agent.workdir / "files")}
        done = await run_agent(code="import resource\n\n\ndef run(task):\n"
                                    "    return resource.getrlimit(resource.RLIMIT_AS)\n",
                               tools=[], limits=QUICK, pool=pool)
        assert done.outcome == "succeeded" and done.output == [QUICK.memory_bytes] * 2


async def test_a_process_serves_one_run_and_is_never_reused() -> None:
    """Two runs on a pool of one: different processes; what the first left in its working
    directory and its memory is not there for the second; the first's process is gone."""
    async with WarmPool.open(1) as pool:
        await pool.wait_full()
        first = await run_agent(code=LEAVE_TRACES, tools=[], limits=QUICK, pool=pool)
        await pool.wait_full()
        second = await run_agent(code=LEAVE_TRACES, tools=[], limits=QUICK, pool=pool)
        assert first.outcome == second.outcome == "succeeded", (first, second)
        assert first.output["pid"] != second.output["pid"]
        assert (second.output["file"], second.output["memory"]) == (False, False)
        assert first.output["cwd"] != second.output["cwd"]
        assert gone(first.output["pid"])
        assert not await asyncio.to_thread(Path(first.output["cwd"]).exists)
        assert second.output["pid"] not in pool.pids()


async def test_the_pool_refills_after_a_run() -> None:
    async with WarmPool.open(2) as pool:
        await pool.wait_full()
        ready = pool.pids()
        done = await run_agent(code="import os\n\n\ndef run(task):\n    return os.getpid()\n",
                               tools=[], limits=QUICK, pool=pool)
        assert done.output in ready
        await pool.wait_full()
        assert len(pool.pids()) == 2 and done.output not in pool.pids()
        assert pool.started == 3


async def test_a_process_that_dies_while_idle_is_replaced() -> None:
    async with WarmPool.open(2) as pool:
        await pool.wait_full()
        victim = pool.pids()[0]
        os.kill(victim, signal.SIGKILL)
        while pool.started < 3 or len(pool.pids()) < 2:
            await pool.wait_changed()
        assert victim not in pool.pids() and gone(victim)
        done = await run_agent(code="def run(task):\n    return 1\n", tools=[],
                               limits=QUICK, pool=pool)
        assert done.outcome == "succeeded" and done.output == 1


async def test_closing_leaves_no_process_and_no_folder() -> None:
    async with WarmPool.open(3) as pool:
        await pool.wait_full()
        pids = pool.pids()
        folders = [agent.workdir for agent, _ in pool._idle]
        assert len(pids) == 3 and all(f.is_dir() for f in folders)
        done = await run_agent(code="import os\n\n\ndef run(task):\n    return os.getcwd()\n",
                               tools=[], limits=QUICK, pool=pool)
        # (its replacement is starting and its folder may be being removed as it closes)
    assert all(gone(pid) for pid in pids)
    folders.append(Path(done.output).parent)
    assert not any(f.exists() for f in folders)
    assert (pool.idle, pool.starting) == (0, 0) and pool.started in (3, 4)
    assert not pool.folder.exists()


async def test_the_pool_never_holds_more_than_its_bound() -> None:
    """Six runs at once on a pool of two: while they run (each one's tool call looks), at
    most two processes are idle or starting; every run got a process of its own."""
    async with WarmPool.open(2) as pool:
        seen: list[int] = []

        async def serve(tool: str, method: str, args: Mapping[str, Any]) -> Any:
            seen.append(pool.idle + pool.starting)
            return None

        code = ("import os\n\n\ndef run(task):\n    task.tools.http.get(url='x')\n"
                "    return os.getpid()\n")
        runs = await asyncio.gather(*(run_agent(code=code, tools=["http"], limits=QUICK,
                                                serve=serve, pool=pool) for _ in range(6)))
        assert [r.outcome for r in runs] == ["succeeded"] * 6, runs
        assert len({r.output for r in runs}) == 6
        assert len(seen) == 6 and max(seen) <= 2
        assert pool.idle + pool.starting <= 2


async def test_a_run_above_the_ceilings_starts_its_own_process() -> None:
    """Memory above the pool's ceiling: the cold path, whose launcher sets the run's limit."""
    async with WarmPool.open(1, memory_bytes=512 * 1024 * 1024) as pool:
        await pool.wait_full()
        ready = pool.pids()
        big = Limits(timeout=20.0, memory_bytes=1024 * 1024 * 1024)
        done = await run_agent(code="import os\n\n\ndef run(task):\n    return os.getpid()\n",
                               tools=[], limits=big, pool=pool)
        assert done.outcome == "succeeded" and done.output not in ready
        assert done.isolation["memory"] == f"RLIMIT_AS {big.memory_bytes} bytes"
        assert pool.pids() == ready


def pooled_children() -> dict[int, Path]:
    """This process's children that are agent bootstraps, with their run folders."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except (OSError, IndexError, ValueError):
            continue
        script = next((a.decode() for a in argv if a.endswith(b"/code/bootstrap.py")), None)
        if ppid == os.getpid() and script is not None:
            found[int(entry.name)] = Path(script).parent.parent
    return found


async def test_the_app_keeps_a_pool_per_process_and_leaves_nothing_when_it_stops(
        aiohttp_client: Any, dsn: str) -> None:
    """An app that carries out runs starts P38_RUN_WORKERS pooled processes; stopping it
    kills them and removes their folders."""
    settings = make_settings(dsn, workers=1)
    size = settings.queue.run_workers
    client = await aiohttp_client(create_app(settings))
    children = await wait_until(
        lambda: asyncio.to_thread(lambda: (c := pooled_children()) and len(c) == size and c),
        what=f"{size} pooled processes")
    await client.close()
    assert await asyncio.to_thread(pooled_children) == {}
    assert all(gone(pid) for pid in children)
    assert not any(await asyncio.to_thread(lambda: [f.exists() for f in children.values()]))


async def test_a_run_that_outlives_the_pool_leaves_no_folder() -> None:
    """The pool closes while a run holds one of its processes: the run ends as usual and its
    folder is removed when it does."""
    pool = WarmPool(1)
    await pool.wait_full()
    called = asyncio.Event()
    release = asyncio.Event()

    async def serve(tool: str, method: str, args: Mapping[str, Any]) -> Any:
        called.set()
        await release.wait()
        return "late"

    code = ("import os\n\n\ndef run(task):\n"
            "    return [os.getcwd(), task.tools.http.get(url='x')]\n")
    running = asyncio.create_task(run_agent(code=code, tools=["http"], limits=QUICK,
                                            serve=serve, pool=pool))
    await called.wait()
    await pool.close()
    release.set()
    done = await running
    assert done.outcome == "succeeded" and done.output[1] == "late", done
    assert not await asyncio.to_thread(Path(done.output[0]).parent.exists)
    assert not await asyncio.to_thread(pool.folder.exists)
    assert (pool.idle, pool.starting) == (0, 0)


async def test_opening_a_pool_removes_the_folders_of_a_controller_that_died(
        tmp_path: Path) -> None:
    """A controller killed with SIGKILL leaves its pool's folder (its processes die with it);
    the next pool opened on the machine removes it, and leaves a live process's alone."""
    dead = await asyncio.create_subprocess_exec(sys.executable, "-c", "pass")
    await dead.wait()
    temp = Path(tempfile.gettempdir())
    left = temp / f"{FOLDER_PREFIX}{dead.pid}-crashed"
    alive = temp / f"{FOLDER_PREFIX}{os.getpid()}-other"
    for folder in (left, alive):
        (folder / "p38-run-x" / "code").mkdir(parents=True)
    try:
        async with WarmPool.open(1) as pool:
            assert not left.exists() and alive.is_dir()
            assert pool.folder.parent == temp and pool.folder.name.startswith(
                f"{FOLDER_PREFIX}{os.getpid()}-")
    finally:
        shutil.rmtree(left, True)
        shutil.rmtree(alive, True)
