"""`p38 status` tells a live controller from none or a killed one, counts work due now apart
from keys waiting for a later time, shows objects waiting for credentials apart from failures,
answers in JSON with `-o json`, and redraws with `--watch` until Ctrl-C."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import uuid

from controller.app import create_app
from controller.store import Store
from tests.helpers import env_for, make_settings, p38


async def status(dsn: str, *args: str) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(p38, "status", *args, env=env_for(dsn))


async def test_status_lists_the_running_controller_and_says_when_none_runs(
        aiohttp_client, store: Store, dsn: str) -> None:  # type: ignore[no-untyped-def]
    """A running app has a heartbeat row that `p38 status` shows (host, pid, workers); once it
    stops cleanly the row is gone and the status says plainly that none runs."""
    client = await aiohttp_client(create_app(make_settings(dsn, workers=1)))
    running = await status(dsn)
    assert running.returncode == 0, running.stderr
    assert "controllers: 1 running" in running.stdout
    assert f"pid {os.getpid()}: p38 " in running.stdout and "1 worker" in running.stdout
    await client.close()
    assert await store.pool.fetchval("SELECT count(*) FROM controllers") == 0
    stopped = await status(dsn)
    assert "controllers: none running: queued work waits until one starts" in stopped.stdout


async def test_a_controller_that_stopped_without_a_word_is_shown_gone(store: Store,
                                                                      dsn: str) -> None:
    """A row not seen for a while (another host) or whose process is not there (this host) is
    a controller that was killed: shown as gone, not as running."""
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    await store.pool.execute(
        "INSERT INTO controllers (id, host, pid, version, workers, run_workers, last_seen)"
        " VALUES ($1, 'far-away', 4242, '0.0.9', 4, 4, now() - interval '5 minutes'),"
        "        ($2, $3, $4, '0.0.9', 4, 4, now())",
        uuid.uuid4(), uuid.uuid4(), os.uname().nodename, int(dead.stdout))
    result = await status(dsn)
    assert "controllers: none running" in result.stdout
    assert "gone: far-away pid 4242 (p38 0.0.9), last seen 5m ago" in result.stdout
    assert f"gone: {os.uname().nodename} pid {int(dead.stdout)}" in result.stdout


async def test_status_json_counts_work_due_now_apart_from_later_and_credentials(
        store: Store, dsn: str) -> None:
    """`-o json`: a key due now is queued work, a schedule waiting for its next tick is not;
    an object Blocked only because a provider is not configured waits for credentials."""
    await store.pool.execute(
        "INSERT INTO work_queue (key, kind, not_before, wait_kind) VALUES"
        " ('agent:local/a', 'agent', now(), NULL),"
        " ('schedule:local/s', 'schedule', now() + interval '1 hour', 'requeue'),"
        " ('pull:o/r#1', 'pull', now() + interval '30 seconds', 'backoff')")
    await store.pool.execute(
        "INSERT INTO object_status (key, kind, status, reason, message) VALUES"
        " ('service:local/controller', 'service', 'Blocked', 'NoRailway',"
        "  'Railway cannot be read: RAILWAY_TOKEN is not set'),"
        " ('agent:local/a', 'agent', 'Blocked', 'NoCredentials', 'dry-run: no key'),"
        " ('agent:local/b', 'agent', 'Stalled', 'VersionFailed', 'v1 FAILED: bad code'),"
        " ('agent:local/c', 'agent', 'Ready', 'VersionReady', 'v1 is READY')")
    result = await status(dsn, "-o", "json")
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    queue = found["queue"]
    assert (queue["due"], queue["later"], queue["retrying"], queue["dead"]) == (1, 1, 1, 0)
    assert 3500 < queue["next_later_in_seconds"] <= 3600
    assert found["objects"] == {"Ready": 1, "Stalled": 1}
    assert found["waiting_for_credentials"] == 2
    assert found["controllers"] == {"running": [], "gone": []}
    text = (await status(dsn)).stdout
    assert "queue: due now 1, running 0, waiting for a later time 1 (next in 59m)" in text
    assert "retrying after an error 1" in text
    assert "objects: Ready 1, Stalled 1; 2 waiting for credentials" in text
    assert "  waiting for credentials service:local/controller: NoRailway" in text
    assert "Blocked service:local/controller" not in text
    assert "  Stalled agent:local/b: VersionFailed: v1 FAILED: bad code" in text


def test_status_watch_redraws_until_ctrl_c(dsn: str) -> None:
    """`--watch` prints a frame, then another, until SIGINT ends it quietly with exit 0; with
    `-o json`, each frame is one JSON document on its own line."""
    for args, frame_end in ((["--watch", "0.5"], "objects: "), (["--watch", "0.5", "-o", "json"],
                                                                 "{")):
        process = subprocess.Popen([sys.executable, "-m", "controller.cli", "status", *args],
                                   env=env_for(dsn), stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True)
        try:
            assert process.stdout is not None
            frames = 0
            while frames < 2:  # read until two frames are out: it redraws
                line = process.stdout.readline()
                assert line, process.stderr.read() if process.stderr else ""
                if line.startswith(frame_end):
                    frames += 1
                    if frame_end == "{":
                        assert json.loads(line)["schema"]["version"] > 0
            process.send_signal(signal.SIGINT)
            _, err = process.communicate(timeout=30)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
        assert process.returncode == 0, err
        assert "Traceback" not in err


def test_status_watch_refuses_a_bad_interval(dsn: str) -> None:
    """A watch interval that is not a number of seconds in range is a usage error."""
    result = p38("status", "--watch", "0", env=env_for(dsn))
    assert result.returncode == 2 and "between 0.5 and 3600 seconds" in result.stderr
