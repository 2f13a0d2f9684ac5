"""Armed ticks through the real app and the real database: a schedule's next tick is written
ahead (its row, its run, the run's key due at the instant); the run worker that claims it at
its instant fires it once however many workers and processes race (and the old path of the
same instant fires nothing), skips it with its reason when concurrency forbid finds a run
going, hands a tick claimed too late to the schedule's catch-up rules; a manifest change
re-arms, a suspend disarms, a resume re-arms, a deleted schedule disarms.

Time is not waited for: the schedules tick once a year, and "the instant has come" is the armed
tick's due time moved to just now (its row, its run's input and its key), which is exactly what
the run worker finds at a real instant.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from controller.providers.agents import arm_tick, fire_armed, fire_tick
from controller.store import Store
from reconcilers.agents.agent_actions import Arm, FireArmed, Tick
from tests.agents.test_agents_e2e import COUNTER, COUNTER_TEST, app_on, write_agent
from tests.helpers import wait_until

KEY = "schedule:local/yearly"
SCHEDULE = """---
apiVersion: p38/v1
kind: Schedule
metadata: {{name: yearly}}
spec: {{cron: "{cron}", agent: counter, catchUp: {catch_up}, concurrency: {concurrency},
        suspended: {suspended}}}
"""


def write_schedule(root: Path, *, cron: str = "0 0 1 1 *", catch_up: str = "none",
                   concurrency: str = "allow", suspended: str = "false") -> None:
    (root / "manifests" / "yearly.yaml").write_text(SCHEDULE.format(
        cron=cron, catch_up=catch_up, concurrency=concurrency, suspended=suspended))


async def armed(store: Store) -> list[Any]:
    return list(await store.pool.fetch(
        "SELECT t.due_at, t.run_id, t.armed, r.state, q.not_before, q.wait_kind "
        "FROM schedule_ticks t JOIN agent_runs r ON r.id = t.run_id "
        "LEFT JOIN work_queue q ON q.key = 'run:local/counter#' || r.id "
        "WHERE t.schedule = $1 AND t.outcome = 'armed'", KEY))


async def armed_one(store: Store, *, other_than: int | None = None,
                    cron: str | None = None) -> Any:
    async def found() -> Any:
        rows = await armed(store)
        if len(rows) != 1 or rows[0]["run_id"] == other_than or rows[0]["not_before"] is None:
            return None
        if cron is not None and rows[0]["armed"]["cron"] != cron:
            return None
        return rows[0]
    return await wait_until(found, what="one tick armed", store=store, timeout=60)


async def now_due(store: Store, row: Any, *, at: datetime | None = None,
                  down: bool = False) -> datetime:
    """The armed tick's instant has come: its due time (row, run input, key) is moved to a
    second ago (or to `at`); `down`: the schedule was applied two years ago (the controller was
    down since), in the same transaction. Returns the new due time."""
    due: datetime = at or await store.pool.fetchval(
        "SELECT date_trunc('second', now()) - interval '1 second'")
    async with store.pool.acquire() as conn, conn.transaction():
        if down:
            await conn.execute("UPDATE applied_objects SET applied_at = now() - interval "
                               "'2 years' WHERE kind = 'Schedule'")
        await conn.execute("UPDATE schedule_ticks SET due_at = $2 WHERE schedule = $1 "
                           "AND run_id = $3", KEY, due, row["run_id"])
        await conn.execute("UPDATE agent_runs SET input = jsonb_build_object('due_at', $2::text)"
                           " WHERE id = $1", row["run_id"], due.isoformat())
        await conn.execute("UPDATE work_queue SET not_before = now() WHERE key = $1",
                           f"run:local/counter#{row['run_id']}")
    return due


async def tick_of(store: Store, due: datetime) -> Any:
    async def decided() -> Any:
        row = await store.pool.fetchrow("SELECT outcome, reason, run_id FROM schedule_ticks "
                                        "WHERE schedule = $1 AND due_at = $2", KEY, due)
        return row if row is not None and row["outcome"] != "armed" else None
    return await wait_until(decided, what=f"the tick of {due} decided", store=store, timeout=60)


async def setup(aiohttp_client: Any, dsn: str, root: Path, store: Store, *,
                processes: int = 1, **schedule: str) -> list[Any]:
    write_agent(root, "counter", COUNTER, COUNTER_TEST)
    write_schedule(root, **schedule)
    apps = list(await asyncio.gather(*(app_on(aiohttp_client, dsn, root)
                                       for _ in range(processes))))

    async def ready() -> bool:
        return await store.pool.fetchval("SELECT reason FROM object_status WHERE key = "
                                         "'agent:local/counter'") == "VersionReady"

    await wait_until(ready, what="the agent READY", store=store, timeout=60)
    return apps


async def test_an_armed_tick_fires_once_with_two_processes_racing_and_arms_the_next(
        aiohttp_client: Any, store: Store, dsn: str, tmp_path: Path) -> None:
    """Two controllers (two reconcile and run workers each) on one database: the armed tick is
    claimed by one run worker at its instant, recorded fired with its run, the run succeeds,
    and the next instant is armed (a new run, its key waiting for that instant)."""
    await setup(aiohttp_client, dsn, tmp_path, store, processes=2)
    first = await armed_one(store)
    assert first["state"] == "queued" and first["wait_kind"] == "armed"
    assert first["not_before"] == first["due_at"]  # due exactly at its instant
    due = await now_due(store, first)
    tick = await tick_of(store, due)
    assert (tick["outcome"], tick["run_id"]) == ("fired", first["run_id"])

    async def ended() -> Any:
        row = await store.pool.fetchrow("SELECT state, outcome FROM agent_runs WHERE id = $1",
                                        first["run_id"])
        return row if row["state"] == "finished" else None

    assert (await wait_until(ended, what="the run", store=store, timeout=60))["outcome"] == \
        "succeeded"
    following = await armed_one(store, other_than=first["run_id"])
    assert following["due_at"] > due
    assert await store.pool.fetchval(
        "SELECT count(*) FROM agent_runs WHERE schedule = $1 AND input->>'due_at' = $2",
        KEY, due.isoformat()) == 1


async def test_an_armed_instant_is_decided_once_whoever_carries_it_out(store: Store) -> None:
    """Four run workers decide the same armed instant at once and two old-path ticks of that
    instant race them: one decision wins, the old path fires nothing, the next instant is
    armed once."""
    due = datetime(2030, 1, 1, tzinfo=UTC)
    settings = {"schedule": KEY, "agent": "agent:local/counter", "cron": "0 0 1 1 *",
                "timezone": "UTC", "concurrency": "allow", "hash": "h1"}
    armed_run = (await arm_tick(store, Arm(due_at=due, **settings)))["run"]
    assert armed_run is not None
    fire = FireArmed(due_at=due, run_id=armed_run, outcome="fired", reason="due",
                     next_due=datetime(2031, 1, 1, tzinfo=UTC), **settings)
    old = Tick(schedule=KEY, due_at=due, outcome="fired", reason="due",
               agent="agent:local/counter")
    results = await asyncio.gather(*(fire_armed(store, fire) for _ in range(4)),
                                   fire_tick(store, old), fire_tick(store, old))
    assert sorted(bool(r.get("decided")) for r in results[:4]) == [False, False, False, True]
    assert all(r.get("fired_elsewhere") for r in results[4:])
    rows = await store.pool.fetch("SELECT due_at, outcome, run_id FROM schedule_ticks "
                                  "WHERE schedule = $1 ORDER BY due_at", KEY)
    assert [(r["due_at"].year, r["outcome"]) for r in rows] == [(2030, "fired"),
                                                                 (2031, "armed")]
    assert rows[0]["run_id"] == armed_run
    assert await store.pool.fetchval("SELECT count(*) FROM agent_runs") == 2
    assert await store.pool.fetchval(
        "SELECT count(*) FROM work_queue WHERE kind = 'run' AND wait_kind = 'armed'") == 2


async def test_a_hint_does_not_make_an_armed_run_due_early(store: Store) -> None:
    """An armed run key waits for its instant: a hint (a cancel, a stray enqueue) ends a
    requeue wait, never an armed one."""
    due = datetime(2030, 1, 1, tzinfo=UTC)
    run = (await arm_tick(store, Arm(schedule=KEY, agent="agent:local/counter", due_at=due,
                                     cron="0 0 1 1 *", timezone="UTC", concurrency="allow",
                                     hash="h1")))["run"]
    key = f"run:local/counter#{run}"
    await store.fetchval("queue_hint", [key], "stray", "hint", {"from": "test"})
    row = await store.pool.fetchrow("SELECT not_before, wait_kind FROM work_queue WHERE key = $1",
                                    key)
    assert (row["not_before"], row["wait_kind"]) == (due, "armed")


async def test_a_manifest_change_rearms_and_suspend_disarms_and_resume_rearms(
        aiohttp_client: Any, store: Store, dsn: str, tmp_path: Path) -> None:
    """The armed tick not yet due is withdrawn (row, run, key) when the schedule changes, and
    armed again with the new settings; suspended, nothing is armed; resumed, armed again;
    deleted, nothing is armed."""
    await setup(aiohttp_client, dsn, tmp_path, store)
    first = await armed_one(store, cron="0 0 1 1 *")
    write_schedule(tmp_path, cron="0 0 2 1 *")
    second = await armed_one(store, other_than=first["run_id"], cron="0 0 2 1 *")
    assert (second["due_at"].month, second["due_at"].day) == (1, 2)

    async def gone(run_id: int) -> bool:
        return await store.pool.fetchval("SELECT count(*) FROM agent_runs WHERE id = $1",
                                         run_id) == 0 and await store.pool.fetchval(
            "SELECT count(*) FROM work_queue WHERE key = $1", f"run:local/counter#{run_id}") == 0

    await wait_until(lambda: gone(first["run_id"]), what="the old armed run withdrawn",
                     store=store)
    write_schedule(tmp_path, cron="0 0 2 1 *", suspended="true")

    async def disarmed() -> bool:
        return not await armed(store) and await gone(second["run_id"])

    await wait_until(disarmed, what="suspended: nothing armed", store=store)
    write_schedule(tmp_path, cron="0 0 2 1 *", suspended="false")
    third = await armed_one(store, other_than=second["run_id"], cron="0 0 2 1 *")
    assert third["due_at"] == second["due_at"]
    (tmp_path / "manifests" / "yearly.yaml").unlink()

    async def deleted() -> bool:
        return not await armed(store) and await gone(third["run_id"])

    await wait_until(deleted, what="deleted: nothing armed", store=store)
    assert await store.pool.fetchval("SELECT count(*) FROM schedule_ticks WHERE schedule = $1 "
                                     "AND outcome <> 'armed'", KEY) == 0


async def test_forbid_skips_the_armed_tick_at_its_instant_and_arms_the_next(
        aiohttp_client: Any, store: Store, dsn: str, tmp_path: Path) -> None:
    """concurrency forbid, decided at the instant: a run of the schedule is going when the
    armed tick comes, so the tick is skipped with the reason, its run (never started) removed,
    and the next instant armed."""
    await setup(aiohttp_client, dsn, tmp_path, store, concurrency="forbid")
    first = await armed_one(store)
    going = await store.pool.fetchval(
        "INSERT INTO agent_runs (agent, trigger, schedule, state, started_at) "
        "VALUES ('agent:local/counter', 'schedule', $1, 'running', now()) RETURNING id", KEY)
    due = await now_due(store, first)
    tick = await tick_of(store, due)
    assert tick["outcome"] == "skipped" and tick["run_id"] is None
    assert f"run {going} (running) of this schedule has not ended (concurrency: forbid)" in \
        tick["reason"]
    assert await store.pool.fetchval("SELECT count(*) FROM agent_runs WHERE id = $1",
                                     first["run_id"]) == 0
    await armed_one(store, other_than=first["run_id"])


async def test_an_armed_tick_claimed_too_late_is_decided_by_the_catch_up_rules(
        aiohttp_client: Any, store: Store, dsn: str, tmp_path: Path) -> None:
    """The controller was down past the armed instant and GRACE: the run worker hands the tick
    to the schedule, whose catchUp none records it missed (skipped, no run) and arms the
    next instant."""
    await setup(aiohttp_client, dsn, tmp_path, store, catch_up="none")
    first = await armed_one(store)
    # Down for two years: applied then, and the armed instant is this year's, long past.
    due = await now_due(store, first, down=True, at=await store.pool.fetchval(
        "SELECT date_trunc('year', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'"))
    tick = await tick_of(store, due)
    assert tick["outcome"] == "skipped" and tick["run_id"] is None
    assert "missed while the controller was down or behind" in tick["reason"]
    assert await store.pool.fetchval("SELECT count(*) FROM agent_runs WHERE id = $1",
                                     first["run_id"]) == 0
    following = await armed_one(store, other_than=first["run_id"])
    assert following["due_at"] > due
