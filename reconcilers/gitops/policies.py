"""Policies (`policy:owner/repo/name`, `policy:local/name`): the Policy manifest of a source.

The gate reads the applied Policy of a key's source at every reconcile (controller/engine/
policies.py); this reconciler gives the object its status: what the policy says now, in one
line people can read, or Stalled when the stored document no longer validates. When it runs
(the Policy was applied or changed, or the resync) it enqueues the source's objects whose
actions are held, so lifting the killswitch or an approval requirement releases them at once
instead of at their next look, and, when the Policy turns auto-merge on in a repository, the
sweep of its open pull requests (`automerge:owner/repo`). No I/O of its own.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, ClassVar

from pydantic import ValidationError

from controller.manifests.models import PolicySpec
from controller.reconcile.context import AppliedObject, ObjectStatus, ObserveContext
from controller.reconcile.plan import Plan
from controller.reconcile.reconciler import object_ref
from reconcilers.gitops.objects import ManifestObject, ObjectSnapshot

if TYPE_CHECKING:
    from controller.reconcile.policy import Policy


def summary(spec: PolicySpec) -> str:
    approvals = ", ".join(spec.approval_required) or "nothing"
    merge = spec.auto_merge
    merging = (f"auto-merge {', '.join(merge.branches)} ({merge.method})" if merge.enabled
               else "auto-merge off")
    commands = ", ".join([*spec.commands.associations, *spec.commands.users])
    return (f"killswitch {'ON: every action is held' if spec.killswitch else 'off'}; "
            f"approval required for {approvals}; {merging}; /claude for {commands}")


@dataclass(frozen=True)
class PolicySnapshot(ObjectSnapshot):
    held: tuple[ObjectStatus, ...] = ()  # the source's objects whose actions are held


def released(held: tuple[ObjectStatus, ...], policy: Policy) -> tuple[str, ...]:
    """The held objects this policy may let go: killswitch holds once it is off (in the
    manifest and the environment), approval holds always (the list may have changed)."""
    return tuple(s.key for s in held if s.reason == "AwaitingApproval"
                 or (s.reason == "Killswitch" and not policy.killswitch))


class PolicyObjects(ManifestObject):
    kind: ClassVar[str] = "policy"
    manifest_kind: ClassVar[str] = "Policy"
    owns: ClassVar[frozenset[str]] = frozenset({"*"})  # a Policy governs every kind

    async def observe(self, ctx: ObserveContext, key: str) -> PolicySnapshot:
        base, held = await asyncio.gather(super().observe(ctx, key),
                                          ctx.held(object_ref(key)[1]))
        return PolicySnapshot(base.key, base.source, base.name, base.applied, base.desired,
                              held=tuple(held))

    def decide(self, snapshot: ObjectSnapshot, policy: Policy) -> Plan:
        plan = super().decide(snapshot, policy)
        if plan.forget and isinstance(snapshot, PolicySnapshot):  # deleted: nothing holds
            return replace(plan, enqueue=released(snapshot.held, policy))
        return plan

    def decide_applied(self, snapshot: ObjectSnapshot, applied: AppliedObject,
                       policy: Policy) -> Plan:
        try:
            spec = PolicySpec.model_validate(applied.document.get("spec") or {})
        except ValidationError as exc:
            return Plan("Unreadable", f"the applied document does not validate: "
                                      f"{str(exc).splitlines()[0]}", status="Stalled",
                        revision=snapshot.revision)
        held = snapshot.held if isinstance(snapshot, PolicySnapshot) else ()
        sweep = (f"automerge:{snapshot.source}",) \
            if spec.auto_merge.enabled and snapshot.source != "local" else ()
        return Plan("KillswitchOn" if spec.killswitch else "Active", summary(spec),
                    revision=snapshot.revision, enqueue=released(held, policy) + sweep)
