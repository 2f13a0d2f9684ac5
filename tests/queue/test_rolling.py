"""Two releases on one database during a rolling deploy, and the edges of giving up: the
previous release's functions still work on the new schema, a key it revives starts a fresh
failure clock here, and a hint that arrives during a key's last attempt revives it."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from controller.config import QueueSettings
from controller.engine.queue import AuditEntry, WorkQueue
from controller.store import Store
from tests.helpers import store_delivery

OLD_INGEST = ("SELECT * FROM p38_ingest($1::int[], $2::text[], $3::text[], $4::text[],"
              " $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::int[],"
              " $11::text[])")
OLD_SETTLE = ("SELECT p38_settle($1, $2, $3, $4::bigint[], $5, $6, $7, $8, $9, $10::jsonb, $11,"
              " $12, $13, $14, $15, $16::jsonb, $17, $18, $19::jsonb, $20, $21)")


def entry() -> AuditEntry:
    return AuditEntry(reconcile_id=str(uuid.uuid4()), started=datetime.now(UTC), duration_ms=1.0)


async def old_ingest(store: Store, key: str) -> None:
    await store.pool.fetch(OLD_INGEST, [0], ["test"], [""], [str(uuid.uuid4())], ["probe"],
                           [None], ["{}"], ["{}"], ["pending"], [0], [key])


async def test_the_previous_releases_functions_work_on_the_new_schema(store: Store) -> None:
    """The old ingest and settle (migrations 0002, 0005), called as the old release calls
    them, still store, settle and dead-letter on this schema."""
    queue = WorkQueue(store, QueueSettings())
    await old_ingest(store, "probe:old")
    lease = await queue.claim("new-worker")
    assert lease is not None and len(lease.deliveries) == 1
    await store.pool.execute(
        OLD_SETTLE, lease.key, lease.token, "dead", list(lease.deliveries), 0.0, 0.25,
        "old release gave up", None, None, None, None, None, uuid.uuid4(), "old-worker", 1,
        {}, None, None, [], datetime.now(UTC), 1.0)
    [dead] = await store.fetch("queue_list", "dead", None, 5)
    assert (dead["key"], dead["last_error"]) == ("probe:old", "old release gave up")


async def test_a_key_revived_by_the_old_release_starts_a_fresh_failure_clock(
        store: Store) -> None:
    """The old ingest revives a dead key without touching the failure clock this release
    added; the claim restarts it, so the key is not given up at its first failure."""
    queue = WorkQueue(store, QueueSettings())
    await queue.enqueue_now(["probe:clock"])
    await store.pool.execute(
        "UPDATE work_queue SET state = 'dead', attempts = 9, wait_kind = 'requeue',"
        " failing_since = now() - interval '3 hours' WHERE key = 'probe:clock'")
    await old_ingest(store, "probe:clock")  # revives: attempts 0, failing_since untouched
    lease = await queue.claim("w")
    assert lease is not None and (lease.attempt, lease.failing_for) == (1, None)
    [row] = await store.fetch("queue_list", None, None, 5)
    assert (row["wait_kind"], row["failing_since"]) == (None, None)


async def test_a_hint_during_the_last_attempt_revives_the_key(store: Store) -> None:
    """The key gives up, but a delivery arrived while its last attempt ran: that delivery is
    a new hint, so the key is queued again with a fresh count; only the deliveries the
    failed attempt answered for are failed."""
    queue = WorkQueue(store, QueueSettings(P38_COALESCE_SECONDS=0))
    first = await store_delivery(store, "probe:last")
    lease = await queue.claim("w")
    assert lease is not None and lease.deliveries == (first,)
    second = await store_delivery(store, "probe:last")  # arrives mid-attempt
    await queue.settle(lease, "dead", error="gave up", audit=entry())
    [row] = await store.fetch("queue_list", None, None, 5)
    assert (row["state"], row["attempts"], row["pending_deliveries"]) == ("queued", 0, 1)
    assert (await store.fetchrow("delivery_by_id", first))["status"] == "failed"
    assert (await store.fetchrow("delivery_by_id", second))["status"] == "pending"
    again = await queue.claim("w")
    assert again is not None and again.deliveries == (second,) and again.attempt == 1
