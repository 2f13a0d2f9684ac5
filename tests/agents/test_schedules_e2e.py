"""Schedules end to end through the real app: ticks missed while the controller was down are
caught up once, by two controllers on one database; a schedule whose agent cannot run records
skipped ticks with the reason; the tick row makes a tick fire once however many processes
carry it out at the same moment."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from controller.providers.agents import fire_tick
from controller.store import Store
from reconcilers.agents.agent_actions import Tick
from tests.agents.test_agents_e2e import COUNTER, COUNTER_TEST, app_on, write_agent
from tests.helpers import wait_until

SCHEDULE = """---
apiVersion: p38/v1
kind: Schedule
metadata: {{name: {name}}}
spec: {{cron: "* * * * *", agent: {agent}, catchUp: {catch_up}, concurrency: {concurrency}}}
"""
EVERY = "schedule:local/counter-every-minute"
# (A run armed for an instant still to come is not a run of the ticks that happened.)
NOT_ARMED = "id NOT IN (SELECT run_id FROM schedule_ticks WHERE outcome = 'armed')"
BROKEN = "schedule:local/wrong-every-minute"


def add_schedule(root: Path, agent: str, catch_up: str, concurrency: str) -> None:
    with (root / "manifests" / f"{agent}.yaml").open("a") as f:
        f.write(SCHEDULE.format(name=f"{agent}-every-minute", agent=agent, catch_up=catch_up,
                                concurrency=concurrency))


async def test_missed_ticks_are_caught_up_once_by_two_controllers(
        aiohttp_client: Any, store: Store, dsn: str, tmp_path: Path) -> None:
    """The controller is stopped, three-odd minutes pass (the schedules' `applied_at` is moved
    back), two controllers start on the database: every missed minute of the catchUp-all
    schedule fires exactly once; the schedule of an agent with no READY version records
    skipped ticks that say why."""
    write_agent(tmp_path, "counter", COUNTER, COUNTER_TEST)
    write_agent(tmp_path, "wrong", COUNTER.replace("+ 1", "+ 2"), COUNTER_TEST)
    add_schedule(tmp_path, "counter", "all", "allow")
    add_schedule(tmp_path, "wrong", "latest", "forbid")
    first = await app_on(aiohttp_client, dsn, tmp_path)

    async def settled() -> bool:
        rows = await store.pool.fetch(
            "SELECT key, reason FROM object_status WHERE key = ANY($1::text[])",
            ["agent:local/counter", "agent:local/wrong", EVERY, BROKEN])
        reasons = {r["key"]: r["reason"] for r in rows}
        return reasons.get("agent:local/counter") == "VersionReady" and \
            reasons.get("agent:local/wrong") == "VersionFailed" and len(reasons) == 4

    await wait_until(settled, what="agents built, schedules seen", store=store)
    await first.close()  # the controller is down ...
    # ... for 200 seconds: the schedules were applied then, and nothing of them ran since.
    await store.pool.execute("DELETE FROM agent_runs WHERE schedule IS NOT NULL")
    await store.pool.execute("DELETE FROM schedule_ticks")
    missed: list[datetime] = [r["m"] for r in await store.pool.fetch("""
        WITH aged AS (UPDATE applied_objects SET applied_at = now() - interval '200 seconds'
                      WHERE kind = 'Schedule' RETURNING applied_at)
        SELECT generate_series(date_trunc('minute', (SELECT min(applied_at) FROM aged))
                               + interval '1 minute', now(), interval '1 minute') AS m""")]
    assert len(missed) >= 3
    await store.execute("queue_enqueue", [EVERY, BROKEN])
    one, _ = await asyncio.gather(app_on(aiohttp_client, dsn, tmp_path),
                                  app_on(aiohttp_client, dsn, tmp_path))

    async def caught_up() -> list[Any] | None:
        runs = await store.pool.fetch(
            "SELECT id, state, outcome, input->>'due_at' AS due FROM agent_runs "
            f"WHERE schedule = $1 AND {NOT_ARMED}", EVERY)
        done = [r for r in runs if r["state"] == "finished"]
        return runs if len(done) >= len(missed) and len(done) == len(runs) else None

    runs = await wait_until(caught_up, what="every missed minute ran", store=store,
                            timeout=60)
    ticks = await store.pool.fetch("SELECT due_at, outcome, run_id FROM schedule_ticks "
                                   "WHERE schedule = $1 AND outcome <> 'armed' "
                                   "ORDER BY due_at", EVERY)
    fired = [t for t in ticks if t["outcome"] == "fired"]
    assert [t["due_at"] for t in fired][:len(missed)] == missed
    # Every run is a fired tick's and every fired tick has its run, read in one snapshot (a
    # minute may pass meanwhile and fire the next instant, with its run).
    both = await store.pool.fetchrow(
        "SELECT ARRAY(SELECT run_id FROM schedule_ticks WHERE schedule = $1"
        "             AND outcome = 'fired' ORDER BY run_id) AS fired,"
        f"      ARRAY(SELECT id FROM agent_runs WHERE schedule = $1 AND {NOT_ARMED}"
        "             ORDER BY id) AS runs", EVERY)
    assert both["fired"] == both["runs"]
    assert {r["id"] for r in runs} <= set(both["runs"])
    assert len({r["due"] for r in runs}) == len(runs)  # one run per instant, never two
    assert {r["outcome"] for r in runs} == {"succeeded"}

    async def skipped() -> list[Any] | None:
        rows = await store.pool.fetch("SELECT due_at, outcome, reason FROM schedule_ticks "
                                      "WHERE schedule = $1 AND outcome <> 'armed' "
                                      "ORDER BY due_at", BROKEN)
        return rows if any(r["due_at"] == missed[-1] for r in rows) else None

    broken = await wait_until(skipped, what="the broken schedule's ticks", store=store)
    assert {r["outcome"] for r in broken} == {"skipped"}
    assert "missed while the controller was down or behind" in broken[0]["reason"]
    newest = next(r for r in broken if r["due_at"] == missed[-1])
    assert "agent wrong has no READY version (newest is v1, FAILED" in newest["reason"]
    assert await store.pool.fetchval(
        f"SELECT count(*) FROM agent_runs WHERE schedule = $1 AND {NOT_ARMED}", BROKEN) == 0
    (schedule,) = (await (await one.get("/api/agents/wrong")).json())["schedules"]
    assert (schedule["status"], schedule["reason"]) == ("Blocked", "AgentNotReady")
    assert schedule["ticks"][0]["due_at"].startswith(missed[-1].isoformat()[:19])


async def test_a_tick_fires_once_when_two_processes_carry_it_out_at_once(
        store: Store) -> None:
    """Both carry out the same tick at the same moment: one INSERT wins and queues the run,
    the other finds the row and queues nothing."""
    tick = Tick(schedule="schedule:local/s", due_at=datetime(2026, 11, 22, 10, tzinfo=UTC),
                outcome="fired", reason="due", agent="agent:local/a")
    results = await asyncio.gather(*(fire_tick(store, tick) for _ in range(4)))
    assert sorted("run" in r for r in results) == [False, False, False, True]
    assert await store.pool.fetchval("SELECT count(*) FROM agent_runs") == 1
    assert await store.pool.fetchval(
        "SELECT run_id FROM schedule_ticks WHERE schedule = 'schedule:local/s'") == \
        next(r["run"] for r in results if "run" in r)
