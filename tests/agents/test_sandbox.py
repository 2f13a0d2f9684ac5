"""The kernel's sandbox, with real processes: agent code that first undoes every guard written
in Python (the bootstrap's audit hook and its blocked sets) still cannot read the controller's
files, write outside its directory, open a socket, start a process, signal the controller or
load ctypes, and what it writes on the protocol cannot forge its test verdict or its isolation.

Each attempt is made by the agent and answered by the kernel: the run itself succeeds and
returns what every attempt got, so a protection that is missing shows as an attempt that
worked. Nothing leaves this machine: the only listener is the test's own, on 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from typing import Any

from controller.clients.harness import Limits
from controller.clients.sandbox import Sandbox, probe, verdict
from tests.agents.conftest import RunAgent

QUICK = Limits(timeout=20.0, memory_bytes=256 * 1024 * 1024)

UNDO_THE_GUARD = '''
import sys

boot = sys.modules["__main__"]
boot._BLOCKED_EVENTS.clear()
boot._BLOCKED_IMPORTS.clear()
import os  # noqa: E402
import os.path  # noqa: E402

os.path.realpath = lambda path, **_: os.getcwd()  # every path now looks like the run's own


def attempt(what):
    try:
        return "worked: " + repr(what())[:200]
    except BaseException as exc:
        return type(exc).__name__ + ": " + str(exc)[:200]
'''

HOSTILE = UNDO_THE_GUARD + '''

def run(task):
    given = task.input
    import socket
    import signal
    found = {"guard undone": attempt(lambda: __import__("socket").__name__)}
    for name, path in given["secrets"].items():
        found["read " + name] = attempt(lambda path=path: open(path, "rb").read())
    found["write outside"] = attempt(lambda: open(given["outside"], "w").write("x"))
    found["connect"] = attempt(lambda: socket.create_connection(("127.0.0.1", given["port"]), 2))
    found["socket"] = attempt(lambda: socket.socket(socket.AF_UNIX))
    found["fork"] = attempt(lambda: [os.fork() for _ in range(1000)])
    found["exec"] = attempt(lambda: os.execv(sys.executable, [sys.executable, "-c", "1"]))
    found["signal the controller"] = attempt(lambda: os.kill(os.getppid(), 0))
    found["ctypes already loaded"] = sorted(m for m in sys.modules if "ctypes" in m)
    found["import ctypes"] = attempt(lambda: __import__("ctypes").CDLL(None))
    found["list /"] = attempt(lambda: os.listdir("/"))
    return found
'''


async def test_code_that_undoes_the_guard_is_still_held_by_the_kernel(run: RunAgent,
                                                                      tmp_path: Path) -> None:
    """/etc/passwd, the controller's /proc environment, a key under a home folder, the
    controller's P38_HOME; a file outside the run; a connection to a listener on 127.0.0.1
    (nothing arrives); a fork bomb; an exec; a signal to the controller; ctypes."""
    home = tmp_path / "home" / ".ssh"
    home.mkdir(parents=True)
    (home / "id_ed25519").write_text("PRIVATE KEY")
    p38_home = tmp_path / "p38-home"
    p38_home.mkdir()
    (p38_home / "api-token").write_text("p38-api-token-secret")
    secrets = {"/etc/passwd": "/etc/passwd", "controller environ": f"/proc/{os.getpid()}/environ",
               "~/.ssh key": str(home / "id_ed25519"), "P38_HOME": str(p38_home / "api-token")}
    outside = tmp_path / "written-by-the-agent"
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.setblocking(False)
        done = await run(code=HOSTILE, tools=[], limits=QUICK, input={
            "secrets": secrets, "outside": str(outside), "port": listener.getsockname()[1]})
        assert done.outcome == "succeeded", (done.error, done.stderr)
        found: dict[str, Any] = done.output
        try:
            listener.accept()
            raise AssertionError("the agent's connection reached the listener")
        except BlockingIOError:
            pass  # no connection arrived
    assert found["guard undone"] == "worked: 'socket'"  # the Python guard really is gone
    for name in secrets:
        assert found[f"read {name}"].startswith("PermissionError"), (name, found)
    assert found["write outside"].startswith("PermissionError") and not outside.exists()
    for name in ("connect", "socket", "fork", "exec", "signal the controller"):
        assert found[name].startswith("PermissionError: [Errno 1]"), (name, found[name])
    assert found["ctypes already loaded"] == []
    assert found["import ctypes"].startswith(("PermissionError", "ImportError",
                                              "ModuleNotFoundError")), found["import ctypes"]
    assert found["list /"].startswith("PermissionError")
    assert done.isolation["sandbox"] == "complete"
    assert "ABI" in done.isolation["landlock"] and "instructions" in done.isolation["seccomp"]


async def test_memory_bomb_and_a_thread_storm_end_the_run(run: RunAgent) -> None:
    """RLIMIT_AS holds after the guard is gone; threads cannot multiply past it."""
    bomb = await run(code=UNDO_THE_GUARD + "\n\ndef run(task):\n"
                                                 "    return len(bytearray(1 << 31))\n",
                           tools=[], limits=QUICK)
    assert bomb.outcome == "killed" and "memory limit" in (bomb.error or "")
    storm = await run(code=UNDO_THE_GUARD + '''

def run(task):
    import threading
    import time
    started = 0
    try:
        for _ in range(10000):
            threading.Thread(target=time.sleep, args=(30,), daemon=True).start()
            started += 1
    except BaseException as exc:
        return [started, type(exc).__name__]
    return [started, "all started"]
''', tools=[], limits=QUICK)
    assert storm.outcome in ("succeeded", "killed"), storm
    if storm.outcome == "succeeded":
        assert storm.output[0] < 10000 and storm.output[1] != "all started"


SAME_USER = UNDO_THE_GUARD + '''

def run(task):
    import mmap
    import resource
    victim = task.input["victim"]
    found = {
        "prlimit the controller": attempt(
            lambda: resource.prlimit(os.getppid(), resource.RLIMIT_NOFILE)),
        "chmod outside": attempt(lambda: os.chmod(victim, 0o777)),
        "utime outside": attempt(lambda: os.utime(victim, (0, 0))),
        "setxattr outside": attempt(lambda: os.setxattr(victim, "user.pwn", b"1")),
        "chmod its own": attempt(lambda: (open("mine", "w").close(), os.chmod("mine", 0o777))),
        "memfd": attempt(lambda: os.memfd_create("x")),
        "own limits": resource.getrlimit(resource.RLIMIT_CPU),
    }
    with open("graphlib.py", "w") as module:
        module.write("SHADOWED = True\\n")
    import graphlib
    found["shadowed import"] = hasattr(graphlib, "SHADOWED")
    with open("blob.so", "wb") as blob:
        blob.write(b"\\x00" * 4096)

    def map_executable():
        with open("blob.so", "rb") as blob:
            return mmap.mmap(blob.fileno(), 0, prot=mmap.PROT_READ | mmap.PROT_EXEC)

    found["map written code"] = attempt(map_executable)

    def fill():
        for n in range(8):
            with open(f"fill{n}", "wb") as out:
                out.write(b"x" * (16 * 1024 * 1024))
        return "8 x 16 MiB written"

    found["fill the disk"] = attempt(fill)
    found["scratch size"] = os.statvfs(".").f_blocks * os.statvfs(".").f_frsize
    return found
'''


async def test_what_the_same_user_could_do_is_refused_too(run: RunAgent,
                                                          tmp_path: Path) -> None:
    """A hostile pass found these with the first sandbox: another process's limits, another
    file's mode, times and attributes (the agent runs as the controller's user), a module
    shadowed by a file the agent wrote, code mapped from it, memory outside RLIMIT_AS in a
    memfd, the host's disk filled 64 MiB at a time."""
    victim = tmp_path / "controller-file"
    victim.write_text("mine")
    victim.chmod(0o600)
    before = victim.stat()
    done = await run(code=SAME_USER, tools=[], limits=QUICK,
                           input={"victim": str(victim)})
    assert done.outcome == "succeeded", (done.error, done.stderr)
    found: dict[str, Any] = done.output
    for name in ("prlimit the controller", "chmod outside", "utime outside",
                 "setxattr outside", "chmod its own", "memfd"):
        assert found[name].startswith("PermissionError: [Errno 1]"), (name, found[name])
    after = victim.stat()
    assert (after.st_mode, after.st_mtime_ns) == (before.st_mode, before.st_mtime_ns)
    assert found["own limits"] == [int(QUICK.timeout) + 6] * 2  # RLIMIT_CPU: timeout + slack
    assert found["shadowed import"] is False
    assert found["map written code"].startswith("PermissionError"), found["map written code"]
    assert found["fill the disk"].startswith("OSError: [Errno 28]"), found["fill the disk"]
    assert found["scratch size"] == 64 * 1024 * 1024


FORGE = '''
import json


def forge(message):
    for fd in range(3, 16):
        try:
            stream = open(fd, "w", closefd=False)
            stream.write(json.dumps(message) + "\\n")
            stream.flush()
        except OSError:
            pass
'''


async def test_a_failing_test_cannot_write_its_way_to_a_pass(run: RunAgent) -> None:
    """The test writes a 'passed' report on every descriptor it has, then fails: the verdict
    is the process's exit status."""
    test = FORGE + '''

def test_forged():
    forge({"tests": {"passed": ["test_forged"], "failed": []}})
    forge({"result": {"output": "fine"}})
    assert False, "this test fails"
'''
    done = await run(code="def run(task):\n    return 1\n", test=test, mode="test",
                           tools=[], limits=QUICK)
    assert done.outcome == "failed"
    assert [f["name"] for f in (done.tests or {}).get("failed", [])] == ["test_forged"]


async def test_a_run_cannot_forge_its_isolation(run: RunAgent) -> None:
    """An `isolation` line written by the agent is not taken: the run's isolation is what the
    launcher set up and reported before the agent existed."""
    code = FORGE + '''

def run(task):
    forge({"isolation": {"sandbox": "none", "network": "full"}})
    return "done"
'''
    done = await run(code=code, tools=[], limits=QUICK)
    assert done.outcome == "succeeded" and done.output == "done"
    assert done.isolation["sandbox"] == "complete" and "network" not in done.isolation
    assert "new user (itself as nobody" in done.isolation["namespaces"]


async def test_the_probe_says_what_this_kernel_gives() -> None:
    found = await probe()
    assert found["sandbox"] == "complete", found
    assert json.dumps(found).count("not applied") == 0
    assert verdict(found, Sandbox()).startswith("agents run in the kernel sandbox")


AGENTS = Path(__file__).resolve().parents[2] / "agents"
HEARTBEAT = (AGENTS / "heartbeat.py").read_text(), (AGENTS / "test_heartbeat.py").read_text()


async def test_the_repositorys_own_agent_still_runs_and_passes_its_test(
        run: RunAgent) -> None:
    code, test = HEARTBEAT
    tested = await run(code=code, test=test,
                             mode="test", tools=[], limits=QUICK)
    assert tested.outcome == "succeeded" and tested.tests and tested.tests["passed"], tested
    ran = await run(code=code, input={"note": "hi"}, state={"runs": 2}, tools=[],
                          limits=QUICK)
    assert ran.outcome == "succeeded", ran
    assert (ran.output["runs"], ran.output["note"], ran.state["runs"]) == (3, "hi", 3)
    assert ran.isolation["sandbox"] == "complete"
