"""What auto-merge asks GitHub to do, as actions: the merge (with the head SHA that was
checked), the update of a branch that is behind, the deletion of a merged branch, and the
`p38/automerge` check run that says what blocks a pull request.

Typed parameters (shared with their runners in `controller/providers/github_pulls.py`) and pure
builders; the check run's words are rendered here from the one `Judgement`, so what GitHub
shows, what `/claude status` answers and what `/api/pulls` lists cannot drift apart. The merge
is an action kind of its own (`github.merge`), so `approvalRequired` and every killswitch hold
it like any other. No I/O, no clock.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Literal

from reconcilers.gitops.reporting import CheckOutput, InRepository, short

CHECK_NAME = "p38/automerge"
MERGE_KIND = "github.merge"


class MergePull(InRepository):
    """Merge pull request `number` with `method`, only while its head is `sha` (GitHub answers
    409 otherwise). The runner first looks: a pull request already merged at `sha` is a
    success; 405, 409 and 422 are answered as refusals (the reconcile looks again), never
    retried."""

    action_kind: ClassVar[str] = MERGE_KIND
    number: int
    sha: str
    method: Literal["merge", "squash", "rebase"]
    title: str


class UpdateBranch(InRepository):
    """Bring pull request `number`'s branch up to date with its base, only while its head is
    `expected_head_sha`. A head that moved already is a success (someone updated it)."""

    action_kind: ClassVar[str] = "github.update_branch"
    number: int
    expected_head_sha: str


class DeleteBranch(InRepository):
    """Delete the merged head branch, only while it still points at `sha` (a branch gone is
    fine; one that moved is kept)."""

    action_kind: ClassVar[str] = "github.delete_branch"
    branch: str
    sha: str


class AutomergeCheck(InRepository):
    """Create or update the `p38/automerge` check run on `head_sha`, found first by its
    `external_id` (one run per pull request and head)."""

    action_kind: ClassVar[str] = "github.automerge_check"
    head_sha: str
    external_id: str
    status: Literal["in_progress", "completed"]
    conclusion: Literal["success", "neutral", "cancelled"] | None = None
    output: CheckOutput


def blockers_markdown(blockers: Sequence[str]) -> str:
    """The unmet conditions as the check run, `/claude status` and the API say them."""
    return "\n".join(f"- {b}" for b in blockers)


def explain(automerge: Mapping[str, Any]) -> str:
    """What auto-merge last judged of a pull request (its recorded `automerge` data), in the
    words of its check run: for `/claude status` and the API."""
    merge = automerge.get("merge") or {}
    if merge:
        return (f"merged at {short(merge.get('sha'))} by {merge.get('by', 'someone')}"
                + (f" ({merge['method']})" if merge.get("method") else "") + ".")
    if not automerge.get("in_scope"):
        return f"auto-merge does not apply: {automerge.get('why') or 'not judged yet'}."
    blockers = list(automerge.get("blockers") or [])
    if not blockers:
        return f"every condition holds on {short(automerge.get('head'))}: merging."
    return (f"not merged yet; on {short(automerge.get('head'))}, {len(blockers)} condition(s) "
            f"unmet:\n\n{blockers_markdown(blockers)}")


def check_digest(status: str, conclusion: str | None, title: str, summary: str) -> str:
    return hashlib.sha256(f"{status}\0{conclusion}\0{title}\0{summary}".encode()).hexdigest()


def check_action(repo: str, installation_id: int, number: int, head_sha: str, *,
                 conclusion: Literal["success", "neutral", "cancelled"] | None, title: str,
                 summary: str) -> tuple[AutomergeCheck, str]:
    """The check run's parameters and the digest of what it shows (the action is only planned
    when that changes)."""
    status: Literal["in_progress", "completed"] = \
        "in_progress" if conclusion is None else "completed"
    params = AutomergeCheck(repo=repo, installation_id=installation_id, head_sha=head_sha,
                            external_id=f"p38-automerge:{repo}#{number}@{head_sha}",
                            status=status, conclusion=conclusion,
                            output=CheckOutput(title=title[:250], summary=summary[:60_000]))
    return params, check_digest(status, conclusion, title, summary)


def merge_title(title: str, number: int) -> str:
    """GitHub's own squash title: the pull request's title and its number."""
    return f"{title} (#{number})"


def describe_check(params: AutomergeCheck) -> str:
    state = params.conclusion or "in progress"
    return f"check run {CHECK_NAME} on {short(params.head_sha)}: {state} ({params.output.title})"
