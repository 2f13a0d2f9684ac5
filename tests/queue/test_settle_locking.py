"""Settling a key while an ingest batch for the same key is in flight neither deadlocks nor
orphans the batch's delivery (the redelivery-during-reconcile case)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import asyncpg

from controller.config import QueueSettings
from controller.engine.queue import AuditEntry, WorkQueue
from controller.store import Store
from controller.store.queries import queries
from tests.helpers import store_delivery, wait_until

INGEST = queries()["ingest_batch"]


async def test_settle_waits_for_an_ingest_in_flight_without_deadlock(store: Store,
                                                                     dsn: str) -> None:
    """A batch holds the key's shared lock; settle must wait for it before touching any row
    the batch may touch (here: a duplicate of the delivery being settled). Then the batch's
    new delivery keeps the key queued instead of being orphaned."""
    queue = WorkQueue(store, QueueSettings(P38_COALESCE_SECONDS=0))
    first = await store_delivery(store, "probe:race")
    lease = await queue.claim("w")
    assert lease is not None and lease.deliveries == (first,)
    guid = (await store.fetchrow("delivery_by_id", first))["guid"]

    ingest = await asyncpg.connect(dsn)
    try:
        tx = ingest.transaction()
        await tx.start()
        await ingest.execute("SELECT pg_advisory_xact_lock_shared(1338, hashtext('probe:race'))")
        settling = asyncio.create_task(queue.settle(lease, "done", audit=AuditEntry(
            reconcile_id=str(uuid.uuid4()), started=datetime.now(UTC), duration_ms=1.0)))

        async def settle_waits_on_the_key_lock() -> bool:
            return bool(await ingest.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                " AND wait_event_type = 'Lock' AND wait_event = 'advisory'"))

        await wait_until(settle_waits_on_the_key_lock, timeout=10, what="settle blocked")
        # The batch goes on: a duplicate of the delivery being settled, and a new one.
        await ingest.fetch(
            INGEST, [0, 1], ["test", "test"], ["", ""], [guid, str(uuid.uuid4())],
            ["probe", "probe"], [None, None], ["{}", "{}"], ["{}", "{}"],
            ["pending", "pending"], [0, 1], ["probe:race", "probe:race"])
        await tx.commit()
        await asyncio.wait_for(settling, timeout=10)  # a deadlock would have raised
    finally:
        await ingest.close()

    assert (await store.fetchrow("delivery_by_id", first))["status"] == "processed"
    [row] = await store.fetch("queue_list", None, None, 5)
    assert row["pending_deliveries"] == 1  # the in-flight delivery is not orphaned
    again = await queue.claim("w2")
    assert again is not None and len(again.deliveries) == 1


async def test_two_keys_of_one_delivery_settled_at_once_mark_it_processed(store: Store,
                                                                          dsn: str) -> None:
    """Each key's settle saw the other key still pending (uncommitted): the delivery stayed
    pending for ever. The second settle now waits for the first and then counts."""
    queue = WorkQueue(store, QueueSettings(P38_COALESCE_SECONDS=0))
    await store.pool.fetch(
        INGEST, [0], ["test"], [""], [str(uuid.uuid4())], ["push"], [None], ["{}"], ["{}"],
        ["pending"], [0, 0], ["probe:a", "probe:b"])
    leases = [await queue.claim("w1"), await queue.claim("w2")]
    assert all(lease is not None for lease in leases)
    lease_b = next(lease for lease in leases if lease is not None and lease.key == "probe:b")
    [delivery] = lease_b.deliveries

    first = await asyncpg.connect(dsn)
    try:
        tx = first.transaction()
        await tx.start()  # what settling probe:a does, not yet committed
        await first.execute("UPDATE delivery_keys SET status = 'done' WHERE key = 'probe:a'")
        await first.execute("SELECT p38_settle_deliveries($1::bigint[], NULL)", [delivery])
        settling = asyncio.create_task(queue.settle(lease_b, "done", audit=AuditEntry(
            reconcile_id=str(uuid.uuid4()), started=datetime.now(UTC), duration_ms=1.0)))

        async def second_waits() -> bool:
            return bool(await first.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                " AND wait_event_type = 'Lock'"))

        await wait_until(second_waits, timeout=10, what="the second settle waits")
        await tx.commit()
        await asyncio.wait_for(settling, timeout=10)
    finally:
        await first.close()
    assert (await store.fetchrow("delivery_by_id", delivery))["status"] == "processed"
