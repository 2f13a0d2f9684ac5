"""Reconcilers of manifest objects (`agent:owner/repo/name`, `service:local/name`, ...): the
shared shape.

An object's key is enqueued by its source's reconcile whenever the object is applied, updated
or pruned. `observe` reads the object as applied from its source and whether the source still
desires it. Desired but not applied (dry-run, held, failing): Blocked, NotApplied. Neither:
forgotten (its status dropped, no more resync). Subclasses decide what an applied object means
(`decide_applied`): agents in `reconcilers/agents/`, policies in `policies.py`, services in
`reconcilers/railway/services.py`. No I/O of its own.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from controller.reconcile.context import AppliedObject, ObserveContext
from controller.reconcile.plan import Plan, Resource
from controller.reconcile.reconciler import Reconciler, object_ref

if TYPE_CHECKING:
    from controller.reconcile.policy import Policy


@dataclass(frozen=True)
class ObjectSnapshot:
    key: str
    source: str
    name: str
    applied: AppliedObject | None
    desired: str | None = None  # its content hash in the source's last valid revision
    source_state: Resource | None = None  # the source's record (installation, objects)

    @property
    def revision(self) -> str | None:
        """The source revision the object was applied at, else its content hash."""
        if self.applied is None:
            return None
        return self.applied.revision or self.applied.content_hash[:12]


class ManifestObject(Reconciler):
    """Nothing to re-read periodically: an object changes only through its source, which
    enqueues it (and any applied object that has no status yet)."""

    manifest_kind: ClassVar[str]  # Agent, Schedule, Service, Policy

    def source(self, key: str) -> str | None:
        return object_ref(key)[1]

    async def observe(self, ctx: ObserveContext, key: str) -> ObjectSnapshot:
        _, source, name = object_ref(key)
        applied, state = await asyncio.gather(  # (reads awaited together: one round trip)
            ctx.applied_object(source, self.manifest_kind, name),
            ctx.resource("manifests", source))
        objects = (state.data.get("objects") if state else None) or {}
        desired = objects.get(f"{self.manifest_kind}/{name}")
        return ObjectSnapshot(key, source, name, applied,
                              desired if isinstance(desired, str) else None, state)

    def decide(self, snapshot: ObjectSnapshot, policy: Policy) -> Plan:
        ident = f"{self.manifest_kind}/{snapshot.name}"
        if snapshot.applied is None and snapshot.desired is None:
            return Plan("Deleted", f"{ident} is no longer in {snapshot.source}", forget=True)
        if snapshot.applied is None:
            return Plan("NotApplied", f"{ident} is desired by {snapshot.source} but not "
                                      "applied (dry-run, held or failing: see its source)",
                        status="Blocked", revision=(snapshot.desired or "")[:12] or None)
        return self.decide_applied(snapshot, snapshot.applied, policy)

    def decide_applied(self, snapshot: ObjectSnapshot, applied: AppliedObject,
                       policy: Policy) -> Plan:
        raise NotImplementedError
