"""The PostgreSQL work queue: one row per key, leases, backoff, dead-letter.

Coalescing: a key has one constant-size row; hints that arrive while it waits or runs are
folded into it. What is pending is recorded per delivery and key (`delivery_keys`); a claim
returns the pending deliveries it answers for, and only those are marked done.
Claiming is one `UPDATE ... WHERE key = (SELECT ... FOR UPDATE SKIP LOCKED)`; a lease carries a
token, and the end of a reconcile (`settle`, one call of p38_settle_v2) is fenced by it, so a
worker that lost its lease cannot overwrite the new holder's work. Expired leases are reclaimed
by `claim`. Three ways in: a webhook delivery (ingest), the controller's own `hint` (a
reconcile's follow-ups are hinted by its settle; watchers and the resync call `hint`), and an
operator's `enqueue_now`. A hint ends a `requeue` wait and revives a dead key, and leaves error
backoff alone; the operator's word cuts every wait. SQL lives in queries.sql and the
migrations; no driver import here.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

from controller.config import QueueSettings
from controller.reconcile.plan import Status, Transition
from controller.store import Store

WAKE_CHANNEL = "p38_queue"


class Kinds(NamedTuple):
    """Which key kinds a worker claims: only `only` (None: any), never `never`."""

    only: tuple[str, ...] | None = None
    never: tuple[str, ...] = ()

    def args(self) -> tuple[list[str] | None, list[str]]:
        return (None if self.only is None else list(self.only)), list(self.never)


@dataclass(frozen=True)
class Lease:
    """A claimed key: who holds it, which attempt this is, which deliveries it answers for."""

    key: str
    kind: str
    attempt: int
    deliveries: tuple[int, ...]
    token: uuid.UUID
    holder: str
    failing_for: float | None = None  # seconds since this key's current failures began
    policy_epoch: int | None = None  # the gate's policy epoch at the claim (migration 0025)


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


@dataclass(frozen=True)
class StatusEntry:
    """The object's status as the reconcile leaves it."""

    status: Status
    reason: str
    message: str = ""
    revision: str | None = None
    forget: bool = False
    source: str | None = None  # whose Policy governs the object


def backoff_delay(attempt: int, *, base: float, cap: float,
                  rng: Callable[[], float] = random.random) -> float:
    """Capped exponential backoff with "equal jitter": between half and all of base*2^(n-1)."""
    ceiling = min(cap, base * 2.0 ** min(max(0, attempt - 1), 60))
    return ceiling / 2 + rng() * ceiling / 2


class WorkQueue:
    def __init__(self, store: Store, settings: QueueSettings) -> None:
        self._store = store
        self.settings = settings
        self.outage = store.outage  # where the pollers of the queue report a lost database

    async def enqueue_now(self, keys: Sequence[str]) -> int:
        """An operator's word (`p38 replay`, `p38 approve`): due now whatever the key waits
        for; a dead key is revived with a fresh count."""
        return int(await self._store.fetchval("queue_enqueue", list(keys)))

    async def hint(self, keys: Sequence[str], *, event: str = "hint",
                   origin: Mapping[str, Any] | None = None) -> int:
        """The controller's own hint (a watcher): stored as a delivery of source `p38`; a key
        waiting (requeue) becomes due, a dead one is revived, backoff is left alone."""
        return int(await self._store.fetchval("queue_hint", list(keys), str(uuid.uuid4()),
                                              event, dict(origin or {"from": event})))

    async def resync(self, periods: Mapping[str, float]) -> list[str]:
        """Hint the keys of these kinds not reconciled for their period, dead ones included;
        one replica at a time. Returns the keys hinted."""
        kinds = sorted(periods)
        keys = await self._store.fetchval("queue_resync", kinds, [periods[k] for k in kinds],
                                          str(uuid.uuid4()))
        return list(keys or [])

    async def claim(self, holder: str, kinds: Kinds | None = None) -> Lease | None:
        """Lease the next due key (of `kinds` when given)."""
        lease, _ = await self.claim_or_wait(holder, kinds)
        return lease

    async def claim_or_wait(self, holder: str, kinds: Kinds | None = None
                            ) -> tuple[Lease | None, float | None]:
        """Lease the next due key (of `kinds`), or say in how many seconds the next one is
        due (None: none queued), in one statement."""
        token = uuid.uuid4()
        only, never = (kinds or Kinds()).args()
        row = await self._store.fetchrow("queue_claim", holder, token,
                                         self.settings.lease_seconds, only, never)
        if row is None:
            return None, None
        if row["key"] is None:
            due = row["next_due"]
            return None, None if due is None else max(0.0, float(due))
        return Lease(key=row["key"], kind=row["kind"], attempt=row["attempts"],
                     deliveries=tuple(row["deliveries"]), token=token, holder=holder,
                     failing_for=row["failing_for"], policy_epoch=row["policy_epoch"]), None

    async def renew(self, lease: Lease) -> bool:
        """Extend the lease; False when another worker holds the key now."""
        return await self._store.fetchrow("queue_renew", lease.key, lease.token,
                                          self.settings.lease_seconds) is not None

    async def seconds_until_due(self, kinds: Kinds | None = None) -> float | None:
        """Seconds until the next key (of `kinds`) is due (0: now); None when none is queued."""
        only, never = (kinds or Kinds()).args()
        value = await self._store.fetchval("queue_next_due", only, never)
        return None if value is None else max(0.0, float(value))

    async def release(self, lease: Lease) -> None:
        """Give the key back unfinished (shutdown); due again at once, not counted as a try."""
        await self._store.execute("queue_release", lease.key, lease.token)

    async def settle(self, lease: Lease, outcome: str, *, delay: float = 0.0,
                     error: str | None = None, transition: Transition | None = None,
                     enqueue: Sequence[str] = (), status: StatusEntry | None = None,
                     firm: bool = False, audit: AuditEntry) -> None:
        """End a reconcile in one atomic call (p38_settle_v2), fenced by the lease token.

        done: the lease's deliveries are processed; the row is removed, or kept for one more
        reconcile after `coalesce_seconds` when hints arrived meanwhile. requeue: the same,
        then look again after `delay` (a hint ends that wait, unless `firm`). retry: deliveries
        stay pending, due after `delay` (backoff). dead: the key stops and this attempt's
        deliveries are marked failed (a hint that arrived meanwhile revives it instead).
        `enqueue` (done and requeue only) is hinted in the same transaction;
        `status` replaces the object's status. Raises LeaseLost (another worker holds the key)
        or ConcurrentUpdate (the object's version moved since it was observed; nothing was
        written).
        """
        t = transition
        await self._store.fetchval(
            "queue_settle", lease.key, lease.token, outcome, list(lease.deliveries), delay,
            self.settings.coalesce_seconds, _storable(error),
            _storable({"to": t.to_state, "from": t.from_state, "data": dict(t.data),
                       "expected": t.expected_version, "reason": t.reason}) if t else None,
            list(enqueue),
            _storable({"status": status.status, "reason": status.reason,
                       "message": status.message, "revision": status.revision,
                       "source": status.source, "forget": status.forget}) if status else None,
            _storable({"reconcile_id": audit.reconcile_id, "worker": lease.holder,
                       "attempt": lease.attempt, "phases": audit.phases,
                       "decision": audit.decision, "reason": audit.reason,
                       "actions": audit.actions, "started": audit.started.isoformat(),
                       "duration_ms": audit.duration_ms}),
            firm)


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
