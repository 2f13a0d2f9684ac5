"""What the read-command tests share: a manifests folder of their own (one hand-written agent
that writes to stderr), the real app reconciling it, and `p38` run off the event loop so the
app keeps answering while the command runs."""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path
from typing import Any

from controller.app import create_app
from controller.config import ManifestSettings
from controller.store import Store
from tests.helpers import make_settings, p38, wait_until

AGENT = """\
apiVersion: p38/v1
kind: Agent
metadata:
  name: echo
spec:
  description: Say what it was given, and write a line to stderr.
  code: agents/echo.py
  test: agents/test_echo.py
  limits: {timeout: 30s, memory: 128Mi}
"""
CODE = """\
def run(task):
    print("echo says hello on stderr")  # an agent's prints are its stderr
    return {"echo": task.input}
"""
TEST = """\
from agent import run
from p38_agent import FakeTools, Task


def test_echoes():
    assert run(Task(input=1, state={}, tools=FakeTools()))["echo"] == 1
"""


def make_folder(root: Path) -> Path:
    """A repository-like folder: manifests/echo.yaml and its agent under agents/."""
    (root / "manifests").mkdir(parents=True)
    (root / "agents").mkdir()
    (root / "manifests" / "echo.yaml").write_text(AGENT)
    (root / "agents" / "echo.py").write_text(CODE)
    (root / "agents" / "test_echo.py").write_text(TEST)
    return root / "manifests"


def app_for(dsn: str, folder: Path, *, api_token: str | None = None) -> Any:
    settings = make_settings(dsn, workers=1, api_token=api_token).model_copy(update={
        "manifests": ManifestSettings(P38_MANIFESTS_DIR=folder,
                                      P38_MANIFESTS_POLL_SECONDS=0.05)})
    return create_app(settings)


async def run_p38(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`p38 ARGS` in its own process, while this loop keeps serving the app."""
    return await asyncio.to_thread(p38, *args, env=env)


async def agent_ran(store: Store, env: dict[str, str]) -> int:
    """Wait for the echo agent's version, run it by hand to its end; the run's id."""
    async def ready() -> bool:
        row = await store.fetchrow("agent_version_current", "agent:local/echo")
        return row is not None

    await wait_until(ready, what="the echo agent's version", store=store, timeout=60)
    ran = await run_p38("run", "echo", "--input", '"hi"', "--wait", "--timeout", "60", env=env)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    return int(ran.stdout.split()[1])


def without_database(env: dict[str, str], home: Path) -> dict[str, str]:
    """The environment of an operator with no database credentials at all."""
    found = {k: v for k, v in env.items() if k != "DATABASE_URL"}
    found["P38_HOME"] = str(home)
    return found


def env_with(**extra: str) -> dict[str, str]:
    return {**os.environ, "P38_LOG_FORMAT": "json", **extra}
