"""Policies (`policy:owner/repo/name`, `policy:local/name`): the Policy manifest of a source.

The gate reads the applied Policy of a key's source at every reconcile (controller/engine/
policies.py); this reconciler gives the object its status: what the policy says now, in one
line people can read, or Stalled when the stored document no longer validates. No I/O of its
own.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from pydantic import ValidationError

from controller.manifests.models import PolicySpec
from controller.reconcile.context import AppliedObject
from controller.reconcile.plan import Plan
from reconcilers.objects import ManifestObject, ObjectSnapshot

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


class PolicyObjects(ManifestObject):
    kind: ClassVar[str] = "policy"
    manifest_kind: ClassVar[str] = "Policy"

    def decide_applied(self, snapshot: ObjectSnapshot, applied: AppliedObject,
                       policy: Policy) -> Plan:
        try:
            spec = PolicySpec.model_validate(applied.document.get("spec") or {})
        except ValidationError as exc:
            return Plan("Unreadable", f"the applied document does not validate: "
                                      f"{str(exc).splitlines()[0]}", status="Stalled",
                        revision=snapshot.revision)
        return Plan("KillswitchOn" if spec.killswitch else "Active", summary(spec),
                    revision=snapshot.revision)
