"""Retention deletes settled deliveries (with payloads and keys), audit rows and statuses of
objects nobody reconciled for P38_RETENTION_DAYS, in batches; pending deliveries, queued keys'
statuses, recent rows and actions stay."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from controller.app import create_app
from controller.config import RetentionSettings
from controller.engine import retention
from controller.store import Store
from tests.helpers import env_for, make_settings, p38, store_delivery, wait_until


async def _age(store: Store, delivery_id: int, status: str, days: int) -> None:
    await store.pool.execute(
        "UPDATE deliveries SET status = $2, received_at = now() - make_interval(days => $3)"
        " WHERE id = $1", delivery_id, status, days)


async def _audit(store: Store, key: str, days_ago: int) -> None:
    await store.execute(
        "audit_record", uuid.uuid4(), key, key.split(":")[0], "w", [], 1, "done", {},
        "UpToDate", "", [], None, datetime.now(UTC) - timedelta(days=days_ago), 1.0)


async def _count(store: Store, table: str) -> int:
    return int(await store.pool.fetchval(f"SELECT count(*) FROM {table}"))


async def _ids(store: Store) -> set[int]:
    return {r["id"] for r in await store.pool.fetch("SELECT id FROM deliveries")}


async def test_old_settled_deliveries_and_audit_rows_go_in_batches(store: Store) -> None:
    """Old settled deliveries, audit rows and idle statuses go in batches; the rest stays."""
    old = {status: await store_delivery(store, "repo:octo/a")
           for status in ("processed", "failed", "ignored")}
    for status, delivery_id in old.items():
        await _age(store, delivery_id, status, 120)
    old_pending = await store_delivery(store, "repo:octo/b")
    await _age(store, old_pending, "pending", 120)
    recent = await store_delivery(store, "repo:octo/c")
    await _age(store, recent, "processed", 10)
    await _audit(store, "repo:octo/a", 200)
    await _audit(store, "repo:octo/a", 100)
    await _audit(store, "repo:octo/a", 1)
    await store.pool.execute(  # an action far older than the retention
        "INSERT INTO actions (idempotency_key, kind, status, created_at)"
        " VALUES ('old-action', 'github.check_run', 'succeeded', now() - interval '1 year')")
    for key, days in (("pull:octo/a#1", 200), ("pull:octo/a#2", 10), ("repo:octo/b", 200)):
        await store.pool.execute(  # repo:octo/b is queued (its pending delivery): kept
            "INSERT INTO object_status (key, kind, status, reason, reconciled_at)"
            " VALUES ($1, split_part($1, ':', 1), 'Ready', 'UpToDate',"
            "         now() - make_interval(days => $2))", key, days)

    pruned = await retention.prune(store, days=90, batch=2)  # two statements for deliveries

    assert pruned == retention.Pruned(deliveries=3, audit=2, statuses=1)
    assert {r["key"] for r in await store.pool.fetch("SELECT key FROM object_status")} == {
        "pull:octo/a#2", "repo:octo/b"}
    assert await _ids(store) == {old_pending, recent}
    kept = {r["delivery_id"] for r in await store.pool.fetch(
        "SELECT delivery_id FROM delivery_payloads UNION ALL SELECT delivery_id"
        " FROM delivery_keys")}
    assert kept == {old_pending, recent}  # payloads and keys went with their deliveries
    assert await _count(store, "audit") == 1
    assert await _count(store, "actions") == 1  # idempotency keys are never pruned
    assert await retention.prune(store, days=90) == retention.Pruned(0, 0, 0)


async def test_the_app_prunes_on_its_period(aiohttp_client, store: Store, dsn: str) -> None:  # type: ignore[no-untyped-def]
    """The running app prunes every P38_PRUNE_SECONDS."""
    delivery_id = await store_delivery(store, "repo:octo/a")
    await _age(store, delivery_id, "processed", 30)
    settings = make_settings(dsn)
    settings.retention = RetentionSettings(P38_RETENTION_DAYS=7, P38_PRUNE_SECONDS=0.05)
    await aiohttp_client(create_app(settings))

    async def gone() -> bool:
        return not await _ids(store)

    await wait_until(gone)


async def test_keep_forever_runs_no_pruner(aiohttp_client, store: Store, dsn: str) -> None:  # type: ignore[no-untyped-def]
    """P38_RETENTION_DAYS=0 starts no pruner."""
    delivery_id = await store_delivery(store, "repo:octo/a")
    await _age(store, delivery_id, "processed", 3000)
    settings = make_settings(dsn)
    settings.retention = RetentionSettings(P38_RETENTION_DAYS=0, P38_PRUNE_SECONDS=0.01)
    client = await aiohttp_client(create_app(settings))
    # The app is up and serving; with days = 0 no prune task exists to delete anything.
    assert (await client.get("/readyz")).status == 200
    assert not [t for t in asyncio.all_tasks() if t.get_name() == "prune"]
    assert await _ids(store) == {delivery_id}


@pytest.mark.parametrize("days", [1, 3, 6, -1])
def test_retention_shorter_than_a_week_is_refused(days: int) -> None:
    """A retention of 1 to 6 days is refused with the reason."""
    with pytest.raises(ValidationError, match="at least 7 days"):
        RetentionSettings(P38_RETENTION_DAYS=days)


async def test_p38_prune_command(store: Store, dsn: str) -> None:
    """`p38 prune` refuses a short retention and deletes exactly what is older."""
    old, recent = (await store_delivery(store, "repo:octo/a"),
                   await store_delivery(store, "repo:octo/a"))
    await _age(store, old, "processed", 40)
    await _age(store, recent, "processed", 20)
    refused = p38("prune", "--days", "2", env=env_for(dsn))
    assert refused.returncode == 2 and "at least 7 days" in refused.stderr
    assert await _ids(store) == {old, recent}
    done = p38("prune", "--days", "30", env=env_for(dsn))
    assert done.returncode == 0, done.stderr
    assert "deleted 1 settled deliveries, 0 audit rows, 0 statuses of objects, 0 agent runs, " \
        "0 schedule ticks and 0 cached blobs older than 30 days" in done.stdout
    assert await _ids(store) == {recent}


async def test_ended_runs_and_old_ticks_go_but_a_schedules_newest_tick_stays(
        store: Store) -> None:
    """Runs that ended long ago go, a queued one stays however old; old ticks go except each
    schedule's newest, which is where it counts the next instants from."""
    for state, days in (("finished", 100), ("finished", 2), ("queued", 100)):
        await store.pool.execute(
            "INSERT INTO agent_runs (agent, trigger, state, requested_at, ended_at)"
            " VALUES ('agent:local/a', 'manual', $1, now() - make_interval(days => $2),"
            "         CASE WHEN $1 = 'finished' THEN now() - make_interval(days => $2) END)",
            state, days)
    for schedule, days in (("s1", 300), ("s1", 200), ("s1", 1), ("s2", 300), ("s2", 200)):
        await store.pool.execute(
            "INSERT INTO schedule_ticks (schedule, due_at, outcome)"
            " VALUES ($1, now() - make_interval(days => $2), 'fired')", schedule, days)
    pruned = await retention.prune(store, days=90)
    assert (pruned.runs, pruned.ticks) == (1, 3)
    left = await store.pool.fetch("SELECT state FROM agent_runs ORDER BY id")
    assert [r["state"] for r in left] == ["finished", "queued"]
    ticks = await store.pool.fetch(
        "SELECT schedule, (now() - due_at) < interval '250 days' AS young FROM schedule_ticks "
        "ORDER BY schedule, due_at")
    assert [(r["schedule"], r["young"]) for r in ticks] == [("s1", True), ("s2", True)]


async def test_blobs_nothing_has_read_go_those_in_use_stay(store: Store) -> None:
    """Every blob a /claude task's search read was kept for ever: now one nothing has read for
    the retention days goes; reading one (a plan, a search) keeps it."""
    await store.execute("manifest_blobs_put", ["old", "used", "new"], ["a", "b", "c"])
    await store.pool.execute("UPDATE manifest_blobs SET used_at = now() - interval '120 days'"
                             " WHERE sha IN ('old', 'used')")
    assert [r["sha"] for r in await store.fetch("manifest_blobs_get", ["used"])] == ["used"]
    pruned = await retention.prune(store, days=90)
    assert pruned.blobs == 1
    left = {r["sha"] for r in await store.pool.fetch("SELECT sha FROM manifest_blobs")}
    assert left == {"used", "new"}
