"""Auto-merge end to end, continued: a `/claude` pull request whose task read an outsider's
text waits for a writer's approving review whatever `requiredApprovals` says; `/claude status`
on a pull request answers with the check run's words; the branch update and the branch
deletion whose answers were lost are made once; with no required check named, one must have
run; what happened while the controller was down is found at start."""

from __future__ import annotations

from typing import Any

from controller.store import Store
from tests.agents.test_generation_e2e import both  # noqa: F401 (the fixture)
from tests.e2e.test_automerge import BRANCH, Merging, _async, merging, policy, start  # noqa: F401
from tests.e2e.test_claude_tasks import ended, pulls
from tests.e2e.test_commands import comment, send
from tests.e2e.test_gitops import INSTALLATION, REPO, GitOps
from tests.fakes.anthropic import FakeAnthropic, use
from tests.fakes.github_events import pull_request_event, review_event, status_event
from tests.helpers import wait_until


async def test_a_task_that_read_an_outsiders_text_merges_only_after_a_writers_review(
        both: tuple[GitOps, FakeAnthropic]) -> None:  # noqa: F811
    gitops, claude = both
    by = Merging(gitops)
    await gitops.push(policy())
    gitops.fake.open_issue(REPO, 11, title="Document X", body="Please add X.",
                           author="mallory", association="NONE")
    gitops.fake.permissions[(REPO, "dana-ops")] = "write"
    claude.script.extend([
        use(("write_file", {"path": "README.md", "content": "infra\n\nX\n"})),
        use(("finish", {"title": "Add X", "summary": "adds X"}))])
    await send(gitops, comment("/claude add X", comment_id=901))
    [task] = await ended(gitops)
    assert task["state"] == "PR_OPENED", task["reason"]
    [(number, (branch, _))] = pulls(gitops).items()
    assert branch.startswith("claude/")
    await by.send(pull_request_event(gitops.fake, REPO, number, "opened", INSTALLATION))
    head = await by.green(number)
    await by.says(head, f"1 approving review(s) by a writer needed on {head[:7]} (its /claude "
                        "task read text by someone without write permission)")
    assert gitops.fake.merges == []
    review = gitops.fake.add_review(REPO, number, "dana-ops", "APPROVED")
    await by.send(review_event(gitops.fake, REPO, number, review, INSTALLATION))
    assert (await by.merged(number))["sha"] == head


async def test_claude_status_on_a_pull_request_says_what_blocks_it(
        merging: Merging) -> None:  # noqa: F811
    head = await merging.open(labels=("hold",))
    await merging.says(head, "label `hold`")
    merging.fake.permissions[(REPO, "dana-ops")] = "write"
    ask = comment("/claude status", comment_id=902)
    ask["issue"].update(number=7, pull_request={"url": f"https://api.github.com/repos/{REPO}/"
                                                       "pulls/7"})
    await send(merging.gitops, ask)

    async def answered() -> str | None:
        found = [c["body"] for c in merging.fake.comments.get((REPO, 7), [])]
        return found[0] if found else None

    reply = await wait_until(answered, what="the status reply", store=merging.gitops.store)
    assert f"Auto-merge: not merged yet; on {head[:7]}, 2 condition(s) unmet:" in reply
    assert "- label `hold`" in reply and f"- check `test` has not run on {head[:7]}" in reply


async def test_an_update_whose_answer_was_lost_is_made_once(merging: Merging) -> None:  # noqa: F811
    merging.fake.repos[REPO].up_to_date = True
    first = await merging.open()
    merging.fake.commit(REPO, merging.tree({"NEWS.md": "news\n"}))  # main moves: behind
    merging.fake.lose_answer_next("PUT", rf"/repos/{REPO}/pulls/7/update-branch")
    await merging.green()
    await wait_until(lambda: _async(merging.head() != first), what="the branch updated")

    async def looked_again() -> bool:
        rows = await merging.gitops.store.fetch("statuses_of", [f"pull:{REPO}#7"])
        return bool(rows and rows[0]["status"] == "Waiting")

    await wait_until(looked_again, what="the update settled", store=merging.gitops.store)
    assert merging.calls("PUT", "/pulls/7/update-branch") == 1


async def test_a_branch_deletion_whose_answer_was_lost_is_made_once(
        merging: Merging) -> None:  # noqa: F811
    await merging.open()
    merging.fake.lose_answer_next("DELETE", rf"/repos/{REPO}/git/refs/heads/{BRANCH}")
    await merging.green()
    await merging.merged()
    await merging.gitops.settled()
    assert (REPO, BRANCH) in merging.fake.deleted_refs
    assert merging.calls("DELETE", f"/git/refs/heads/{BRANCH}") == 1


async def test_a_pull_request_with_no_check_at_all_is_not_merged_on_opening(
        aiohttp_client: Any, store: Store, dsn: str) -> None:
    """With no requiredChecks named, a pull request opened a moment before its CI starts is
    not merged: at least one check must have run on the head, and every one must pass."""
    merging = await start(aiohttp_client, store, dsn, policy(checks="[]"))  # noqa: F811
    head = await merging.open()
    await merging.says(head, f"no check has run on {head[:7]}")
    assert merging.fake.merges == []
    await merging.green(name="build")
    assert (await merging.merged())["sha"] == head


async def test_at_start_the_sweep_finds_what_happened_while_it_was_down(
        aiohttp_client: Any, store: Store, dsn: str) -> None:
    """The controller stops; a pull request is opened and its check goes green meanwhile (the
    deliveries are lost). The next controller sweeps at start and merges it."""
    merging = await start(aiohttp_client, store, dsn, policy())  # noqa: F811
    await merging.gitops.client.close()
    head = merging.fake.push_branch(REPO, BRANCH, merging.tree({"README.md": "X\n"}))
    merging.fake.open_pull(REPO, 7, head=BRANCH, title="Add X")
    merging.fake.add_check_run(REPO, head, "test")
    assert merging.restart is not None
    merging.gitops.client = await merging.restart()
    assert (await merging.merged())["sha"] == head


async def test_a_status_for_a_pull_request_not_looked_at_yet_is_found_on_github(
        merging: Merging) -> None:  # noqa: F811
    """The status arrives before any delivery about the pull request was reconciled (none
    here): the commit is looked up on GitHub, and the pull request is judged and merged."""
    head = merging.fake.push_branch(REPO, BRANCH, merging.tree({"README.md": "X\n"}))
    merging.fake.open_pull(REPO, 7, head=BRANCH, title="Add X")
    merging.fake.set_status(REPO, head, "test", "success")
    await merging.send(status_event(merging.fake, REPO, head, "test", "success", INSTALLATION))
    assert (await merging.merged())["sha"] == head
