"""The manifest sources reconciler (`manifests:local`, `manifests:owner/repo`): make what is
applied match the manifests at the source's head.

`observe` reads the source's files through the context (GitHub: the default branch head, only
blobs never seen before; local: the folder) unless the manifests folder's tree is the one
already fully applied, then parses them (pure). Watches pushes to the default branch that
touch the manifests folder and repositories added to an installation; resynced periodically
(GitHub does not redeliver lost hooks).

Reads and routing only: every choice is made by `decide` in `manifest_decide.py`, which
`p38 plan` calls too; nothing here plans an action or changes a state.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from controller.reconcile.context import ObserveContext, StoredPayload
from controller.reconcile.errors import NotConfigured
from controller.reconcile.fsm import StateMachine
from controller.reconcile.ids import key_name
from controller.reconcile.payloads import dig, repo_full_name
from controller.reconcile.plan import Plan
from controller.reconcile.reads import GITHUB, LOCAL, ManifestReads, Where
from controller.reconcile.reconciler import Event, Reconciler, Watch, object_key
from reconcilers.gitops.diff import ObjectState
from reconcilers.gitops.manifest_decide import (
    LOCAL_SOURCE,
    MACHINE,
    OBJECT_KINDS,
    ManifestSnapshot,
    decide,
    object_hashes,
    parse,
)

if TYPE_CHECKING:
    from controller.reconcile.policy import Policy


def touches_manifests(payload: Mapping[str, Any], folder: str) -> bool:
    """Whether a push may have changed the manifests folder. When the payload cannot say (no
    commit list, a forced push), assume it did: a reconcile that finds the folder's tree
    unchanged costs two reads and writes nothing."""
    if payload.get("forced") or payload.get("created"):
        return True
    commits = payload.get("commits")
    if not isinstance(commits, list) or not commits:
        return payload.get("before") != payload.get("after")
    for commit in commits:
        if not isinstance(commit, dict):
            return True
        for field in ("added", "modified", "removed"):
            paths = commit.get(field)
            if not isinstance(paths, list):
                return True
            if any(isinstance(p, str) and p.startswith(folder) for p in paths):
                return True
    return False


def _pushed_to_default_branch(payload: Mapping[str, Any]) -> bool:
    default = dig(payload, "repository", "default_branch")
    return (isinstance(default, str) and payload.get("ref") == f"refs/heads/{default}"
            and not payload.get("deleted"))


def _added_repositories(event: Event) -> Iterable[str]:
    if event.action not in ("created", "added", "new_permissions_accepted"):
        return
    for field in ("repositories", "repositories_added"):
        repos = event.payload.get(field)
        for repo in repos if isinstance(repos, list) else ():
            name = repo.get("full_name") if isinstance(repo, dict) else None
            if isinstance(name, str) and "/" in name:
                yield f"manifests:{name}"


class ManifestSources(Reconciler):
    kind: ClassVar[str] = "manifests"
    owns: ClassVar[frozenset[str]] = OBJECT_KINDS
    resync: ClassVar[bool] = True
    machine: ClassVar[StateMachine | None] = MACHINE

    def __init__(self, *, folder: str = "manifests/") -> None:
        self.folder = folder  # the manifests folder of each repository, ending with "/"

    def watches(self) -> Sequence[Watch]:
        return (Watch("github", frozenset({"push"}), self._pushed),
                Watch("github", frozenset({"installation", "installation_repositories"}),
                      _added_repositories))

    def _pushed(self, event: Event) -> Iterable[str]:
        repo = repo_full_name(event.payload)
        if repo and _pushed_to_default_branch(event.payload) \
                and touches_manifests(event.payload, self.folder):
            return (f"manifests:{repo}",)
        return ()

    def source(self, key: str) -> str | None:
        return key_name(key)

    async def observe(self, ctx: ObserveContext, key: str) -> ManifestSnapshot:
        source = key_name(key)
        local = source == LOCAL_SOURCE
        # What is recorded, what is applied and the newest delivery, in one round trip.
        current, applied_objects, newest = await asyncio.gather(
            ctx.resource(self.kind, source), ctx.applied_objects(source),
            ctx.recent_payloads(key, 1))
        data: Mapping[str, Any] = current.data if current else {}
        where = Where(source) if local else self._github_where(source, newest, data)
        applied = tuple(ObjectState(o.kind, o.name, o.content_hash, o.document)
                        for o in applied_objects)
        object_keys = [object_key(o.kind, source, o.name) for o in applied
                       if o.kind.lower() in OBJECT_KINDS]
        seen = {s.key for s in await ctx.statuses(object_keys)}
        unreconciled = tuple(k for k in object_keys if k not in seen)
        fully_applied = (current is not None and current.state == "Ready"
                         and data.get("objects") == object_hashes(applied))
        try:
            reads: ManifestReads = ctx.reads(LOCAL) if local else ctx.reads(GITHUB)
            files = await reads.manifest_files(
                where, known_tree=data.get("tree") if fully_applied else None)
        except NotConfigured as exc:
            return ManifestSnapshot(source=source, revision=None, desired=(), problems=(),
                                    applied=applied, current=current, blocked=str(exc),
                                    unreconciled=unreconciled)
        desired: tuple[ObjectState, ...] = ()
        problems: tuple[str, ...] = ()
        if files.files is not None:
            desired, problems = parse(files.files, files.unreadable)
        return ManifestSnapshot(source=source, revision=files.revision, desired=desired,
                                problems=problems, applied=applied, tree=files.tree,
                                unchanged=files.files is None, current=current,
                                where=None if local else where, unreconciled=unreconciled)

    def _github_where(self, source: str, newest: Sequence[StoredPayload],
                      data: Mapping[str, Any]) -> Where:
        """The installation and default branch: from the newest delivery for this source
        (a push or an installation event), else as recorded at the last reconcile."""
        installation, branch = data.get("installation_id"), data.get("branch")
        for item in newest:
            installation = dig(item.payload, "installation", "id") or installation
            default = dig(item.payload, "repository", "default_branch")
            branch = default if isinstance(default, str) else branch
        return Where(source, installation_id=installation if isinstance(
            installation, int) else None, branch=branch if isinstance(branch, str) else None)

    def decide(self, snapshot: ManifestSnapshot, policy: Policy) -> Plan:
        return decide(snapshot, policy)
