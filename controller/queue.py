"""The PostgreSQL work queue: one row per key, leases, backoff, dead-letter.

Coalescing: a key has one constant-size row; hints that arrive while it waits or runs are
folded into it. What is pending is recorded per delivery and key (`delivery_keys`); a claim
returns the pending deliveries it answers for, and only those are marked done.
Claiming is one `UPDATE ... WHERE key = (SELECT ... FOR UPDATE SKIP LOCKED)`; a lease carries a
token, and the end of a reconcile (`settle`, one call of the p38_settle function) is fenced by
it, so a worker that lost its lease cannot overwrite the new holder's work. Expired leases are
reclaimed by `claim`. SQL lives in queries.sql and the migrations; no driver import here.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from controller.config import QueueSettings
from controller.store import Store
from reconcilers.base import Transition

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


@dataclass(frozen=True)
class AuditEntry:
    """What the audit row records about one reconcile, besides the lease and outcome."""

    reconcile_id: str
    started: datetime
    duration_ms: float
    phases: dict[str, Any] = field(default_factory=dict)
    decision: str | None = None
    reason: str | None = None
    actions: list[dict[str, Any]] = field(default_factory=list)


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

    async def settle(self, lease: Lease, outcome: str, *, delay: float = 0.0,
                     error: str | None = None, transition: Transition | None = None,
                     audit: AuditEntry) -> None:
        """End a reconcile in one atomic call (p38_settle), fenced by the lease token.

        done: the lease's deliveries are processed; the row is removed, or kept for one more
        reconcile after `coalesce_seconds` when hints arrived meanwhile. requeue: the same,
        then look again after `delay`. retry: deliveries stay pending, due after `delay`.
        dead: the key stops; every delivery still waiting on it is marked failed.
        Raises LeaseLost (another worker holds the key) or ConcurrentUpdate (the object's
        version moved since it was observed; nothing was written).
        """
        t = transition
        await self._store.fetchval(
            "queue_settle", lease.key, lease.token, outcome, list(lease.deliveries), delay,
            self.settings.coalesce_seconds, _storable(error),
            t.to_state if t else None, t.from_state if t else None,
            _storable(dict(t.data)) if t else None, t.expected_version if t else None,
            _storable(t.reason) if t else None,
            uuid.UUID(audit.reconcile_id), lease.holder, lease.attempt, _storable(audit.phases),
            _storable(audit.decision), _storable(audit.reason), _storable(audit.actions),
            audit.started, audit.duration_ms)


def _storable(value: Any) -> Any:
    """PostgreSQL text and jsonb cannot hold NUL; payload-derived strings (a title, an error
    message) may. Replace it, or the key could never be settled."""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd") if "\x00" in value else value
    if isinstance(value, dict):
        return {_storable(k): _storable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_storable(v) for v in value]
    return value
