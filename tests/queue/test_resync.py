"""The periodic resync hints the keys of every kind that has something to re-read when they
have not been reconciled for their period, and revives their dead keys with a fresh count."""

from __future__ import annotations

from controller.config import QueueSettings
from controller.engine.queue import WorkQueue
from controller.store import Store


async def _status(store: Store, key: str, *, age_seconds: float,
                  reason: str = "UpToDate") -> None:
    await store.pool.execute(
        "INSERT INTO object_status (key, kind, status, reason, reconciled_at)"
        " VALUES ($1, split_part($1, ':', 1), 'Ready', $3,"
        "         now() - make_interval(secs => $2))", key, age_seconds, reason)


async def test_idle_keys_of_resynced_kinds_are_hinted_once(store: Store) -> None:
    """Only kinds that resync, only keys idle for their period, only keys not queued."""
    queue = WorkQueue(store, QueueSettings())
    await _status(store, "manifests:octo/infra", age_seconds=600)
    await _status(store, "agent:octo/infra/tesla-watch", age_seconds=600)
    await _status(store, "manifests:local", age_seconds=10)  # reconciled a moment ago
    await _status(store, "pull:octo/infra#3", age_seconds=600)  # its kind has nothing to re-read
    periods = {"manifests": 300.0, "agent": 300.0}
    assert await queue.resync(periods) == ["agent:octo/infra/tesla-watch",
                                           "manifests:octo/infra"]
    assert await queue.resync(periods) == []  # already queued: left alone
    queued = [r["key"] for r in await store.fetch("queue_list", None, None, 10)]
    assert queued == ["agent:octo/infra/tesla-watch", "manifests:octo/infra"]
    [hint] = await store.fetch("deliveries_list", "p38", "resync", None, None, 5)
    assert hint["status"] == "pending"  # the resync is a delivery of the controller's own


async def test_dead_keys_are_revived_with_a_fresh_count(store: Store) -> None:
    """A key that gave up while a provider was down tries again at the next resync; one that
    stalled on a terminal error waits for a person."""
    queue = WorkQueue(store, QueueSettings())
    await _status(store, "manifests:octo/infra", age_seconds=600, reason="GaveUp")
    await _status(store, "manifests:octo/gone", age_seconds=600, reason="GitHubError")
    await queue.enqueue_now(["manifests:octo/gone"])
    await store.pool.execute(
        "UPDATE work_queue SET state = 'dead' WHERE key = 'manifests:octo/gone'")
    await queue.enqueue_now(["manifests:octo/infra"])
    await store.pool.execute(
        "UPDATE work_queue SET state = 'dead', attempts = 17,"
        " failing_since = now() - interval '2 hours' WHERE key = 'manifests:octo/infra'")
    assert await queue.resync({"manifests": 300.0}) == ["manifests:octo/infra"]
    rows = {r["key"]: r for r in await store.fetch("queue_list", None, None, 5)}
    row = rows["manifests:octo/infra"]
    assert (row["state"], row["attempts"], row["failing_since"]) == ("queued", 0, None)
    assert rows["manifests:octo/gone"]["state"] == "dead"
    lease = await queue.claim("w")
    assert lease is not None and lease.attempt == 1 and lease.failing_for is None
