"""`p38 run` with no controller running says so at once; `--wait` that runs out of time says
the run stays queued, and `--cancel-on-timeout` really cancels it."""

from __future__ import annotations

import asyncio
import uuid

import orjson

from controller.store import Store
from tests.helpers import env_for, p38

AGENT = {"apiVersion": "p38/v1", "kind": "Agent", "metadata": {"name": "counter"},
         "spec": {"description": "Count.", "code": "agents/counter.py"}}


async def _applied_agent(store: Store) -> None:
    await store.pool.execute(
        "INSERT INTO applied_objects (source, kind, name, content_hash, document)"
        " VALUES ('local', 'Agent', 'counter', 'h', $1::jsonb)", orjson.dumps(AGENT).decode())


async def test_run_without_a_controller_stays_queued_and_says_so(store: Store,
                                                                 dsn: str) -> None:
    """No controller: the command says the run stays queued until one starts, and a `--wait`
    that times out says the same (not "is a controller running?"); the run is still queued."""
    await _applied_agent(store)
    result = await asyncio.to_thread(p38, "run", "counter", "--wait", "--timeout", "0.5",
                                     env=env_for(dsn))
    assert result.returncode == 1
    assert "no controller that runs agents is running: run 1 stays queued and runs when one " \
        "starts" in result.stderr
    assert "run 1 has not ended after 0.5s: it stays queued and runs when a controller " \
        "carries it out" in result.stderr
    assert "Traceback" not in result.stderr
    run = await store.fetchrow("agent_run_get", 1)
    assert run["state"] == "queued"


async def test_cancel_on_timeout_cancels_the_run_that_did_not_start(store: Store,
                                                                    dsn: str) -> None:
    """`--cancel-on-timeout` ends a run that has not started by the timeout as cancelled; a
    controller that starts later finds it finished and runs nothing."""
    await _applied_agent(store)
    result = await asyncio.to_thread(p38, "run", "counter", "--wait", "--timeout", "0.5",
                                     "--cancel-on-timeout", env=env_for(dsn))
    assert result.returncode == 1
    assert "it had not started, and is cancelled (--cancel-on-timeout)" in result.stderr
    run = await store.fetchrow("agent_run_get", 1)
    assert (run["state"], run["outcome"]) == ("finished", "cancelled")
    assert "--cancel-on-timeout" in run["error"]
    alone = await asyncio.to_thread(p38, "run", "counter", "--cancel-on-timeout",
                                    env=env_for(dsn))
    assert alone.returncode == 2 and "--cancel-on-timeout goes with --wait" in alone.stderr


async def test_a_live_controller_is_not_reported_missing(store: Store, dsn: str) -> None:
    """With a controller's heartbeat fresh (one that runs agents), no warning is printed."""
    await _applied_agent(store)
    await store.pool.execute(
        "INSERT INTO controllers (id, host, pid, version, workers, run_workers)"
        " VALUES ($1, 'elsewhere', 7, '0.1.0', 2, 2)", uuid.uuid4())
    result = await asyncio.to_thread(p38, "run", "counter", env=env_for(dsn))
    assert result.returncode == 0, result.stderr
    assert "run 1 of agent:local/counter queued" in result.stdout
    assert "no controller" not in result.stderr
