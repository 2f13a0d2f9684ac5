"""Repositories (`repo:owner/name`): tracks the default branch head and archived / deleted.

Manifest loading on push arrives with the GitOps issue; this reconciler records the revision
the default branch was last observed at. Pure apart from what `observe` reads.
"""

from __future__ import annotations

from typing import ClassVar

from controller.fsm import StateMachine
from controller.payloads import dig
from reconcilers.base import StoredPayload
from reconcilers.tracking import Observed, TrackingReconciler

_REPOSITORY_STATES = {"archived": "archived", "unarchived": "active", "deleted": "deleted",
                      "created": "active"}


class Repositories(TrackingReconciler):
    kind: ClassVar[str] = "repo"
    events: ClassVar[frozenset[str] | None] = frozenset({"push", "repository"})
    machine: ClassVar[StateMachine] = StateMachine.declare(
        "repo", initial=["active", "archived"],
        table={"active": ["archived", "deleted"], "archived": ["active", "deleted"],
               "deleted": ["active"]},
    )

    def read(self, item: StoredPayload) -> Observed | None:
        payload = item.payload
        default_branch = dig(payload, "repository", "default_branch")
        if item.event == "push":
            if not isinstance(default_branch, str) or payload.get("ref") != \
                    f"refs/heads/{default_branch}":
                return None
            state = "archived" if dig(payload, "repository", "archived") else "active"
            return Observed(state, {"default_branch": default_branch,
                                    "head_sha": payload.get("after")})
        if item.event == "repository" and item.action in _REPOSITORY_STATES:
            data = {"default_branch": default_branch} if isinstance(default_branch, str) else {}
            return Observed(_REPOSITORY_STATES[item.action], data)
        return None
