"""Railway deployments (`deployment:ID`): tracks Railway's DeploymentStatus from webhooks.

Railway webhooks are hints; the Service reconciler (its own issue) re-reads the deployment
through the GraphQL API before rolling back. States are DeploymentStatus values, lower case.
"""

from __future__ import annotations

from typing import ClassVar

from controller.fsm import StateMachine
from controller.payloads import dig
from reconcilers.base import StoredPayload
from reconcilers.tracking import Observed, TrackingReconciler

IN_PROGRESS = ("queued", "waiting", "initializing", "building", "deploying", "needs_approval")
SETTLED = ("success", "failed", "crashed", "sleeping", "skipped", "removing", "removed")
_ALL = IN_PROGRESS + SETTLED
# Railway's newer webhook types end in the outcome: Deployment.failed, Deployment.crashed, ...
_TYPE_SUFFIX = {"deployed": "success", "succeeded": "success", "success": "success",
                "failed": "failed", "crashed": "crashed", "removed": "removed",
                "building": "building", "deploying": "deploying", "queued": "queued"}


class Deployments(TrackingReconciler):
    kind: ClassVar[str] = "deployment"
    machine: ClassVar[StateMachine] = StateMachine.declare(
        "deployment", initial=_ALL,
        table={
            **{state: _ALL for state in IN_PROGRESS},
            "success": ("sleeping", "crashed", "removing", "removed", "failed"),
            "sleeping": ("success", "deploying", "crashed", "removing", "removed"),
            "crashed": ("deploying", "success", "removing", "removed"),
            "failed": ("removing", "removed"),
            "skipped": ("removed",),
            "removing": ("removed",),
        },
    )

    def read(self, item: StoredPayload) -> Observed | None:
        payload = item.payload
        status = dig(payload, "details", "status") or payload.get("status")
        state = status.lower() if isinstance(status, str) else None
        if state not in _ALL:
            suffix = str(payload.get("type", "")).rpartition(".")[2].lower()
            state = _TYPE_SUFFIX.get(suffix)
        if state is None:
            return None
        data = {
            "service": dig(payload, "resource", "service", "id") or dig(payload, "service", "id"),
            "environment": (dig(payload, "resource", "environment", "id")
                            or dig(payload, "environment", "id")),
            "commit": dig(payload, "details", "commitHash"),
        }
        return Observed(state, {k: v for k, v in data.items() if v is not None})
