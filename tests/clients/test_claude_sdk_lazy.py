"""The Anthropic SDK (~50 MB resident) is loaded at the first Claude call, not by importing the
application or opening the provider: a process that never calls Claude does not carry it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import asyncio, sys
from controller.app import create_app
from controller.clients.claude import Claude

async def main():
    claude = Claude("sk-ant-test-key", base_url="http://127.0.0.1:9")
    await claude.close()

asyncio.run(main())
print("anthropic" in sys.modules)
"""


def test_importing_the_app_and_opening_claude_leave_the_sdk_unloaded() -> None:
    """Importing the app, building a Claude client and closing it import no `anthropic`."""
    done = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"
