"""Run the real `p38` server as a child process on a Unix socket, for crash tests."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp

from tests.helpers import GITHUB_SECRET


class ServerProcess:
    def __init__(self, tmp: Path, env: dict[str, str], command: str = "serve") -> None:
        self.socket = tmp / "p38.sock"
        self.log_path = tmp / f"server-{command}.log"
        self.env = {**os.environ, "GITHUB_WEBHOOK_SECRET": GITHUB_SECRET,
                    "P38_LOG_FORMAT": "json", **env}
        self.command = command
        self.proc: subprocess.Popen[bytes] | None = None

    async def start(self, timeout: float = 60.0) -> None:
        if self.socket.exists():
            self.socket.unlink()
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "controller.cli", self.command, "--unix", str(self.socket)],
                env=self.env, stdout=log, stderr=log,
                cwd=self.socket.parent)  # `p38 up` in the repository would read its manifests/
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited: {self.log_path.read_text()[-2000:]}")
            try:
                status, _ = await self.get("/readyz")
                if status == 200:
                    return
            except (aiohttp.ClientError, OSError):
                pass
            await asyncio.sleep(0.1)
        raise AssertionError(f"server not ready: {self.log_path.read_text()[-2000:]}")

    def session(self) -> aiohttp.ClientSession:
        return aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=str(self.socket)))

    async def get(self, path: str) -> tuple[int, Any]:
        async with self.session() as session, session.get(f"http://p38{path}") as response:
            return response.status, await response.json()

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(timeout=10)

    def terminate(self) -> int:
        assert self.proc is not None
        self.proc.terminate()
        return self.proc.wait(timeout=30)
