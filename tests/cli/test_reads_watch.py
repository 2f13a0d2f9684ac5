"""`p38 get --watch`: the table, then one line for each object whose status changes, until
interrupted (Ctrl-C ends it quietly, exit 0)."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from controller.store import Store
from tests.cli.reads_trial import AGENT, app_for, make_folder
from tests.helpers import env_for, wait_until


async def test_watch_prints_each_change(aiohttp_client: Any, store: Store, dsn: str,
                                        tmp_path: Path) -> None:
    """A manifest source watched as JSON lines: its first state, then a line when a new file
    changes what it applied; SIGINT ends the watch with exit 0 and no traceback."""
    folder = make_folder(tmp_path)
    await aiohttp_client(app_for(dsn, folder))

    async def applied() -> bool:
        rows = await store.fetch("statuses_of", ["manifests:local"])
        return bool(rows) and rows[0]["status"] == "Ready"

    await wait_until(applied, what="the folder applied", store=store)
    watcher = subprocess.Popen(
        [sys.executable, "-m", "controller.cli", "get", "manifests", "--watch", "--interval",
         "0.2", "-o", "json"], env=env_for(dsn), stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
    assert watcher.stdout is not None and watcher.stderr is not None
    try:
        first = json.loads(await asyncio.wait_for(asyncio.to_thread(watcher.stdout.readline),
                                                  30))
        assert (first["key"], first["status"]) == ("manifests:local", "Ready")
        assert first["message"].startswith("1 to create")
        (folder / "second.yaml").write_text(AGENT.replace("name: echo", "name: echo-two"))
        changed = first
        while changed["revision"] == first["revision"]:  # (a line "being reconciled" first)
            changed = json.loads(await asyncio.wait_for(
                asyncio.to_thread(watcher.stdout.readline), 30))
            assert changed["key"] == "manifests:local"
        assert changed["message"].startswith("1 to create, 0 to update")  # the second file
        watcher.send_signal(signal.SIGINT)
        code = await asyncio.to_thread(watcher.wait, 30)
        assert code == 0 and "Traceback" not in watcher.stderr.read()
    finally:
        if watcher.poll() is None:
            watcher.kill()
            watcher.wait()


async def test_watch_table_starts_with_the_table(aiohttp_client: Any, store: Store, dsn: str,
                                                 tmp_path: Path) -> None:
    """Without -o json, the watch starts with the same table `p38 get` prints."""
    await aiohttp_client(app_for(dsn, make_folder(tmp_path)))

    async def applied() -> bool:
        return bool(await store.fetch("statuses_of", ["manifests:local"]))

    await wait_until(applied, what="the folder applied", store=store)
    watcher = subprocess.Popen(
        [sys.executable, "-m", "controller.cli", "get", "manifests", "-w"], env=env_for(dsn),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert watcher.stdout is not None
    try:
        header = await asyncio.wait_for(asyncio.to_thread(watcher.stdout.readline), 30)
        row = await asyncio.wait_for(asyncio.to_thread(watcher.stdout.readline), 30)
        assert header.split() == ["KEY", "STATUS", "REASON", "AGE", "MESSAGE"]
        assert row.split()[:3] == ["manifests:local", "Ready", "Applied"]
    finally:
        watcher.kill()
        watcher.wait()
