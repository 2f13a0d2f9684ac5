"""A write whose answer was lost is never sent again blind (issue 21, part 1).

The fake GitHub carries a create out and then answers 502, as GitHub's edge does now and then.
The client does not resend the POST (before, its own retry did: every check run and the
invalid-manifests issue came out doubled); the action fails, is retried from the top, and its
runner finds what the first call created."""

from __future__ import annotations

from tests.agents.test_generation_e2e import both  # noqa: F401 (the fixture)
from tests.e2e.test_claude_tasks import arrange, ended, pulls
from tests.e2e.test_commands import comment, send
from tests.e2e.test_gitops import MANIFESTS, REPO, GitOps, gitops  # noqa: F401 (the fixture)
from tests.fakes.anthropic import FakeAnthropic, use


def posts(of: GitOps, suffix: str) -> int:
    return sum(1 for q in of.fake.requests
               if q.method == "POST" and q.url.path.endswith(suffix))


async def test_a_check_run_whose_answer_was_lost_is_created_once(
        gitops: GitOps) -> None:  # noqa: F811
    gitops.fake.lose_answer_next("POST", rf"/repos/{REPO}/check-runs")
    head = await gitops.push({"README.md": "infra\n", **MANIFESTS})
    [run] = gitops.runs("p38/reconcile", head)  # one, and completed
    assert (run["status"], run["conclusion"]) == ("completed", "success")
    assert posts(gitops, "/check-runs") == 1  # the lost one was found, not created again


async def test_the_invalid_manifests_issue_whose_answer_was_lost_is_opened_once(
        gitops: GitOps) -> None:  # noqa: F811
    await gitops.push({"README.md": "infra\n", **MANIFESTS})
    broken = dict(gitops.files)
    broken["manifests/policy.yaml"] = "apiVersion: p38/v1\nkind: Policy\n  bad: [indent\n"
    gitops.fake.lose_answer_next("POST", rf"/repos/{REPO}/issues")
    await gitops.push(broken)
    [issue] = gitops.fake.issues[REPO]  # one issue, open
    assert issue["state"] == "open"
    assert posts(gitops, f"/repos/{REPO}/issues") == 1


async def test_a_reply_and_a_pull_request_whose_answers_were_lost_are_made_once(
        both: tuple[GitOps, FakeAnthropic]) -> None:  # noqa: F811
    gitops, claude = both  # noqa: F811
    arrange(gitops)
    gitops.fake.lose_answer_next("POST", rf"/repos/{REPO}/pulls")
    gitops.fake.lose_answer_next("POST", rf"/repos/{REPO}/issues/\d+/comments")
    claude.script.extend([
        use(("write_file", {"path": "README.md", "content": "infra\n\nX\n"})),
        use(("finish", {"title": "Add X", "summary": "adds X"}))])
    await send(gitops, comment("/claude add X to the README", comment_id=601))
    [task] = await ended(gitops)
    assert task["state"] == "PR_OPENED", task["reason"]
    assert len(pulls(gitops)) == 1 and posts(gitops, "/pulls") == 1
    replies = gitops.fake.comments.get((REPO, 11), [])
    assert len(replies) == 1 and posts(gitops, "/comments") == 1


async def test_a_push_whose_commit_and_branch_answers_were_lost_pushes_once(
        both: tuple[GitOps, FakeAnthropic]) -> None:  # noqa: F811
    """The commit and the new branch are made, their answers lost: the push is tried again,
    finds the branch carrying the task's marker, and opens one pull request from it."""
    gitops, claude = both  # noqa: F811
    arrange(gitops)
    gitops.fake.lose_answer_next("POST", rf"/repos/{REPO}/git/commits")
    gitops.fake.lose_answer_next("POST", rf"/repos/{REPO}/git/refs")
    claude.script.extend([
        use(("write_file", {"path": "README.md", "content": "infra\n\nY\n"})),
        use(("finish", {"title": "Add Y", "summary": "adds Y"}))])
    await send(gitops, comment("/claude add Y to the README", comment_id=602))
    [task] = await ended(gitops)
    assert task["state"] == "PR_OPENED", task["reason"]
    assert posts(gitops, "/git/refs") == 1 and len(pulls(gitops)) == 1
    branches = [b for b in gitops.fake.repos[REPO].branches if b.startswith("claude/")]
    assert branches == [task["branch"]]
