"""GitHub App installations (`installation:ID`): active / suspended / deleted."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import ClassVar

from controller.reconcile.context import StoredPayload
from controller.reconcile.fsm import StateMachine
from controller.reconcile.payloads import dig, installation_id
from controller.reconcile.reconciler import Event, Watch
from reconcilers.tracking import Observed, TrackingReconciler

_STATES = {"created": "active", "unsuspend": "active", "new_permissions_accepted": "active",
           "suspend": "suspended", "deleted": "deleted"}
INSTALLATION_EVENTS = frozenset({"installation", "installation_repositories"})


def keys(event: Event) -> Iterable[str]:
    found = installation_id(event.payload)
    return (f"installation:{found}",) if found is not None else ()


class Installations(TrackingReconciler):
    kind: ClassVar[str] = "installation"
    events: ClassVar[frozenset[str] | None] = INSTALLATION_EVENTS
    machine: ClassVar[StateMachine] = StateMachine.declare(
        "installation", initial=["active", "suspended"],
        table={"active": ["suspended", "deleted"], "suspended": ["active", "deleted"],
               "deleted": ["active"]},
    )

    def watches(self) -> Sequence[Watch]:
        return (Watch("github", INSTALLATION_EVENTS, keys),)

    def read(self, item: StoredPayload) -> Observed | None:
        account = dig(item.payload, "installation", "account", "login")
        data = {"account": account} if isinstance(account, str) else {}
        if item.event == "installation" and item.action in _STATES:
            return Observed(_STATES[item.action], data)
        if item.event == "installation_repositories":
            suspended = dig(item.payload, "installation", "suspended_at")
            return Observed("suspended" if suspended else "active", data)
        return None
