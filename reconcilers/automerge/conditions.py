"""Whether a pull request may merge itself now, and, when not, what blocks it in words: the
one judgement behind the `p38/automerge` check run, `/claude status` on a pull request and
`/api/pulls` (issue 21). Pure: facts read from GitHub in, a `Judgement` out.

In scope: the Policy's `autoMerge` is on; the pull request is open; its head branch matches
`branches` and its base `bases` (the default branch when none is named). Then the conditions,
in the order they are told: not from a fork (unless `allowForks`); not a draft; no
`blockingLabels` (in any case); everything GitHub listed was read; every `requiredChecks`
check on the CURRENT head SHA passed, every report of that name (an older head's green never
counts; another app's or a commit status's success never hides a failure or a check still
running; with none named, every check on the head, and at least one); no writer's "changes
requested" outstanding; enough writers' approvals given on this head (`requiredApprovals`,
and at least one when the change touches `protectedPaths` or its `/claude` task read text by
someone without write permission, under `untrustedInput: review`); GitHub says it can be
merged (`mergeable` null is GitHub still computing: a wait, never a guess) and it is not behind
its base (then it is updated, when `updateBranch` and nothing else blocks, and its new head's
checks are waited for). Names others chose are quoted so they cannot speak in the App's words.
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
    commit: str | None = None  # the head it was given on (an approval counts for that head)


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
    files: tuple[str, ...] = ()  # the paths it changes (those worth judging)
    untrusted: bool = False  # its /claude task read text by someone without write permission
    default_branch: str | None = None  # the repository's (the base when `bases` is empty)
    unread: tuple[str, ...] = ()  # what GitHub listed only in part (checks, reviews)


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
        return Judgement(False, f"{quoted(pull.head_ref)} matches none of autoMerge.branches "
                                f"({', '.join(policy.branches) or 'none'})")
    bases = policy.bases or ([pull.default_branch] if pull.default_branch else [])
    if not any(matches(pull.base_ref, glob) for glob in bases):
        return Judgement(False, f"its base {quoted(pull.base_ref)} matches none of "
                                f"autoMerge.bases ({', '.join(bases) or 'the default branch'})")
    short = pull.head_sha[:7]
    blockers: list[str] = []
    if pull.fork and not policy.allow_forks:
        blockers.append("from a fork (autoMerge.allowForks is false)")
    if pull.draft:
        blockers.append("draft")
    blocking = {label.casefold() for label in policy.blocking_labels}
    blockers += [f"label `{quoted(label)}`" for label in pull.labels
                 if label.casefold() in blocking]
    blockers += [f"not all {what} could be read (GitHub listed part of them)"
                 for what in pull.unread]
    for name in policy.required_checks:
        blockers += _unmet(name, [c for c in checks if c.name == name
                                  and c.head_sha == pull.head_sha], short, required=True)
    if not policy.required_checks:
        blockers += _every_check(checks, pull.head_sha, short)
    newest = _newest_reviews(reviews)
    blockers += [f"changes requested by @{r.login}" for r in newest
                 if r.writer and r.state == "CHANGES_REQUESTED"]
    reasons = _reasons_for_review(pull, policy)
    needed = max(policy.required_approvals, 1 if reasons else 0)
    given = sum(1 for r in newest if r.writer and r.state == "APPROVED"
                and r.commit == pull.head_sha)
    if given < needed:
        because = f" ({'; '.join(reasons)})" if reasons else ""
        blockers.append(f"{needed - given} approving review(s) by a writer needed on "
                        f"{short}{because}")
    behind = recheck = False
    if pull.mergeable is None:
        recheck = not blockers  # anything else blocking: its delivery will come first
        blockers.append("GitHub is still computing whether it can be merged")
    elif pull.mergeable_state == "behind":
        behind = policy.update_branch and not blockers  # updated once nothing else blocks
        blockers.append(f"behind {quoted(pull.base_ref)}: " + (
            "the branch is updated, then its new head's checks are waited for" if behind
            else "it is updated once nothing else blocks" if policy.update_branch
            else "autoMerge.updateBranch is false"))
    elif not pull.mergeable or pull.mergeable_state == "dirty":
        blockers.append(f"GitHub cannot merge it ({pull.mergeable_state}: conflicts with "
                        f"{quoted(pull.base_ref)}?)")
    elif pull.mergeable_state == "blocked" and not blockers:
        blockers.append("GitHub's branch protection blocks it (a rule the Policy does not "
                        "name: required reviews, checks or a merge queue)")
    return Judgement(True, blockers=tuple(blockers), recheck=recheck,
                     behind=behind, approvals_needed=needed,
                     reasons_for_review=tuple(reasons))


def quoted(text: str) -> str:
    """A name someone else chose (a check, a label, a branch), safe inside the App's own words:
    no backticks or line breaks to leave its code span, no `@` that would mention someone,
    at most 80 characters."""
    clean = "".join(c if c.isprintable() else " " for c in text).replace("`", "'")
    clean = clean.replace("@", "@\u2060")  # a word joiner: no mention
    return clean if len(clean) <= 80 else clean[:79] + "…"


def _unmet(name: str, found: Sequence[Check], short: str, *, required: bool) -> list[str]:
    """Every check of that name on the head must have passed: a re-run replaces an earlier
    run of the same app (GitHub lists the latest), but another app's or a commit status's
    success never hides a failure or a check still running."""
    shown = quoted(name)
    if not found:
        return [f"check `{shown}` has not run on {short}"] if required else []
    running = [c for c in found if c.status != "completed"]
    if running:
        return [f"check `{shown}` is {running[-1].status.replace('_', ' ')} on {short}"]
    failed = [c for c in found if (c.conclusion or "") not in PASSING]
    if failed:
        return [f"check `{shown}` {failed[-1].conclusion or 'failed'} on {short}"]
    return []


def _every_check(checks: Sequence[Check], head_sha: str, short: str) -> list[str]:
    """With no `requiredChecks` named, every check reported on the head must pass, and at
    least one must have run: a head no CI has seen yet (checks start seconds after a push) is
    never merged."""
    on_head: dict[str, list[Check]] = {}
    for check in checks:
        if check.head_sha == head_sha:
            on_head.setdefault(check.name, []).append(check)
    if not on_head:
        return [f"no check has run on {short} (autoMerge.requiredChecks names none, so at "
                "least one must pass)"]
    return [b for name, found in on_head.items()
            for b in _unmet(name, found, short, required=False)]


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
        reasons.append(f"it changes {quoted(touched[0])}{more} (autoMerge.protectedPaths)")
    return reasons
