"""Whether a pull request may merge itself now, and, when not, what blocks it in words: the
one judgement behind the `p38/automerge` check run, `/claude status` on a pull request and
`/api/pulls` (issue 21). Pure: facts read from GitHub in, a `Judgement` out.

The conditions, in the order they are told: the Policy's `autoMerge` is on; the pull request
is open; its head branch matches `branches`; it is not from a fork (unless `allowForks`); not a
draft; no `blockingLabels`; every `requiredChecks` check completed successfully on the CURRENT
head SHA (an older head's green never counts; with none named, every check on the head, and at
least one); no writer's "changes requested" outstanding;
enough writers' approvals (`requiredApprovals`, and at least one when the change touches
`protectedPaths` or its `/claude` task read text by someone without write permission, under
`untrustedInput: review`); GitHub says it can be merged (`mergeable` null is GitHub still
computing: a wait, never a guess) and it is not behind its base (then it is updated, when
`updateBranch`, and its new head's checks are waited for).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from controller.manifests.models import AutoMerge
from controller.reconcile.globs import matches

PASSING = frozenset({"success", "neutral", "skipped"})


@dataclass(frozen=True)
class Check:
    """A check run or a commit status on one commit. A status's `pending` is `in_progress`;
    its `success`, `failure` and `error` are a completed check's conclusion."""

    name: str
    head_sha: str
    status: str  # queued, in_progress, completed
    conclusion: str | None = None  # success, failure, neutral, cancelled, timed_out, ...


@dataclass(frozen=True)
class Review:
    login: str
    state: str  # APPROVED, CHANGES_REQUESTED, COMMENTED, DISMISSED
    writer: bool  # has write permission on the repository


@dataclass(frozen=True)
class PullFacts:
    repo: str
    number: int
    state: str  # open, closed
    head_ref: str
    head_sha: str
    base_ref: str
    merged: bool = False
    draft: bool = False
    fork: bool = False
    labels: tuple[str, ...] = ()
    mergeable: bool | None = None
    mergeable_state: str = "unknown"  # clean, behind, dirty, blocked, unstable, ...
    files: tuple[str, ...] = ()  # the paths it changes
    untrusted: bool = False  # its /claude task read text by someone without write permission


@dataclass(frozen=True)
class Judgement:
    """`in_scope`: auto-merge concerns it (else `why` says why not, and nothing is shown on
    it); `blockers`: what stops the merge, in words, in order (each is a wait that a delivery
    ends: a check, a review, a label); `recheck`: GitHub is computing mergeability and sends
    no delivery when it is done, so look again soon; `behind`: update the branch first."""

    in_scope: bool
    why: str = ""
    blockers: tuple[str, ...] = ()
    recheck: bool = False
    behind: bool = False
    approvals_needed: int = 0
    reasons_for_review: tuple[str, ...] = field(default_factory=tuple)

    @property
    def mergeable(self) -> bool:
        return self.in_scope and not self.blockers


def judge(pull: PullFacts, checks: Sequence[Check], reviews: Sequence[Review],
          policy: AutoMerge) -> Judgement:
    if not policy.enabled:
        return Judgement(False, "auto-merge is off in the Policy (autoMerge.enabled)")
    if pull.merged or pull.state != "open":
        return Judgement(False, "merged" if pull.merged else f"{pull.state}")
    if not any(matches(pull.head_ref, glob) for glob in policy.branches):
        return Judgement(False, f"{pull.head_ref} matches none of autoMerge.branches "
                                f"({', '.join(policy.branches) or 'none'})")
    short = pull.head_sha[:7]
    blockers: list[str] = []
    if pull.fork and not policy.allow_forks:
        blockers.append("from a fork (autoMerge.allowForks is false)")
    if pull.draft:
        blockers.append("draft")
    blockers += [f"label `{label}`" for label in pull.labels if label in policy.blocking_labels]
    for name in policy.required_checks:
        found = _newest(checks, name, pull.head_sha)
        if found is None:
            blockers.append(f"check `{name}` has not run on {short}")
        elif found.status != "completed":
            blockers.append(f"check `{name}` is {found.status.replace('_', ' ')} on {short}")
        elif (found.conclusion or "") not in PASSING:
            blockers.append(f"check `{name}` {found.conclusion or 'failed'} on {short}")
    if not policy.required_checks:
        blockers += _every_check(checks, pull.head_sha, short)
    newest = _newest_reviews(reviews)
    blockers += [f"changes requested by @{r.login}" for r in newest
                 if r.writer and r.state == "CHANGES_REQUESTED"]
    reasons = _reasons_for_review(pull, policy)
    needed = max(policy.required_approvals, 1 if reasons else 0)
    given = sum(1 for r in newest if r.writer and r.state == "APPROVED")
    if given < needed:
        because = f" ({'; '.join(reasons)})" if reasons else ""
        blockers.append(f"{needed - given} approving review(s) by a writer needed{because}")
    behind = False
    if pull.mergeable is None:
        blockers.append("GitHub is still computing whether it can be merged")
    elif pull.mergeable_state == "behind":
        behind = policy.update_branch
        blockers.append(f"behind {pull.base_ref}: " + ("the branch is updated, then its new "
                                                       "head's checks are waited for"
                                                       if behind else
                                                       "autoMerge.updateBranch is false"))
    elif not pull.mergeable or pull.mergeable_state == "dirty":
        blockers.append(f"GitHub cannot merge it ({pull.mergeable_state}: conflicts with "
                        f"{pull.base_ref}?)")
    elif pull.mergeable_state == "blocked" and not blockers:
        blockers.append("GitHub's branch protection blocks it (a rule the Policy does not "
                        "name: required reviews, checks or a merge queue)")
    return Judgement(True, blockers=tuple(blockers), recheck=pull.mergeable is None,
                     behind=behind, approvals_needed=needed,
                     reasons_for_review=tuple(reasons))


def _newest(checks: Sequence[Check], name: str, head_sha: str) -> Check | None:
    """The last check of that name on that commit (a re-run replaces an earlier one)."""
    found = [c for c in checks if c.name == name and c.head_sha == head_sha]
    return found[-1] if found else None


def _every_check(checks: Sequence[Check], head_sha: str, short: str) -> list[str]:
    """With no `requiredChecks` named, every check reported on the head must pass, and at
    least one must have run: a head no CI has seen yet (checks start seconds after a push) is
    never merged."""
    on_head: dict[str, Check] = {}
    for check in checks:
        if check.head_sha == head_sha:
            on_head[check.name] = check
    if not on_head:
        return [f"no check has run on {short} (autoMerge.requiredChecks names none, so at "
                "least one must pass)"]
    found = []
    for name, check in on_head.items():
        if check.status != "completed":
            found.append(f"check `{name}` is {check.status.replace('_', ' ')} on {short}")
        elif (check.conclusion or "") not in PASSING:
            found.append(f"check `{name}` {check.conclusion or 'failed'} on {short}")
    return found


def _newest_reviews(reviews: Sequence[Review]) -> list[Review]:
    """Each reviewer's last review that counts (a comment changes nothing; a dismissal ends
    what they said), in the order given (GitHub's: oldest first)."""
    last: dict[str, Review] = {}
    for review in reviews:
        if review.state == "COMMENTED":
            continue
        if review.state == "DISMISSED":
            last.pop(review.login, None)
            continue
        last[review.login] = review
    return list(last.values())


def _reasons_for_review(pull: PullFacts, policy: AutoMerge) -> list[str]:
    reasons = []
    if pull.untrusted and policy.untrusted_input == "review":
        reasons.append("its /claude task read text by someone without write permission")
    touched = [path for path in pull.files
               if any(matches(path, glob) for glob in policy.protected_paths)]
    if touched:
        more = f" and {len(touched) - 1} more" if len(touched) > 1 else ""
        reasons.append(f"it changes {touched[0]}{more} (autoMerge.protectedPaths)")
    return reasons
