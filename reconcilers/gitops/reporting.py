"""What the controller tells GitHub about manifests, as actions: check runs and the one issue.

The typed parameters of the `github.*` actions (shared with their runners in
`controller/providers/github.py`) and pure builders returning `Action`s. Markdown is rendered
here so that what a plan says and what GitHub shows cannot drift apart. No I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar, Literal

from pydantic import BaseModel

from controller.reconcile.plan import Action, Params
from reconcilers.gitops.diff import Change, counts

RECONCILE_CHECK = "p38/reconcile"
PLAN_CHECK = "p38/plan"
ISSUE_MARKER = "<!-- p38:invalid-manifests -->"
ISSUE_LABEL = "p38"
SUMMARY_LIMIT = 60_000  # GitHub refuses check run summaries above 65,535 characters
SHOWN_PROBLEMS = 200


class CheckOutput(BaseModel):
    title: str
    summary: str


class InRepository(Params):
    """What every GitHub action names: the repository and the App installation on it."""

    needs: ClassVar[str | None] = "github"
    repo: str
    installation_id: int


class CheckRun(InRepository):
    """Create a check run on `head_sha`, or complete the one the `start_key` action created.
    The runner finds a run it made before by `external_id` (the action's idempotency key)."""

    action_kind: ClassVar[str] = "github.check_run"
    head_sha: str
    name: str
    status: Literal["in_progress", "completed"]
    output: CheckOutput
    conclusion: str | None = None
    start_key: str | None = None


class IssueUpsert(InRepository):
    """Open an issue, or update the open one whose body holds `marker`."""

    action_kind: ClassVar[str] = "github.issue_upsert"
    marker: str
    title: str
    body: str
    labels: list[str] = []


class IssueClose(InRepository):
    """Comment on and close the open issue whose body holds `marker` (if there is one)."""

    action_kind: ClassVar[str] = "github.issue_close"
    marker: str
    comment: str


def short(sha: str | None) -> str:
    return (sha or "")[:7] or "(none)"


def changes_markdown(changes: Sequence[Change]) -> str:
    if not changes:
        return "No changes: every object is as applied."
    lines = [f"**{counts(changes)}**", "", "```diff"]
    lines += [str(c) for c in changes]
    lines.append("```")
    return "\n".join(lines)


def problems_markdown(problems: Sequence[str]) -> str:
    shown = list(problems[:SHOWN_PROBLEMS])
    lines = [f"**{len(problems)} problem(s)** — nothing was applied; the last good revision "
             "stays applied.", "", "```"]
    lines += shown
    if len(problems) > len(shown):
        lines.append(f"… and {len(problems) - len(shown)} more")
    lines.append("```")
    return "\n".join(lines)


def _fit(text: str) -> str:
    return text if len(text) <= SUMMARY_LIMIT else text[:SUMMARY_LIMIT] + "\n\n… (truncated)"


def check_run(repo: str, installation_id: int, head_sha: str, *, name: str, key: str,
              conclusion: str | None, title: str, summary: str,
              start_key: str | None = None) -> Action:
    """Create (or, with `start_key`, complete the one that action created) a check run.
    `conclusion` None means in progress."""
    params = CheckRun(repo=repo, installation_id=installation_id, head_sha=head_sha, name=name,
                      status="in_progress" if conclusion is None else "completed",
                      output=CheckOutput(title=title, summary=_fit(summary)),
                      conclusion=conclusion, start_key=start_key)
    state = conclusion or "in_progress"
    return params.action(key, description=f"check run {name} on {short(head_sha)}: {state} "
                                          f"({title})")


def failure_issue(repo: str, installation_id: int, revision: str,
                  problems: Sequence[str]) -> Action:
    """Open the invalid-manifests issue, or update the open one (found by its marker)."""
    body = "\n".join([
        ISSUE_MARKER,
        f"The manifests on the default branch at {revision} are invalid, so project38 "
        "applied nothing from that commit; the last good revision stays applied.",
        "", problems_markdown(problems), "",
        "This issue is updated on every invalid push and closed when the manifests are "
        "valid again."])
    params = IssueUpsert(repo=repo, installation_id=installation_id, marker=ISSUE_MARKER,
                         title="project38: invalid manifests on the default branch",
                         body=_fit(body), labels=[ISSUE_LABEL])
    return params.action(f"github:{repo}:issue:invalid:{revision}",
                         description=f"open or update the invalid-manifests issue "
                                     f"({len(problems)} problem(s) at {short(revision)})")


def resolve_issue(repo: str, installation_id: int, revision: str) -> Action:
    params = IssueClose(repo=repo, installation_id=installation_id, marker=ISSUE_MARKER,
                        comment=f"The manifests are valid again at {revision}; closing.")
    return params.action(f"github:{repo}:issue:resolved:{revision}",
                         description=f"close the invalid-manifests issue (valid at "
                                     f"{short(revision)})")
