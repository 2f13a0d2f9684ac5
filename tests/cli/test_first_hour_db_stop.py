"""`p38 db-stop` under a running controller, through the real command and a real embedded
PostgreSQL in a temporary P38_HOME: refused while the controller is connected (naming it),
`--force` stops it, and the controller says once that its database is gone (not ten warnings a
second), then that it is back; a killed controller holds nothing."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.helpers import p38, wait_until


def _lines(log: Path) -> list[dict[str, Any]]:
    found = []
    for line in log.read_text().splitlines():
        if line.startswith("{"):
            found.append(json.loads(line))
    return found


def _events(log: Path, name: str) -> list[dict[str, Any]]:
    return [line for line in _lines(log) if line.get("event") == name]


async def test_db_stop_refuses_under_a_controller_and_a_forced_stop_is_said_once(
        tmp_path: Path) -> None:
    """Refused (exit 1) while `p38 up` is connected, with its pid; `--force` stops it; the
    controller logs `database_unreachable` once, no per-poll warnings, and `database_back`
    when the database runs again (with how many failed polls it kept quiet)."""
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env.update(P38_HOME=str(tmp_path / "home"), P38_LOG_FORMAT="json",
               P38_POLL_SECONDS="0.05")  # workers poll often: a loop would show at once
    log = tmp_path / "controller.log"
    with log.open("w") as out:
        process = subprocess.Popen([sys.executable, "-m", "controller.cli", "up", "--port",
                                    "0"], env=env, stderr=out, stdout=out, cwd=tmp_path)
    try:
        async def serving() -> bool:
            assert process.poll() is None, log.read_text()
            return bool(_events(log, "serving"))

        await wait_until(serving, timeout=120, what="the controller serving")

        refused = await asyncio.to_thread(p38, "db-stop", env=env)
        assert refused.returncode == 1, refused.stdout + refused.stderr
        assert refused.stderr.startswith(
            f"not stopped: the embedded PostgreSQL in {tmp_path / 'home' / 'pgdata'} is in use "
            f"by p38 pid {process.pid} on "), refused.stderr
        assert "`p38 db-stop --force`" in refused.stderr
        assert (tmp_path / "home" / "pgdata" / "postmaster.pid").exists()  # still running

        forced = await asyncio.to_thread(p38, "db-stop", "--force", env=env)
        assert (forced.returncode, forced.stdout.strip()) == (
            0, f"embedded PostgreSQL in {tmp_path / 'home' / 'pgdata'} stopped")

        async def said_gone() -> bool:
            return bool(_events(log, "database_unreachable"))

        await wait_until(said_gone, what="the controller saying its database is gone")
        # Start it again (`p38 migrate` starts the embedded server), and wait for the word.
        again = await asyncio.to_thread(p38, "migrate", env=env)
        assert again.returncode == 0, again.stderr

        async def back() -> list[dict[str, Any]]:
            return _events(log, "database_back")

        [came_back] = await wait_until(back, timeout=60, what="the controller seeing it back")
        # A controller that is gone (killed) does not hold the database, even while the
        # server has not yet noticed its connections closed.
        process.kill()
        process.wait(timeout=30)
        stopped = await asyncio.to_thread(p38, "db-stop", env=env)
        assert (stopped.returncode, stopped.stdout.strip()) == (
            0, f"embedded PostgreSQL in {tmp_path / 'home' / 'pgdata'} stopped"), stopped.stderr
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=30)
        subprocess.run([sys.executable, "-m", "controller.cli", "db-stop", "--force"], env=env,
                       capture_output=True, timeout=60, check=False)
    [gone] = _events(log, "database_unreachable")  # no flapping as the server went down
    assert gone["level"] == "error" and gone["error"]  # shutting down, or no socket any more
    assert "webhooks are answered 503 until it is back" in gone["meaning"]
    assert came_back["failures"] > 1  # the workers kept polling (every 50 ms) meanwhile...
    noisy = [line for line in _lines(log) if line.get("event") in (
        "claim_failed", "listen_connect_failed", "resync_failed", "reconcile_not_settled",
        "database_still_unreachable", "Failed to restore the pool connection floor; retrying")]
    assert noisy == []  # ...and said nothing more (the next reminder is a minute away)
