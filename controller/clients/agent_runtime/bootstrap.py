"""The agent process's main, exec'd by the sandbox launcher (`launcher.py`) once the kernel
fenced the process in: it runs the agent's `run(task)` (or its tests), speaking JSON lines with
the controller over stdin/stdout.

Started as `python -I -S -B bootstrap.py` in the run's directory with a clean environment.
It imports the runtime, writes one `ready` line and waits for the start message: a process of
the warm pool waits there, fenced in, before its run's code exists (the controller writes
`agent.py` into the code folder, then sends the message). Before any agent code is imported it
lowers `RLIMIT_AS` and `RLIMIT_CPU` to the run's own limits (the start message's `limits`; a
pooled process was started under the pool's ceilings, and lowering a limit is always allowed,
raising it never), moves the protocol off file descriptor 1 (the agent's prints go to stderr)
and installs an audit hook that refuses
sockets, subprocesses, loading native code, and opening files outside the working directory
and Python's own library: a friendly first refusal with a clear message. What holds when agent
code undoes that hook is the kernel's (namespaces, Landlock, seccomp, limits: the launcher's).
In test mode the verdict is the exit status: 0 when every test passed, 1 when one failed.
Standard library only; never imports ctypes.
"""

from __future__ import annotations

import importlib
import json
import os
import resource
import sys
import traceback

TYPE_CHECKING = False  # (typing costs a start 5 ms: only the type checker reads it)
if TYPE_CHECKING:
    from typing import Any

TRACE_CHARS = 4000
TESTS_FAILED = 1

_BLOCKED_EVENTS = {
    "socket.__new__", "socket.connect", "socket.bind", "socket.getaddrinfo", "socket.sendto",
    "subprocess.Popen", "os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork",
    "os.forkpty", "os.kill", "os.killpg", "pty.spawn", "ctypes.dlopen", "ctypes.dlsym",
    "ctypes.cdata", "os.chdir", "os.putenv", "os.unsetenv", "sys._getframe", "os.chroot",
}
_BLOCKED_IMPORTS = {"_posixsubprocess", "subprocess", "socket", "_socket", "ctypes", "_ctypes",
                    "multiprocessing", "_multiprocessing", "pty", "ssl", "_ssl", "mmap"}
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC


class Refused(PermissionError):
    """What the audit hook raises: the agent tried something agents may not do."""


def main() -> int:
    home = os.path.realpath(os.getcwd())  # the run's working directory (it writes here)
    code = os.path.dirname(os.path.realpath(__file__))  # its module, test and runtime
    sys.path[:0] = [code]  # the only folder imported from: a file written cannot shadow one
    import p38_agent  # type: ignore[import-not-found]  # noqa: F401  (the runtime, warm)

    sys.stdout.write('{"ready": true}\n')
    sys.stdout.flush()
    line = sys.stdin.readline()
    if not line:
        return 0  # the pool closed without a run for it
    start = json.loads(line)
    _lower_limits(start.get("limits") or {})
    importlib.invalidate_caches()  # agent.py was written after the runtime was imported
    protocol = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)  # print() in agent code goes to stderr, never into the protocol

    def send(message: dict[str, Any]) -> None:
        for stream in (sys.stdout, sys.stderr):  # the agent's prints, before its end
            try:
                stream.flush()
            except Exception:  # an agent may have replaced or closed them
                pass
        protocol.write(json.dumps(message, default=str) + "\n")
        protocol.flush()

    _install_hook(home, code)
    status = 0
    try:
        if start.get("mode") == "test":
            tests = _run_tests()
            status = TESTS_FAILED if tests["failed"] else 0
            send({"tests": tests})
        else:
            send({"result": _run(start, send)})
    except MemoryError:
        status = 2
        send({"error": {"type": "MemoryError", "message": "the memory limit was reached"}})
    except BaseException as exc:  # the agent's failure, reported; never a silent exit
        status = 2
        trace = traceback.format_exc()[-TRACE_CHARS:]
        send({"error": {"type": type(exc).__name__, "message": str(exc)[:TRACE_CHARS],
                        "trace": trace}})
    protocol.close()
    return status


def _lower_limits(limits: dict[str, Any]) -> None:
    """The run's memory and CPU limits, soft and hard, before any agent code exists. A limit
    can only be lowered: a value above the one the launcher set fails here, and the process
    ends without running anything."""
    for name, which in (("memory", resource.RLIMIT_AS), ("cpu", resource.RLIMIT_CPU)):
        if name in limits:
            value = int(limits[name])
            if value > resource.getrlimit(which)[1]:
                raise ValueError(f"the run's {name} limit {value} is above the process's")
            resource.setrlimit(which, (value, value))


def _install_hook(home: str, code: str) -> None:
    readable = tuple({os.path.realpath(p) for p in (
        home, code, sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix,
        "/usr/share/zoneinfo", "/dev/null", "/dev/urandom")})

    def inside(path: str, roots: tuple[str, ...]) -> bool:
        real = os.path.realpath(path)
        return any(real == root or real.startswith(root.rstrip("/") + "/") for root in roots)

    def hook(event: str, args: tuple[Any, ...]) -> None:
        if event in _BLOCKED_EVENTS:
            raise Refused(f"agents may not use {event} (tools reach the outside)")
        if event == "import" and args and args[0] in _BLOCKED_IMPORTS:
            raise Refused(f"agents may not import {args[0]}")
        if event == "open" and args and isinstance(args[0], str | bytes):
            path = os.fsdecode(args[0])
            mode, flags = args[1], args[2] if len(args) > 2 else 0
            writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or \
                bool(isinstance(flags, int) and flags & _WRITE_FLAGS)
            if writing and not inside(path, (home,)):
                raise Refused(f"agents may write only in their working directory, not {path}")
            if not writing and not inside(path, readable):
                raise Refused(f"agents may not read {path}")
        if event in ("os.remove", "os.rename", "os.mkdir", "os.rmdir", "os.chmod",
                     "os.symlink", "os.link", "os.truncate", "shutil.rmtree"):
            for path in args:
                if isinstance(path, str | bytes) and not inside(os.fsdecode(path), (home,)):
                    raise Refused(f"agents may change files only in their working "
                                  f"directory, not {os.fsdecode(path)}")

    sys.addaudithook(hook)


def _run(start: dict[str, Any], send: Any) -> dict[str, Any]:
    import p38_agent

    next_id = 0

    def call(tool: str, method: str, kwargs: dict[str, Any]) -> Any:
        nonlocal next_id
        next_id += 1
        send({"call": {"id": next_id, "tool": tool, "method": method, "args": kwargs}})
        line = sys.stdin.readline()
        if not line:
            raise p38_agent.ToolError("the controller closed the connection")
        answer = json.loads(line)
        if not answer.get("ok"):
            raise p38_agent.ToolError(answer.get("error") or "the tool call failed")
        return answer.get("value")

    import agent  # type: ignore[import-not-found]

    state = start.get("state")
    task = p38_agent.Task(input=start.get("input"),
                          state=dict(state) if isinstance(state, dict) else {},
                          tools=p38_agent.Tools(list(start.get("tools") or []), call))
    output = agent.run(task)
    return {"output": output, "state": task.state}


def _where(exc: BaseException) -> dict[str, Any]:
    """The trace from the test's own frame on (the harness's frame left out), and the deepest
    line of the agent's or its test's file it passed through (`file`, `line`)."""
    below = exc.__traceback__.tb_next if exc.__traceback__ is not None else None
    trace = "".join(traceback.format_exception(type(exc), exc, below))[-TRACE_CHARS:]
    ours = [f for f in traceback.extract_tb(below)
            if f.filename.rpartition("/")[2] in ("agent.py", "test_agent.py")]
    if not ours:
        return {"trace": trace}
    return {"trace": trace, "file": ours[-1].filename.rpartition("/")[2],
            "line": ours[-1].lineno}


def _run_tests() -> dict[str, Any]:
    import test_agent  # type: ignore[import-not-found]

    passed, failed = [], []
    names = sorted(n for n in vars(test_agent) if n.startswith("test_")
                   and callable(getattr(test_agent, n)))
    for name in names:
        try:
            getattr(test_agent, name)()
        except MemoryError:
            raise
        except BaseException as exc:
            said = f": {exc}" if str(exc) else ""  # a bare assert says nothing more
            failed.append({"name": name, "error": f"{type(exc).__name__}{said}"[:1000],
                           **_where(exc)})
        else:
            passed.append(name)
    return {"passed": passed, "failed": failed}


if __name__ == "__main__":
    sys.exit(main())
