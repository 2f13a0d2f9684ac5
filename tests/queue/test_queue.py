"""The work queue: coalescing, exclusive leases, reclaim, fencing, backoff, dead-letter."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import pytest

from controller.config import QueueSettings
from controller.engine.queue import AuditEntry, WorkQueue, backoff_delay
from controller.reconcile.errors import ConcurrentUpdate, LeaseLost
from controller.store import Store, statements
from tests.helpers import store_delivery


def entry() -> AuditEntry:
    return AuditEntry(reconcile_id=str(uuid.uuid4()), started=datetime.now(UTC), duration_ms=1.0)


def queue_for(store: Store, **overrides: float) -> WorkQueue:
    values = {"P38_LEASE_SECONDS": 30.0, "P38_MAX_ATTEMPTS": 3, **overrides}
    return WorkQueue(store, QueueSettings(**values))


async def test_hints_for_one_key_coalesce(store: Store) -> None:
    """Three deliveries for one key make one queue row; its claim answers for all three."""
    queue = queue_for(store)
    ids = [await store_delivery(store, "probe:a") for _ in range(3)]
    rows = await store.fetch("queue_list", None, None, 10)
    assert [(r["key"], r["pending_deliveries"]) for r in rows] == [("probe:a", 3)]
    lease = await queue.claim("w1")
    assert lease is not None and lease.deliveries == tuple(ids) and lease.attempt == 1
    assert await queue.claim("w2") is None


async def test_concurrent_claims_never_share_a_key(dsn: str, store: Store) -> None:
    """Many claimers on separate pools (as separate processes would be) get distinct keys."""
    await queue_for(store).enqueue_now([f"probe:{n}" for n in range(5)])
    stores = [await Store.connect(dsn, min_size=1, max_size=2) for _ in range(4)]
    try:
        queues = [queue_for(s) for s in stores]
        leases = await asyncio.gather(*[q.claim(f"w{i}") for i, q in enumerate(queues * 5)])
    finally:
        for s in stores:
            await s.close()
    claimed = [lease.key for lease in leases if lease is not None]
    assert sorted(claimed) == [f"probe:{n}" for n in range(5)]


async def test_expired_lease_is_reclaimed_with_its_deliveries(store: Store) -> None:
    """A crashed holder's key is claimed again once its lease expires, with its deliveries."""
    queue = queue_for(store, P38_LEASE_SECONDS=0.3)
    first = await store_delivery(store, "probe:crash")
    crashed = await queue.claim("crashed-worker")
    assert crashed is not None and crashed.deliveries == (first,)
    assert await queue.claim("other") is None  # held
    second = await store_delivery(store, "probe:crash")  # a hint while it was held
    reclaimed = await _claim_eventually(queue, "other")
    assert reclaimed.key == "probe:crash"
    assert reclaimed.deliveries == (first, second)
    assert reclaimed.attempt == 2

    # The crashed holder comes back: every write it tries is fenced off.
    assert not await queue.renew(crashed)
    with pytest.raises(LeaseLost):
        await queue.settle(crashed, "done", audit=entry())
    await queue.settle(reclaimed, "done", audit=entry())
    assert await store.fetch("queue_list", None, None, 10) == []
    assert (await store.fetchrow("delivery_by_id", second))["status"] == "processed"


async def test_hint_during_a_reconcile_runs_it_again(store: Store) -> None:
    """A hint that arrives while the key is leased keeps the key queued after completion,
    due after the coalescing delay."""
    queue = queue_for(store)
    first = await store_delivery(store, "probe:busy")
    lease = await queue.claim("w1")
    assert lease is not None
    second = await store_delivery(store, "probe:busy")
    assert await queue.claim("w2") is None
    await queue.settle(lease, "done", audit=entry())
    assert (await store.fetchrow("delivery_by_id", first))["status"] == "processed"
    assert (await store.fetchrow("delivery_by_id", second))["status"] == "pending"
    assert await queue.claim("w2") is None  # debounced: bursts coalesce
    await store_delivery(store, "probe:busy")  # a hint does not cut the debounce short
    assert await queue.claim("w2") is None
    again = await _claim_eventually(queue, "w2")
    assert len(again.deliveries) == 2 and again.deliveries[0] == second and again.attempt == 1

    # A hint with no delivery (resync, replay) while leased also brings the key back.
    await queue.enqueue_now(["probe:busy"])
    await queue.settle(again, "done", audit=entry())
    third = await _claim_eventually(queue, "w3")
    assert third.deliveries == ()


def test_backoff_is_exponential_jittered_and_capped() -> None:
    """Delays double per attempt, stay within [half, all] of the ceiling, and stop at the cap."""
    for attempt, ceiling in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (10, 30.0)]:
        low = backoff_delay(attempt, base=1.0, cap=30.0, rng=lambda: 0.0)
        high = backoff_delay(attempt, base=1.0, cap=30.0, rng=lambda: 1.0)
        assert (low, high) == (ceiling / 2, ceiling)


async def test_retry_waits_out_backoff_then_dead_letters(store: Store) -> None:
    """Failures push the key back by its backoff; after the budget it is dead with its error."""
    queue = queue_for(store, P38_BACKOFF_BASE_SECONDS=0.2, P38_BACKOFF_CAP_SECONDS=0.2,
                      P38_MAX_ATTEMPTS=2)
    delivery = await store_delivery(store, "probe:bad")
    first = await queue.claim("w")
    assert first is not None
    await queue.settle(first, "retry", delay=0.2, error="boom 1", audit=entry())
    assert await queue.claim("w") is None  # backing off
    row = (await store.fetch("queue_list", None, None, 1))[0]
    assert row["last_error"] == "boom 1" and row["attempts"] == 1
    second = await _claim_eventually(queue, "w")
    assert second.attempt == 2
    await queue.settle(second, "dead", error="boom 2", audit=entry())
    dead = (await store.fetch("queue_list", "dead", None, 1))[0]
    assert (dead["key"], dead["last_error"]) == ("probe:bad", "boom 2")
    assert await queue.claim("w") is None
    failed = await store.fetchrow("delivery_by_id", delivery)
    assert (failed["status"], failed["error"]) == ("failed", "boom 2")

    await queue.hint(["probe:bad"])  # a new hint revives a dead key
    revived = await queue.claim("w")
    assert revived is not None and revived.attempt == 1


async def test_release_gives_the_key_back_unpunished(store: Store) -> None:
    """A key released at shutdown is due at once, with its deliveries and attempt count intact."""
    queue = queue_for(store)
    delivery = await store_delivery(store, "probe:r")
    lease = await queue.claim("w")
    assert lease is not None
    await queue.release(lease)
    again = await queue.claim("w")
    assert again is not None and again.deliveries == (delivery,) and again.attempt == 1


async def _claim_eventually(queue: WorkQueue, holder: str):  # type: ignore[no-untyped-def]
    from tests.helpers import wait_until

    return await wait_until(lambda: queue.claim(holder), what="a claimable key")


async def test_settle_records_transition_and_audit_atomically(store: Store) -> None:
    """settle writes the transition and the audit row with the queue change, or nothing."""
    from controller.reconcile.plan import Transition

    queue = queue_for(store)
    await store_delivery(store, "probe:t")
    lease = await queue.claim("w")
    assert lease is not None
    stale = Transition(None, "seen", {"n": 1}, None, "first")
    await store.fetchval("resource_insert", "probe", "t", "seen", {})  # someone got there first
    with pytest.raises(ConcurrentUpdate):
        await queue.settle(lease, "done", transition=stale, audit=entry())
    assert await store.fetch("audit_list", None, None, None, 10) == []
    assert (await store.fetch("queue_list", None, None, 1))[0]["lease_holder"] == "w"

    fresh = Transition("seen", "seen", {"n": 2}, 1, "second")
    await queue.settle(lease, "done", transition=fresh, audit=entry())
    row = await store.fetchrow("resource_get", "probe", "t")
    assert (row["version"], row["data"]) == (2, {"n": 2})
    [audited] = await store.fetch("audit_list", None, None, None, 10)
    assert (audited["key"], audited["outcome"], list(audited["deliveries"])) == (
        "probe:t", "done", list(lease.deliveries))


async def test_an_empty_queue_is_not_due(store: Store) -> None:
    """Idle workers sleep their poll interval: an empty queue has no due time (it once said
    "now", and idle workers polled every 10 ms)."""
    queue = queue_for(store)
    assert await queue.seconds_until_due() is None
    await queue.enqueue_now(["probe:later"])
    await store.pool.execute("UPDATE work_queue SET not_before = now() + interval '30 seconds'")
    due = await queue.seconds_until_due()
    assert due is not None and 25 < due <= 30


async def test_a_claim_that_finds_nothing_says_when_the_next_key_is_due(store: Store) -> None:
    """One statement for an idle worker: no lease, and how long until the next key is due
    (None when nothing is queued), as `seconds_until_due` says."""
    queue = queue_for(store)
    with statements.counting() as sent:
        assert await queue.claim_or_wait("w") == (None, None)
    assert dict(sent) == {"queue_claim": 1}
    await queue.enqueue_now(["probe:later"])
    await store.pool.execute("UPDATE work_queue SET not_before = now() + interval '30 seconds'")
    lease, due = await queue.claim_or_wait("w")
    assert lease is None and due is not None and 25 < due <= 30
    await store.pool.execute("UPDATE work_queue SET not_before = now()")
    lease, due = await queue.claim_or_wait("w")
    assert lease is not None and lease.key == "probe:later" and due is None
