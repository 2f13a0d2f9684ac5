"""Repositories (`repo:owner/name`): tracks the default branch head and archived / deleted.

Watches push, repository, create and delete deliveries; a new head of the default branch is
handed to the repository's Services that follow it (`owners_of`). Pure apart from what
`observe` reads.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import ClassVar

from controller.reconcile.context import ObserveContext, StoredPayload
from controller.reconcile.fsm import StateMachine
from controller.reconcile.ids import key_name
from controller.reconcile.payloads import dig, repo_full_name
from controller.reconcile.reconciler import Event, Watch, object_key, repo_of
from reconcilers.tracking import Observed, TrackingReconciler

_REPOSITORY_STATES = {"archived": "archived", "unarchived": "active", "deleted": "deleted",
                      "created": "active"}
WATCHED = frozenset({"push", "repository", "create", "delete"})


def keys(event: Event) -> Iterable[str]:
    repo = repo_full_name(event.payload)
    return (f"repo:{repo}",) if repo else ()


class Repositories(TrackingReconciler):
    kind: ClassVar[str] = "repo"
    owns: ClassVar[frozenset[str]] = frozenset({"service"})
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

    async def owners_of(self, ctx: ObserveContext, key: str,
                        observed: Observed) -> tuple[str, ...]:
        """The repository's Services that follow its default branch: a push to it (a merge
        auto-merge made included) is theirs to deploy."""
        repo, branch = key_name(key), observed.data.get("default_branch")
        return tuple(sorted(
            object_key("Service", repo, o.name) for o in await ctx.applied_objects(repo)
            if o.kind == "Service" and (dig(o.document, "spec", "branch") or "main") == branch))
