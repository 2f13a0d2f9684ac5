"""How auto-merge hears of pull requests no delivery named: commits (`commit:owner/repo@SHA`)
and the periodic sweep of a repository's open pull requests (`automerge:owner/repo`).

A commit status, or a check run from a fork (GitHub lists no pull request on it), names only a
commit: `Commits` looks up the open pull requests whose recorded head it is (else, when a
Policy turns auto-merge on, asks GitHub which open pull requests have it as their head) and
enqueues them.
`Sweeps` lists a repository's open pull requests whenever its Policy is applied (the Policy
reconciler enqueues it), at start and at every resync, and enqueues those whose head branch
auto-merge may concern, so a delivery the controller missed delays a merge by one resync at
most. No I/O of its own.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from controller.reconcile.context import ObserveContext
from controller.reconcile.errors import NotConfigured
from controller.reconcile.globs import matches
from controller.reconcile.ids import key_name
from controller.reconcile.payloads import dig, repo_full_name
from controller.reconcile.plan import Plan
from controller.reconcile.reconciler import Event, Reconciler, Watch, repo_of
from reconcilers.automerge import facts as read_facts
from reconcilers.automerge.actions import CHECK_NAME
from reconcilers.github.pulls import CHECK_EVENTS

if TYPE_CHECKING:
    from controller.reconcile.policy import Policy

_SHA = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")  # SHA-1, or SHA-256 repositories
_COMMIT = re.compile(r"([^/@#\s]+/[^/@#\s]+)@([0-9a-f]{40}|[0-9a-f]{64})")


def commit_keys(event: Event) -> Iterable[str]:
    """A commit status; a check that names no pull request (a fork's head)."""
    repo = repo_full_name(event.payload)
    if event.name == "status":
        sha = event.payload.get("sha")
    else:
        container = event.payload.get(CHECK_EVENTS[event.name])
        if not isinstance(container, dict) or container.get("name") == CHECK_NAME \
                or container.get("pull_requests"):
            return ()
        sha = container.get("head_sha")
    return (f"commit:{repo}@{sha}",) if repo and isinstance(sha, str) and _SHA.fullmatch(sha) \
        else ()


@dataclass(frozen=True)
class CommitSnapshot:
    key: str
    pulls: tuple[str, ...]  # `owner/repo#N`


class Commits(Reconciler):
    kind: ClassVar[str] = "commit"
    owns: ClassVar[frozenset[str]] = frozenset({"pull"})

    def watches(self) -> Sequence[Watch]:
        return (Watch("github", frozenset({"status", *CHECK_EVENTS}), commit_keys),)

    def source(self, key: str) -> str | None:
        return repo_of(key.partition("@")[0])

    async def observe(self, ctx: ObserveContext, key: str) -> CommitSnapshot:
        match = _COMMIT.fullmatch(key_name(key))
        if match is None:
            return CommitSnapshot(key, ())
        repo, sha = match[1], match[2]
        known = await ctx.pulls_with_head(repo, sha)
        if known:
            return CommitSnapshot(key, tuple(known))
        # None recorded with that head (its first look may not have settled yet): ask GitHub,
        # when a Policy could put one in scope.
        spec = await read_facts.governing(ctx, repo)
        found = await ctx.recent_payloads(key, 1)
        installation = dig(found[0].payload, "installation", "id") if found else None
        if spec is None or not spec.enabled or not isinstance(installation, int):
            return CommitSnapshot(key, ())
        try:
            pulls = await ctx.reads(read_facts.PULLS).pulls_of_commit(
                repo, sha, installation_id=installation)
        except NotConfigured:
            return CommitSnapshot(key, ())
        return CommitSnapshot(key, tuple(
            f"{repo}#{p['number']}" for p in pulls if isinstance(p.get("number"), int)
            and p.get("state") == "open" and dig(p, "head", "sha") == sha))

    def decide(self, snapshot: CommitSnapshot, policy: Policy) -> Plan:
        pulls = tuple(f"pull:{name}" for name in snapshot.pulls)
        return Plan("Mapped", f"the head of {len(pulls)} open pull request(s)"
                    + (f": {', '.join(snapshot.pulls)}" if pulls else ""),
                    enqueue=pulls, forget=True)


@dataclass(frozen=True)
class SweepSnapshot:
    key: str
    repo: str
    enabled: bool
    open: tuple[tuple[int, str], ...] = ()  # (number, head branch) of the open pull requests
    unseen: str = ""


class Sweeps(Reconciler):
    kind: ClassVar[str] = "automerge"
    owns: ClassVar[frozenset[str]] = frozenset({"pull"})
    resync: ClassVar[bool] = True
    every_key_at_start: ClassVar[bool] = True

    def source(self, key: str) -> str | None:
        return repo_of(key)

    async def observe(self, ctx: ObserveContext, key: str) -> SweepSnapshot:
        repo = key_name(key)
        spec = await read_facts.governing(ctx, repo)
        if spec is None or not spec.enabled:
            return SweepSnapshot(key, repo, enabled=False)
        installation = await read_facts.installation_of(ctx, repo, None)
        if installation is None:
            return SweepSnapshot(key, repo, True, unseen="no GitHub App installation is known")
        try:
            found = await ctx.reads(read_facts.PULLS).open_pulls(
                repo, installation_id=installation)
        except NotConfigured as exc:
            return SweepSnapshot(key, repo, True, unseen=str(exc))
        return SweepSnapshot(key, repo, True, tuple(_open(found)))

    def decide(self, snapshot: SweepSnapshot, policy: Policy) -> Plan:
        if not snapshot.enabled:
            return Plan("Off", "no Policy of this repository turns auto-merge on")
        if snapshot.unseen:
            return Plan("NotSwept", f"its open pull requests could not be listed: "
                                    f"{snapshot.unseen}", status="Blocked")
        branches = policy.spec.auto_merge.branches
        keys = tuple(f"pull:{snapshot.repo}#{n}" for n, ref in snapshot.open
                     if any(matches(ref, g) for g in branches))
        return Plan("Swept", f"{len(keys)} of {len(snapshot.open)} open pull request(s) in "
                             "scope, each looked at", enqueue=keys)


def _open(pulls: Iterable[Any]) -> Iterable[tuple[int, str]]:
    for pull in pulls:
        number, ref = dig(pull, "number"), dig(pull, "head", "ref")
        if isinstance(number, int) and isinstance(ref, str):
            yield number, ref
