"""GitHub App installations (`installation:ID`): active / suspended / deleted."""

from __future__ import annotations

from typing import ClassVar

from controller.fsm import StateMachine
from controller.payloads import dig
from reconcilers.base import StoredPayload
from reconcilers.tracking import Observed, TrackingReconciler

_STATES = {"created": "active", "unsuspend": "active", "new_permissions_accepted": "active",
           "suspend": "suspended", "deleted": "deleted"}


class Installations(TrackingReconciler):
    kind: ClassVar[str] = "installation"
    events: ClassVar[frozenset[str] | None] = frozenset({"installation",
                                                         "installation_repositories"})
    machine: ClassVar[StateMachine] = StateMachine.declare(
        "installation", initial=["active", "suspended"],
        table={"active": ["suspended", "deleted"], "suspended": ["active", "deleted"],
               "deleted": ["active"]},
    )

    def read(self, item: StoredPayload) -> Observed | None:
        account = dig(item.payload, "installation", "account", "login")
        data = {"account": account} if isinstance(account, str) else {}
        if item.event == "installation" and item.action in _STATES:
            return Observed(_STATES[item.action], data)
        if item.event == "installation_repositories":
            suspended = dig(item.payload, "installation", "suspended_at")
            return Observed("suspended" if suspended else "active", data)
        return None
