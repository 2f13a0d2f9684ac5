"""What the controller tells GitHub about manifests, as actions: check runs and the one issue.

Pure builders: each returns an `Action` (kind, params, idempotency key) for the executor's
`github.*` runners, which do the REST calls. Markdown is rendered here so that what a plan says
and what GitHub shows cannot drift apart. No I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Sequence

from reconcilers.base import Action
from reconcilers.diff import Change, counts

RECONCILE_CHECK = "p38/reconcile"
PLAN_CHECK = "p38/plan"
ISSUE_MARKER = "<!-- p38:invalid-manifests -->"
ISSUE_LABEL = "p38"
SUMMARY_LIMIT = 60_000  # GitHub refuses check run summaries above 65,535 characters
SHOWN_PROBLEMS = 200


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
    params: dict[str, object] = {
        "repo": repo, "installation_id": installation_id, "head_sha": head_sha, "name": name,
        "status": "in_progress" if conclusion is None else "completed",
        "output": {"title": title, "summary": _fit(summary)}}
    if conclusion is not None:
        params["conclusion"] = conclusion
    if start_key is not None:
        params["start_key"] = start_key
    state = conclusion or "in_progress"
    return Action("github.check_run", params, key, needs="github",
                  description=f"check run {name} on {short(head_sha)}: {state} ({title})")


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
    return Action(
        "github.issue_upsert",
        {"repo": repo, "installation_id": installation_id, "marker": ISSUE_MARKER,
         "title": "project38: invalid manifests on the default branch",
         "body": _fit(body), "labels": [ISSUE_LABEL]},
        f"github:{repo}:issue:invalid:{revision}", needs="github",
        description=f"open or update the invalid-manifests issue ({len(problems)} problem(s) "
                    f"at {short(revision)})")


def resolve_issue(repo: str, installation_id: int, revision: str) -> Action:
    return Action(
        "github.issue_close",
        {"repo": repo, "installation_id": installation_id, "marker": ISSUE_MARKER,
         "comment": f"The manifests are valid again at {revision}; closing."},
        f"github:{repo}:issue:resolved:{revision}", needs="github",
        description=f"close the invalid-manifests issue (valid at {short(revision)})")
