"""The PostgreSQL work queue: one row per key, leases, backoff, dead-letter.

Coalescing: a key has one constant-size row; hints that arrive while it waits or runs are
folded into it. What is pending is recorded per delivery and key (`delivery_keys`); a claim
returns the pending deliveries it answers for, and only those are marked done.
Claiming is one `UPDATE ... WHERE key = (SELECT ... FOR UPDATE SKIP LOCKED)`; a lease carries a
token, and every end-of-reconcile write is fenced by it, so a worker that lost its lease cannot
overwrite the new holder's work. Expired leases are reclaimed by `claim`. SQL lives in
queries.sql; this module never imports the driver.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from controller.config import QueueSettings
from controller.errors import LeaseLost
from controller.store import Queries, Store

WAKE_CHANNEL = "p38_queue"


@dataclass(frozen=True)
class Lease:
    """A claimed key: who holds it, which attempt this is, which deliveries it answers for."""

    key: str
    kind: str
    attempt: int
    deliveries: tuple[int, ...]
    token: uuid.UUID
    holder: str


def backoff_delay(attempt: int, *, base: float, cap: float,
                  rng: Callable[[], float] = random.random) -> float:
    """Capped exponential backoff with "equal jitter": between half and all of base*2^(n-1)."""
    ceiling = min(cap, base * 2.0 ** max(0, attempt - 1))
    return ceiling / 2 + rng() * ceiling / 2


class WorkQueue:
    def __init__(self, store: Store, settings: QueueSettings) -> None:
        self._store = store
        self.settings = settings

    async def enqueue(self, keys: Sequence[str]) -> int:
        """Queue keys now (coalescing with their rows), without a delivery: resync, replay."""
        return int(await self._store.fetchval("queue_enqueue", list(keys)))

    async def claim(self, holder: str) -> Lease | None:
        token = uuid.uuid4()
        row = await self._store.fetchrow("queue_claim", holder, token,
                                         self.settings.lease_seconds)
        if row is None:
            return None
        return Lease(key=row["key"], kind=row["kind"], attempt=row["attempts"],
                     deliveries=tuple(row["deliveries"]), token=token, holder=holder)

    async def renew(self, lease: Lease) -> bool:
        """Extend the lease; False when another worker holds the key now."""
        return await self._store.fetchrow("queue_renew", lease.key, lease.token,
                                          self.settings.lease_seconds) is not None

    async def seconds_until_due(self) -> float | None:
        value = await self._store.fetchval("queue_next_due")
        return None if value is None else float(value)

    async def release(self, lease: Lease) -> None:
        """Give the key back unfinished (shutdown); due again at once, not counted as a try."""
        await self._store.execute("queue_release", lease.key, lease.token)

    def backoff(self, attempt: int) -> float:
        return backoff_delay(attempt, base=self.settings.backoff_base_seconds,
                             cap=self.settings.backoff_cap_seconds)

    # The end of a reconcile. Each runs inside the caller's transaction, fenced by the token.

    async def _lock(self, tx: Queries, lease: Lease) -> bool:
        row = await tx.fetchrow("queue_lock", lease.key, lease.token)
        if row is None:
            raise LeaseLost(f"{lease.key}: lease {lease.token} is no longer held by {lease.holder}")
        return bool(row["dirty"])

    async def _settle_done(self, tx: Queries, lease: Lease) -> bool:
        """Mark this lease's deliveries done; True when others for the key are still pending."""
        if lease.deliveries:
            await tx.execute("delivery_keys_settle", lease.key, list(lease.deliveries), "done")
            await tx.execute("deliveries_settle", list(lease.deliveries), None)
        return bool(await tx.fetchval("queue_has_pending", lease.key))

    async def complete(self, tx: Queries, lease: Lease) -> None:
        """Done: drop the row, or keep it queued when new hints arrived meanwhile."""
        dirty = await self._lock(tx, lease)
        if await self._settle_done(tx, lease) or dirty:
            await tx.execute("queue_reschedule", lease.key, lease.token,
                             self.settings.coalesce_seconds)
        else:
            await tx.execute("queue_delete", lease.key, lease.token)

    async def requeue_after(self, tx: Queries, lease: Lease, seconds: float) -> None:
        """Done for now; look again after `seconds` (a new hint brings it forward)."""
        dirty = await self._lock(tx, lease)
        more = await self._settle_done(tx, lease) or dirty
        await tx.execute("queue_reschedule", lease.key, lease.token,
                         min(seconds, self.settings.coalesce_seconds) if more else seconds)

    async def retry(self, tx: Queries, lease: Lease, *, delay: float, error: str) -> None:
        """Failed: the deliveries stay pending; the key waits out its backoff."""
        await self._lock(tx, lease)
        await tx.execute("queue_retry", lease.key, lease.token, delay, error)

    async def dead_letter(self, tx: Queries, lease: Lease, *, error: str) -> None:
        """Stop trying; every delivery waiting on this key is marked failed (redeliverable)."""
        await self._lock(tx, lease)
        await tx.execute("queue_dead", lease.key, lease.token, error)
        failed = [r["delivery_id"] for r in await tx.fetch("delivery_keys_fail_all", lease.key)]
        if failed:
            await tx.execute("deliveries_settle", failed, error)
