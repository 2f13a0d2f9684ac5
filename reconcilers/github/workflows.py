"""n8n workflows (`workflow:NAME`): healthy / failing / alerting from execution callbacks.

Watches every n8n delivery that names its workflow."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import ClassVar

from controller.reconcile.context import StoredPayload
from controller.reconcile.fsm import StateMachine
from controller.reconcile.reconciler import Event, Watch
from reconcilers.tracking import Observed, TrackingReconciler

_STATUS = {"success": "healthy", "succeeded": "healthy", "error": "failing",
           "failed": "failing", "crashed": "failing"}
_STATES = ("healthy", "failing", "alerting")


def keys(event: Event) -> Iterable[str]:
    workflow = event.payload.get("workflow")
    return (f"workflow:{workflow}",) if isinstance(workflow, str) and workflow else ()


class Workflows(TrackingReconciler):
    kind: ClassVar[str] = "workflow"
    machine: ClassVar[StateMachine] = StateMachine.declare(
        "workflow", initial=_STATES, table={state: _STATES for state in _STATES})

    def watches(self) -> Sequence[Watch]:
        return (Watch("n8n", None, keys),)

    def read(self, item: StoredPayload) -> Observed | None:
        if item.event.startswith("alert"):
            return Observed("alerting", {"last_alert": item.payload.get("message")})
        status = item.payload.get("status")
        if isinstance(status, str) and status.lower() in _STATUS:
            return Observed(_STATUS[status.lower()],
                            {"last_execution": item.payload.get("execution")})
        return None
