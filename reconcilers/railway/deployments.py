"""Railway deployments (`deployment:ID`): tracks Railway's DeploymentStatus from webhooks, and
hands each deployment to the `Service` that owns it.

A deployment's owner cannot be told from its key: `observe` looks up the applied Service
objects whose `spec.railway.service` is the deployment's service, and the plan enqueues their
keys (`service:<source>/<name>`), where the Service reconciler re-reads the deployment through
Railway's API before it acts. States are DeploymentStatus values, lower case.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import ClassVar

from controller.reconcile.context import ObserveContext, StoredPayload
from controller.reconcile.fsm import StateMachine
from controller.reconcile.payloads import dig
from controller.reconcile.reconciler import Event, Watch, object_key
from reconcilers.tracking import Observed, TrackingReconciler

IN_PROGRESS = ("queued", "waiting", "initializing", "building", "deploying", "needs_approval")
SETTLED = ("success", "failed", "crashed", "sleeping", "skipped", "removing", "removed")
_ALL = IN_PROGRESS + SETTLED
# Railway's newer webhook types end in the outcome: Deployment.failed, Deployment.crashed, ...
_TYPE_SUFFIX = {"deployed": "success", "succeeded": "success", "success": "success",
                "failed": "failed", "crashed": "crashed", "removed": "removed",
                "building": "building", "deploying": "deploying", "queued": "queued"}


def deployment_id(payload: object) -> str | None:
    for path in (("resource", "deployment", "id"), ("deployment", "id"), ("details", "id")):
        value = dig(payload, *path)
        if isinstance(value, str | int) and not isinstance(value, bool) and str(value):
            return str(value)
    return None


def keys(event: Event) -> Iterable[str]:
    found = deployment_id(event.payload)
    return (f"deployment:{found}",) if found else ()


class Deployments(TrackingReconciler):
    kind: ClassVar[str] = "deployment"
    owns: ClassVar[frozenset[str]] = frozenset({"service"})
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

    def watches(self) -> Sequence[Watch]:
        return (Watch("railway", None, keys),)

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

    async def owners_of(self, ctx: ObserveContext, key: str,
                        observed: Observed) -> tuple[str, ...]:
        """The applied Service objects that deploy this deployment's Railway service."""
        service = observed.data.get("service")
        if service is None:
            return ()
        return tuple(sorted(
            object_key("Service", o.source, o.name)
            for o in await ctx.applied_of_kind("Service")
            if dig(o.document, "spec", "railway", "service") == service))
