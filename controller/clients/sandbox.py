"""The controller's side of the agents' sandbox: what the launcher (`agent_runtime/launcher.py`)
is told, starting it, and reading its report.

`Sandbox(required=True)` is the rule: an agent process starts only when the kernel fenced it in
completely (namespaces, Landlock, seccomp); `required=False` is the operator's
`P38_AGENTS_UNSANDBOXED=true`, which runs agents with whatever the kernel gives. `probe()` asks
the kernel once, at start, what it gives (for the log and `/readyz`). The report of a run comes
from the launcher over a descriptor it closes before the exec, so agent code cannot write it.
Never imports ctypes into the controller: the kernel calls are the launcher's, in its process.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import marshal
import os
import sys
import sysconfig
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

LAUNCHER = "launcher.py"
REPORT_LIMIT = 64 * 1024
PROBE_TIMEOUT = 10.0
UNSANDBOXED_HINT = ("set P38_AGENTS_UNSANDBOXED=true to run agents with only what the kernel "
                    "gives (docs/agents.md)")


@dataclass(frozen=True)
class Sandbox:
    """`required`: refuse to start an agent the kernel cannot fence in completely (every
    process is checked by its launcher). `found`: what `probe()` saw at start, when it ran."""

    required: bool = True
    found: Mapping[str, str] = field(default_factory=dict)

    def refusal(self) -> str | None:
        """Why agents cannot run in this process (known from the probe), or None."""
        if not self.required or not self.found or self.found.get("sandbox") == "complete":
            return None
        return verdict(self.found, self)

    def describe(self) -> dict[str, Any]:
        """For /readyz and the start log."""
        return {"sandbox": self.found.get("sandbox", "unknown"), "required": self.required,
                "verdict": verdict(self.found, self) if self.found else "not probed",
                "protections": {k: v for k, v in self.found.items()
                                if k not in ("sandbox", "missing", "refused")},
                **({"missing": self.found["missing"]} if "missing" in self.found else {})}


REQUIRED = Sandbox(required=True)


class SandboxRefused(Exception):
    """The kernel could not fence an agent process in and the sandbox is required."""


def interpreter(python: str | None = None) -> str:
    """The real interpreter (a virtualenv's `python` is a link to it): the agent process runs
    the standard library only, so it needs nothing of the virtualenv."""
    return os.path.realpath(python or sys.executable)


NOT_READABLE = ("_ctypes", "_test", "_xx", "xxlimited")  # native calls, test hooks
STDLIB_LEFT_OUT = frozenset({"lib-dynload", "site-packages", "dist-packages", "test",
                             "idlelib", "tkinter", "turtledemo", "ensurepip"})


@functools.cache
def readable(python: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """What an agent process may read besides its directory, as (paths read beneath, folders
    only listed): the interpreter and its shared library, the standard library but ctypes and
    the test modules (so no agent code ever calls native functions), the system's shared
    library folders, the locale and time zone data, the loader's cache."""
    installs = {os.path.realpath(p) for p in (sys.base_prefix, sys.base_exec_prefix,
                                              sys.prefix, sys.exec_prefix)}
    paths = {python}
    if sysconfig.get_config_var("Py_ENABLE_SHARED"):
        library = os.path.join(str(sysconfig.get_config_var("LIBDIR")),
                               str(sysconfig.get_config_var("INSTSONAME")))
        paths.add(os.path.realpath(library))
    stdlib = os.path.realpath(sysconfig.get_path("stdlib"))
    paths.update(os.path.join(stdlib, name) for name in os.listdir(stdlib)
                 if name not in STDLIB_LEFT_OUT)
    dynload = os.path.realpath(str(sysconfig.get_config_var("DESTSHARED")))
    with contextlib.suppress(OSError):
        paths.update(os.path.join(dynload, name) for name in os.listdir(dynload)
                     if not name.startswith(NOT_READABLE))
    with contextlib.suppress(OSError), open("/proc/self/maps", encoding="utf-8") as maps:
        for line in maps:  # the folders of the system's shared libraries (libc, libm...)
            fields = line.split(None, 5)
            name = fields[5].strip() if len(fields) == 6 else ""
            if name.startswith("/") and ".so" in os.path.basename(name):
                folder = os.path.dirname(os.path.realpath(name))
                if not any(folder == i or folder.startswith(i + "/") for i in installs) \
                        and "-packages" not in folder:
                    paths.add(folder)
    paths.update(p for p in ("/usr/lib/locale", "/usr/share/zoneinfo", "/etc/ld.so.cache")
                 if os.path.exists(p))
    return tuple(sorted(paths)), (stdlib, dynload)


def launcher_path() -> str:
    return str(resources.files("controller.clients.agent_runtime").joinpath(LAUNCHER))


def launch_config(*, code: Path, scratch: Path, python: str, argv: list[str],
                  env: dict[str, str], memory_bytes: int, timeout: float, report_fd: int,
                  sandbox: Sandbox, probe: bool = False) -> dict[str, Any]:
    """`code`: the folder of the agent's module, its test and the runtime (read only);
    `scratch`: its working directory (the only place it writes, a tmpfs of its own)."""
    read, listed = readable(python)
    return {"report_fd": report_fd, "memory_bytes": memory_bytes, "timeout": int(timeout) + 1,
            "require": sandbox.required, "probe": probe, "read": list(read),
            "list": list(listed), "code": [str(code)], "write": [str(scratch)],
            "devices": ["/dev/null", "/dev/urandom"], "argv": [python, *argv], "env": env}


def encode(config: dict[str, Any]) -> str:
    """The launcher's argument: `marshal` in hex (it reads it without importing json)."""
    return marshal.dumps(config).hex()


async def read_report(fd: int) -> dict[str, str]:
    """The launcher's report: `key<TAB>value` lines, then end of file (its descriptor closed
    before it execs, or the launcher died: then an empty report)."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=REPORT_LIMIT)
    transport, _ = await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(fd, "rb", buffering=0))
    try:
        data = await reader.read(REPORT_LIMIT)
    finally:
        transport.close()
    report = {}
    for line in data.decode("utf-8", "replace").splitlines():
        key, tab, value = line.partition("\t")
        if tab:
            report[key] = value
    return report


async def probe(python: str | None = None) -> dict[str, str]:
    """What the kernel gives an agent process here: the launcher applies every protection to
    a process that then exits. `sandbox` is `complete` or `incomplete` (then `missing`)."""
    python = interpreter(python)
    with tempfile.TemporaryDirectory(prefix="p38-probe-") as workdir:
        read_end, write_end = os.pipe()
        config = launch_config(code=Path(workdir), scratch=Path(workdir), python=python,
                               argv=[], env={}, memory_bytes=1 << 30, timeout=PROBE_TIMEOUT,
                               report_fd=write_end, sandbox=Sandbox(required=False),
                               probe=True)
        try:
            process = await asyncio.create_subprocess_exec(
                python, "-I", "-S", "-B", launcher_path(), encode(config), cwd=workdir,
                env={}, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE, pass_fds=(write_end,))
        finally:
            os.close(write_end)
        try:
            async with asyncio.timeout(PROBE_TIMEOUT):
                report = await read_report(read_end)
                _out, err = await process.communicate()
        except TimeoutError:
            process.kill()
            await process.wait()
            return {"sandbox": "incomplete", "missing": "everything",
                    "error": f"the probe did not answer within {PROBE_TIMEOUT:g}s"}
    if not report:
        return {"sandbox": "incomplete", "missing": "everything",
                "error": "the launcher could not start: "
                         + err.decode("utf-8", "replace").strip()[-500:]}
    return report


def verdict(report: Mapping[str, str], sandbox: Sandbox) -> str:
    """One line for the log and /readyz: may agents run here, and with what."""
    if report.get("sandbox") == "complete":
        return "agents run in the kernel sandbox (namespaces, Landlock, seccomp)"
    missing = report.get("missing") or "unknown"
    if sandbox.required:
        return f"agents are refused: the kernel cannot sandbox them ({missing}); " \
               + UNSANDBOXED_HINT
    return (f"agents run WITHOUT a complete sandbox ({missing} not applied), as "
            "P38_AGENTS_UNSANDBOXED=true allows")
