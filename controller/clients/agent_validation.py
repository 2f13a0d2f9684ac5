"""Validation of an agent's code before a version may run: it parses, the static check passes
(`agent_code.check`), `ruff check` passes, and its test passes in the harness.

`validate(code, test)` returns a `Report` whose `problems` are the exact messages (what a fix
round sends back to Claude, and what a FAILED version shows). Runs ruff and the harness as
subprocesses (the test in the sandbox, like a run); decides nothing about rounds or versions.
"""

from __future__ import annotations

import asyncio
import sys
from dataclasses import dataclass, field
from typing import Any

from controller.clients import agent_code
from controller.clients.harness import Limits, run_agent
from controller.clients.sandbox import REQUIRED, Sandbox, SandboxRefused

RUFF_RULES = "E4,E7,E9,F,B"  # syntax, undefined names, unused imports, likely bugs
RUFF_TIMEOUT = 30.0
TEST_LIMITS = Limits(timeout=60.0, memory_bytes=512 * 1024 * 1024)


@dataclass
class Report:
    ok: bool
    problems: list[str] = field(default_factory=list)
    steps: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "problems": self.problems, "steps": self.steps}


async def validate(code: str, test: str | None, *, limits: Limits = TEST_LIMITS,
                   sandbox: Sandbox = REQUIRED) -> Report:
    """Every step, stopping at the first that fails (a later one would only add noise).
    `SandboxRefused` when the test cannot run here (not the code's fault: no fix round)."""
    report = Report(ok=False)
    static = agent_code.check(code, test=test)
    report.steps["static"] = {"ok": not static, "problems": [str(p) for p in static]}
    if static:
        report.problems = [str(p) for p in static]
        return report
    lint = await ruff(code, "agent.py") + (await ruff(test, "test_agent.py") if test else [])
    report.steps["ruff"] = {"ok": not lint, "problems": lint, "rules": RUFF_RULES}
    if lint:
        report.problems = lint
        return report
    if test is None:
        report.steps["test"] = {"ok": True, "skipped": "the agent has no test"}
        report.ok = True
        return report
    finished = await run_agent(code=code, test=test, mode="test", tools=[], limits=limits,
                               sandbox=sandbox)
    if finished.outcome == "refused":
        raise SandboxRefused(finished.error or "the sandbox was refused")
    tests = finished.tests or {}
    report.steps["test"] = {"ok": finished.outcome == "succeeded",
                            "outcome": finished.outcome, "passed": tests.get("passed", []),
                            "failed": tests.get("failed", []),
                            "seconds": round(finished.seconds, 3),
                            "stderr": finished.stderr[-2000:]}
    if finished.outcome != "succeeded":
        failed = tests.get("failed") or []
        # One line each (the trace is in the report's `test` step): where it failed, in the
        # agent's or its test's file, and why.
        report.problems = [f"{f.get('file') or 'test_agent.py'}"
                           + (f":{f['line']}" if isinstance(f.get("line"), int) else "")
                           + f": {f.get('name')}: {_one_line(f.get('error'))}"
                           for f in failed] or \
            [f"test_agent.py: the test run {finished.outcome}: {finished.error}\n"
             f"{finished.trace or ''}".rstrip()]
        return report
    if not tests.get("passed"):
        report.problems = ["test_agent.py: defines no test_* function"]
        return report
    report.ok = True
    return report


async def ruff(code: str, filename: str) -> list[str]:
    """`ruff check` of one module, as `file:line:col: CODE message` lines."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "ruff", "check", "--isolated", "--no-cache", "--select",
        RUFF_RULES, "--output-format", "concise", "--stdin-filename", filename, "-",
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    try:
        async with asyncio.timeout(RUFF_TIMEOUT):
            out, err = await process.communicate(code.encode("utf-8"))
    except TimeoutError:
        process.kill()
        await process.wait()
        return [f"{filename}:1:1: ruff did not finish within {RUFF_TIMEOUT:g}s"]
    if process.returncode not in (0, 1):
        return [f"{filename}:1:1: ruff could not check it: "
                f"{err.decode('utf-8', 'replace').strip()[:500]}"]
    return [line for line in out.decode("utf-8", "replace").splitlines()
            if line.startswith(filename + ":")]


def _one_line(text: object) -> str:
    """An exception's text on one line (an assertion's message may span several)."""
    return " ".join(str(text or "").split())[:300]


def with_traces(report: Report) -> list[str]:
    """The report's problems, each failed test's followed by its trace: what the author (Claude,
    in a fix round) needs to see, where a status or a log wants one line."""
    failed = (report.steps.get("test") or {}).get("failed") or []
    traces = [str(f.get("trace") or "").rstrip() for f in failed]
    if len(traces) != len(report.problems):
        return list(report.problems)
    return [f"{problem}\n{trace}".rstrip() for problem, trace in
            zip(report.problems, traces, strict=True)]
