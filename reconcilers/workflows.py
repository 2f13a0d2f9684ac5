"""n8n workflows (`workflow:NAME`): healthy / failing / alerting from execution callbacks."""

from __future__ import annotations

from typing import ClassVar

from controller.fsm import StateMachine
from reconcilers.base import StoredPayload
from reconcilers.tracking import Observed, TrackingReconciler

_STATUS = {"success": "healthy", "succeeded": "healthy", "error": "failing",
           "failed": "failing", "crashed": "failing"}
_STATES = ("healthy", "failing", "alerting")


class Workflows(TrackingReconciler):
    kind: ClassVar[str] = "workflow"
    machine: ClassVar[StateMachine] = StateMachine.declare(
        "workflow", initial=_STATES, table={state: _STATES for state in _STATES})

    def read(self, item: StoredPayload) -> Observed | None:
        if item.event.startswith("alert"):
            return Observed("alerting", {"last_alert": item.payload.get("message")})
        status = item.payload.get("status")
        if isinstance(status, str) and status.lower() in _STATUS:
            return Observed(_STATUS[status.lower()],
                            {"last_execution": item.payload.get("execution")})
        return None
