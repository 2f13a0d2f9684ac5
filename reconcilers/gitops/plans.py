"""Pull request plans (`plan:owner/repo#N`): the `p38 plan` of a pull request that touches the
manifests, as a `p38/plan` check run on its head commit (the plan before merge, as Atlantis
does).

`observe` reads the newest `pull_request` delivery (head SHA, base branch, installation),
asks whether the pull request changes a file under the manifests folder, and if so reads the
manifests at the head commit and what is applied now. `decide` (pure) plans one check run,
keyed by the head SHA and a digest of what is applied, so a new push or a change on the
default branch plans again and nothing else does.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from controller.reconcile.context import ObserveContext
from controller.reconcile.errors import NotConfigured
from controller.reconcile.ids import key_name
from controller.reconcile.payloads import dig, number, repo_full_name
from controller.reconcile.plan import Plan
from controller.reconcile.reads import GITHUB, Where
from controller.reconcile.reconciler import Event, Reconciler, Watch, repo_of
from reconcilers.gitops import reporting
from reconcilers.gitops.diff import ObjectState, counts, diff, digest
from reconcilers.gitops.manifest_decide import parse

if TYPE_CHECKING:
    from controller.reconcile.policy import Policy


@dataclass(frozen=True)
class PullPlanSnapshot:
    repo: str
    number: int
    status: str  # open | closed | other-base | untouched | unknown | blocked
    head_sha: str | None = None
    installation_id: int | None = None
    desired: tuple[ObjectState, ...] = ()
    problems: tuple[str, ...] = ()
    applied: tuple[ObjectState, ...] = ()
    reason: str = ""


PLANNED_PULL_ACTIONS = frozenset({"opened", "synchronize", "reopened", "ready_for_review",
                                  "edited"})


def keys(event: Event) -> Iterable[str]:
    repo = repo_full_name(event.payload)
    n = number(event.payload.get("pull_request")) or number(event.payload)
    if repo and n is not None and event.action in PLANNED_PULL_ACTIONS:
        return (f"plan:{repo}#{n}",)
    return ()


class PullRequestPlans(Reconciler):
    kind: ClassVar[str] = "plan"

    def watches(self) -> Sequence[Watch]:
        return (Watch("github", frozenset({"pull_request"}), keys),)

    def source(self, key: str) -> str | None:
        return repo_of(key)

    async def observe(self, ctx: ObserveContext, key: str) -> PullPlanSnapshot:
        repo, _, number_text = key_name(key).rpartition("#")
        pull = int(number_text) if number_text.isascii() and number_text.isdigit() else 0
        newest = await ctx.recent_payloads(key, 1, events=["pull_request"])
        if not newest:
            return PullPlanSnapshot(repo, pull, "unknown")
        payload = newest[0].payload
        head = dig(payload, "pull_request", "head", "sha")
        installation = dig(payload, "installation", "id")
        base = dig(payload, "pull_request", "base", "ref")
        default = dig(payload, "repository", "default_branch")
        if dig(payload, "pull_request", "state") != "open" or not isinstance(head, str) \
                or not isinstance(installation, int):
            return PullPlanSnapshot(repo, pull, "closed")
        if isinstance(default, str) and base != default:
            return PullPlanSnapshot(repo, pull, "other-base", head)
        try:
            github = ctx.reads(GITHUB)
            if not await github.pull_touches(repo, pull, installation_id=installation):
                return PullPlanSnapshot(repo, pull, "untouched", head, installation)
            files = await github.manifest_files(Where(repo, installation_id=installation,
                                                      commit=head), known_tree=None)
        except NotConfigured as exc:
            return PullPlanSnapshot(repo, pull, "blocked", head, reason=str(exc))
        desired, problems = parse(files.files or {}, files.unreadable)
        applied = tuple(ObjectState(o.kind, o.name, o.content_hash, o.document)
                        for o in await ctx.applied_objects(repo))
        return PullPlanSnapshot(repo, pull, "open", head, installation, desired, problems,
                                applied)

    def decide(self, snapshot: PullPlanSnapshot, policy: Policy) -> Plan:
        pr = f"{snapshot.repo}#{snapshot.number}"
        if snapshot.status == "blocked":
            return Plan("Blocked", f"{pr}: {snapshot.reason}", status="Blocked")
        if snapshot.status != "open":
            reasons = {"unknown": "no pull_request delivery yet", "closed": "not open",
                       "other-base": "does not target the default branch",
                       "untouched": "changes no manifest"}
            return Plan("NothingToPlan", f"{pr}: {reasons[snapshot.status]}",
                        forget=snapshot.status == "closed")
        head, installation = snapshot.head_sha or "", snapshot.installation_id or 0
        key = (f"github:{snapshot.repo}:{head}:check:{reporting.PLAN_CHECK}:"
               f"{digest(snapshot.applied)}")
        if snapshot.problems:
            action = reporting.check_run(
                snapshot.repo, installation, head, name=reporting.PLAN_CHECK, key=key,
                conclusion="failure", title=f"{len(snapshot.problems)} problem(s)",
                summary=reporting.problems_markdown(snapshot.problems))
            return Plan("Invalid", f"{pr}: {len(snapshot.problems)} problem(s)",
                        actions=(action,))
        empty = not snapshot.desired and bool(snapshot.applied)
        changes = diff(snapshot.desired, snapshot.applied, prune=not empty)
        summary = reporting.changes_markdown(changes)
        if empty:
            summary += ("\n\nNo manifests at this commit: nothing would be pruned (an empty "
                        "set prunes nothing).")
        title = counts(changes) if changes else "no changes"
        action = reporting.check_run(snapshot.repo, installation, head,
                                     name=reporting.PLAN_CHECK, key=key, conclusion="success",
                                     title=f"plan: {title}", summary=summary)
        return Plan("Planned", f"{pr}: {title}", actions=(action,))
