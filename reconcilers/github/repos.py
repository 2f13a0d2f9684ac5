"""Repositories (`repo:owner/name`): tracks the default branch head and archived / deleted.

Watches push, repository, create and delete deliveries. Pure apart from what `observe` reads.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import ClassVar

from controller.reconcile.context import StoredPayload
from controller.reconcile.fsm import StateMachine
from controller.reconcile.payloads import dig, repo_full_name
from controller.reconcile.reconciler import Event, Watch, repo_of
from reconcilers.tracking import Observed, TrackingReconciler

_REPOSITORY_STATES = {"archived": "archived", "unarchived": "active", "deleted": "deleted",
                      "created": "active"}
WATCHED = frozenset({"push", "repository", "create", "delete"})


def keys(event: Event) -> Iterable[str]:
    repo = repo_full_name(event.payload)
    return (f"repo:{repo}",) if repo else ()


class Repositories(TrackingReconciler):
    kind: ClassVar[str] = "repo"
    events: ClassVar[frozenset[str] | None] = frozenset({"push", "repository"})
    machine: ClassVar[StateMachine] = StateMachine.declare(
        "repo", initial=["active", "archived"],
        table={"active": ["archived", "deleted"], "archived": ["active", "deleted"],
               "deleted": ["active"]},
    )

    def watches(self) -> Sequence[Watch]:
        return (Watch("github", WATCHED, keys),)

    def source(self, key: str) -> str | None:
        return repo_of(key)

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
