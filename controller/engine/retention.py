"""Retention: settled deliveries (with their payloads and keys), audit rows, the statuses of
objects nobody has reconciled, agent runs that ended, schedule ticks, and cached blobs nothing
has read (manifests, what a `/claude` task's search read), older than
P38_RETENTION_DAYS, are deleted a batch at a time, so a year of webhooks and minutely
schedules does not fill the disk.

Never deleted: pending deliveries (their keys are still to be reconciled), the status of a
queued or dead key, a run not ended, a schedule's newest tick (its cursor), agent versions and
the state agents hand over, actions (an action whose idempotency key succeeded must never run
again, however old), resource state, transitions, applied objects and manifest revisions
(small, and the history an operator audits). The cut-off is computed by PostgreSQL (`now()`),
so replicas agree whatever their clocks say. No I/O but through the store.
"""

from __future__ import annotations

from dataclasses import dataclass

from controller.store import Queries

BATCH = 1000  # rows per statement: short transactions, no long lock on a busy table


@dataclass(frozen=True, slots=True)
class Pruned:
    deliveries: int
    audit: int
    statuses: int = 0
    runs: int = 0
    ticks: int = 0
    blobs: int = 0

    def __bool__(self) -> bool:
        return any((self.deliveries, self.audit, self.statuses, self.runs, self.ticks,
                    self.blobs))


async def prune(store: Queries, *, days: int, batch: int = BATCH) -> Pruned:
    """Delete what is older than `days` days; returns how many rows of each went."""
    return Pruned(deliveries=await _drain(store, "prune_deliveries", days, batch),
                  audit=await _drain(store, "prune_audit", days, batch),
                  statuses=await _drain(store, "prune_statuses", days, batch),
                  runs=await _drain(store, "prune_runs", days, batch),
                  ticks=await _drain(store, "prune_ticks", days, batch),
                  blobs=await _drain(store, "prune_blobs", days, batch))


async def _drain(store: Queries, query: str, days: int, batch: int) -> int:
    total = 0
    while True:
        gone = int(await store.fetchval(query, days, batch))
        total += gone
        if gone < batch:  # the rest is younger, pending, or being pruned by another replica
            return total
