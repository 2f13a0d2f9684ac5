"""Shared shape of the reconcilers that track an object's observed state from its deliveries.

`observe` reads the object's persisted state and pages through its deliveries, newest first
and only of the `events` the subclass understands, until one says something about the object
(`read`, pure) or `scan_limit` deliveries were looked at; `decide` (pure) plans a transition
when that observation differs from what is persisted. Subclasses declare `kind`, `machine`,
`events` and `read`. No I/O of its own.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from controller.fsm import StateMachine
from controller.ids import key_name
from reconcilers.base import ObserveContext, Plan, Resource, StoredPayload, Transition

if TYPE_CHECKING:
    from controller.policy import Policy


@dataclass(frozen=True)
class Observed:
    state: str
    data: Mapping[str, Any]


@dataclass(frozen=True)
class TrackedSnapshot:
    key: str
    current: Resource | None
    recent: tuple[StoredPayload, ...]  # newest first


class TrackingReconciler:
    kind: ClassVar[str]
    machine: ClassVar[StateMachine]
    events: ClassVar[frozenset[str] | None] = None  # None: every event can say something
    first_page: ClassVar[int] = 1  # usually the newest delivery is the one that says something
    page_size: ClassVar[int] = 20
    scan_limit: ClassVar[int] = 200

    def read(self, item: StoredPayload) -> Observed | None:
        """What this delivery says about the object, or None when it says nothing."""
        raise NotImplementedError

    async def observe(self, ctx: ObserveContext, key: str) -> TrackedSnapshot:
        current = await ctx.resource(self.kind, key_name(key))
        before: int | None = None
        scanned, size = 0, self.first_page
        while scanned < self.scan_limit:
            page = await ctx.recent_payloads(key, size, events=self.events, before=before)
            for item in page:
                if self.read(item) is not None:
                    return TrackedSnapshot(key=key, current=current, recent=(item,))
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
        data = {**(current.data if current else {}), **observed.data}
        if current is not None and current.state == observed.state and current.data == data:
            return Plan("UpToDate", f"{observed.state} as of delivery {source.delivery_id}")
        self.machine.check(current.state if current else None, observed.state)
        reason = (f"{source.event}{'.' + source.action if source.action else ''} "
                  f"(delivery {source.delivery_id})")
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
        )

