"""Shared shape of the reconcilers that track an object's observed state from its deliveries.

`observe` reads the object's persisted state and pages through its deliveries, newest first
and only of the `events` the subclass understands, until one says something about the object
(`read`, pure) or `scan_limit` deliveries were looked at. When what the delivery says cannot
follow the recorded state (a merged pull request reported open by a late delivery), the
object is re-read from its provider where the subclass can (`reread`), else the recorded state
is kept: an observation that skips a step is never a reason to dead-letter. `decide` (pure)
plans a transition when the observation differs from what is persisted.
Subclasses declare `kind`, `machine`, `events`, `read` and their watches. No I/O of its own.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from controller.reconcile.context import ObserveContext, StoredPayload
from controller.reconcile.fsm import StateMachine
from controller.reconcile.ids import key_name
from controller.reconcile.plan import Plan, Resource, Transition
from controller.reconcile.reconciler import Reconciler

if TYPE_CHECKING:
    from controller.reconcile.policy import Policy


@dataclass(frozen=True)
class Observed:
    state: str
    data: Mapping[str, Any]


@dataclass(frozen=True)
class TrackedSnapshot:
    key: str
    current: Resource | None
    recent: tuple[StoredPayload, ...]  # newest first
    reread: Observed | None = None  # the provider's answer, when the delivery was stale
    owners: tuple[str, ...] = ()  # keys enqueued when the object changes (`owners_of`)


class TrackingReconciler(Reconciler):
    machine: ClassVar[StateMachine]
    events: ClassVar[frozenset[str] | None] = None  # None: every event can say something
    first_page: ClassVar[int] = 1  # usually the newest delivery is the one that says something
    page_size: ClassVar[int] = 20
    scan_limit: ClassVar[int] = 200

    def read(self, item: StoredPayload) -> Observed | None:
        """What this delivery says about the object, or None when it says nothing."""
        raise NotImplementedError

    async def reread(self, ctx: ObserveContext, key: str,
                     item: StoredPayload) -> Observed | None:
        """The object as its provider has it now, when a delivery contradicts the recorded
        state; None when it cannot be read (no credentials, or no provider read)."""
        return None

    async def owners_of(self, ctx: ObserveContext, key: str,
                        observed: Observed) -> tuple[str, ...]:
        """Keys of the objects that own this one and must hear of its changes (a lookup:
        the key alone does not say); enqueued with a transition. Kinds in `owns`."""
        return ()

    async def observe(self, ctx: ObserveContext, key: str) -> TrackedSnapshot:
        # The recorded state and the first page of deliveries, in one round trip.
        current, first = await asyncio.gather(
            ctx.resource(self.kind, key_name(key)),
            ctx.recent_payloads(key, self.first_page, events=self.events))
        before: int | None = None
        scanned, size = 0, self.first_page
        while scanned < self.scan_limit:
            page = first if before is None else \
                await ctx.recent_payloads(key, size, events=self.events, before=before)
            for item in page:
                observed = self.read(item)
                if observed is None:
                    continue
                reread = None
                if current is not None and not self.machine.allows(current.state,
                                                                   observed.state):
                    reread = await self.reread(ctx, key, item)
                owners = await self.owners_of(ctx, key, reread or observed)
                return TrackedSnapshot(key=key, current=current, recent=(item,), reread=reread,
                                       owners=owners)
            scanned += len(page)
            if len(page) < size:
                break
            before, size = page[-1].delivery_id, self.page_size
        return TrackedSnapshot(key=key, current=current, recent=())

    def decide(self, snapshot: TrackedSnapshot, policy: Policy) -> Plan:
        observed, source = None, None
        for item in snapshot.recent:
            observed = self.read(item)
            if observed is not None:
                source = item
                break
        if observed is None or source is None:
            return Plan("NothingObserved", "no delivery says anything about this object yet")
        current = snapshot.current
        reason = (f"{source.event}{'.' + source.action if source.action else ''} "
                  f"(delivery {source.delivery_id})")
        if current is not None and not self.machine.allows(current.state, observed.state):
            if snapshot.reread is None:
                return Plan("StaleDelivery", f"{reason} says {observed.state}, which cannot "
                            f"follow {current.state}; kept {current.state} (it could not be "
                            "re-read)")
            observed = snapshot.reread
            reason = f"re-read from the provider after {reason} said something stale"
        data = {**(current.data if current else {}), **observed.data}
        if current is not None and current.state == observed.state and current.data == data:
            return Plan("UpToDate", f"{observed.state} as of {reason}")
        self.machine.check(current.state if current else None, observed.state)
        return Plan(
            "Transition",
            f"{current.state if current else '(new)'} -> {observed.state}: {reason}",
            transition=Transition(
                from_state=current.state if current else None,
                to_state=observed.state,
                data=data,
                expected_version=current.version if current else None,
                reason=reason,
            ),
            enqueue=snapshot.owners,
        )
