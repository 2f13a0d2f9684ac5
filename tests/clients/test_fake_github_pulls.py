"""The fake GitHub's pull request operations, driven through the App client as the controller
drives GitHub: merge (squash moves the base; 409 on a stale head; 405 when dirty, blocked,
computing or closed), update-branch (a merge of the base into the head; 422 on a stale
`expected_head_sha` or nothing new), branch deletion (204, then 422), reviews, the combined
status, every app's check runs, mergeability while GitHub computes, and the webhooks built from
that state."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from controller.clients.github import GitHubApp
from controller.clients.github_errors import GitHubError
from tests.fakes.github import FakeGitHub, make_key_pair
from tests.fakes.github_events import (
    check_run_event,
    check_suite_event,
    pull_request_event,
    review_event,
    status_event,
)

PRIVATE, PUBLIC = make_key_pair()
REPO = "octo-org/infra"
INSTALLATION = 51234567
BASE = {"README.md": "infra\n", "manifests/a.yaml": "kind: Agent\n"}


@pytest.fixture
def fake() -> FakeGitHub:
    github = FakeGitHub(public_key=PUBLIC)
    github.install(INSTALLATION, REPO)
    github.commit(REPO, BASE)
    return github


@pytest.fixture
async def app(fake: FakeGitHub) -> AsyncIterator[GitHubApp]:
    async with httpx.AsyncClient(transport=fake.transport()) as http:
        yield GitHubApp(app_id=fake.app_id, private_key=PRIVATE, http=http)


async def call(app: GitHubApp, method: str, path: str, **kwargs: Any) -> Any:
    return await app.call(method, f"/repos/{REPO}{path}", installation_id=INSTALLATION,
                          **kwargs)


async def refused(app: GitHubApp, method: str, path: str, **kwargs: Any) -> tuple[int, str]:
    with pytest.raises(GitHubError) as caught:
        await call(app, method, path, **kwargs)
    return caught.value.status, caught.value.github_message


def a_pull(fake: FakeGitHub, number: int = 12, branch: str = "claude/12-cheaper",
           **kwargs: Any) -> str:
    head = fake.push_branch(REPO, branch, {**BASE, "manifests/a.yaml": "kind: Agent # 2\n"})
    fake.open_pull(REPO, number, head=branch, **kwargs)
    return head


async def test_squash_merge_moves_the_base_and_marks_the_pull_merged(
        app: GitHubApp, fake: FakeGitHub) -> None:
    main = fake.repos[REPO].branches["main"]
    head = a_pull(fake, labels=["p38"], author="dana-ops")
    pull = await call(app, "GET", "/pulls/12")
    assert (pull["state"], pull["merged"], pull["mergeable"], pull["mergeable_state"],
            pull["merge_commit_sha"]) == ("open", False, True, "clean", None)
    assert (pull["head"]["sha"], pull["base"]["sha"]) == (head, main)
    assert (pull["head"]["repo"]["full_name"], pull["base"]["repo"]["full_name"],
            pull["user"]["login"], pull["labels"]) == (REPO, REPO, "dana-ops",
                                                        [{"name": "p38"}])
    made = await call(app, "PUT", "/pulls/12/merge",
                      json={"sha": head, "merge_method": "squash", "commit_title": "Cheaper"})
    assert made == {"sha": made["sha"], "merged": True,
                    "message": "Pull Request successfully merged"}
    repo = fake.repos[REPO]
    assert repo.branches["main"] == made["sha"] and repo.parents[made["sha"]] == [main]
    assert repo.files[made["sha"]] == repo.files[head]
    assert repo.messages[made["sha"]].startswith("Cheaper")
    after = await call(app, "GET", "/pulls/12")
    assert (after["state"], after["merged"], after["merge_commit_sha"]) == (
        "closed", True, made["sha"])
    assert after["merged_at"] is not None and after["head"]["sha"] == head
    assert fake.merges == [{"repo": REPO, "number": 12, "sha": head, "method": "squash",
                            "commit": made["sha"]}]
    assert await refused(app, "PUT", "/pulls/12/merge", json={"sha": head}) == (
        405, "Pull Request is not mergeable")


async def test_merge_commit_has_both_parents(app: GitHubApp, fake: FakeGitHub) -> None:
    main = fake.repos[REPO].branches["main"]
    head = a_pull(fake)
    made = await call(app, "PUT", "/pulls/12/merge", json={"merge_method": "merge"})
    assert fake.repos[REPO].parents[made["sha"]] == [main, head]
    assert await refused(app, "PUT", "/pulls/12/merge", json={"merge_method": "fast"}) == (
        422, "Invalid request: merge_method must be one of merge, squash, rebase")


async def test_merge_refused_on_a_stale_head_and_when_github_will_not(
        app: GitHubApp, fake: FakeGitHub) -> None:
    head = a_pull(fake)
    newer = fake.push_branch(REPO, "claude/12-cheaper", {**BASE, "x.md": "x"})
    assert fake.repos[REPO].parents[newer] == [head]
    assert await refused(app, "PUT", "/pulls/12/merge", json={"sha": head}) == (
        409, "Head branch was modified. Review and try the merge again.")
    for fields in ({"mergeable": False, "mergeable_state": "dirty"},
                   {"mergeable_state": "blocked"}, {"mergeable": None}):
        fake.set_pull(REPO, 12, **fields)
        assert await refused(app, "PUT", "/pulls/12/merge", json={"sha": newer}) == (
            405, "Pull Request is not mergeable")
    fake.set_pull(REPO, 12, mergeable=True, mergeable_state="clean")
    fake.set_pull(REPO, 12, draft=True)
    assert (await call(app, "GET", "/pulls/12"))["mergeable_state"] == "clean"  # overridden
    fake.push_branch(REPO, "claude/12-cheaper", {**BASE, "x.md": "y"})  # GitHub recomputes
    assert (await call(app, "GET", "/pulls/12"))["mergeable_state"] == "draft"
    assert (await refused(app, "PUT", "/pulls/12/merge", json={}))[0] == 405
    fake.set_pull(REPO, 12, draft=False)
    await call(app, "DELETE", "/git/refs/heads/claude/12-cheaper")  # closes it
    assert (await call(app, "GET", "/pulls/12"))["state"] == "closed"
    assert await refused(app, "PUT", "/pulls/12/merge", json={}) == (
        405, "Pull Request is not mergeable")
    assert fake.merges == []


async def test_update_branch_merges_the_base_into_the_head(app: GitHubApp,
                                                           fake: FakeGitHub) -> None:
    head = a_pull(fake)
    fake.repos[REPO].up_to_date = True  # branch protection: "require up to date"
    main = fake.push_branch(REPO, "main", {**BASE, "docs/new.md": "new\n"})
    pull = await call(app, "GET", "/pulls/12")
    assert (pull["mergeable"], pull["mergeable_state"]) == (True, "behind")
    assert await refused(app, "PUT", "/pulls/12/update-branch",
                         json={"expected_head_sha": main}) == (
        422, "expected head sha didn't match current head ref.")
    answer = await call(app, "PUT", "/pulls/12/update-branch",
                        json={"expected_head_sha": head})
    assert answer == {"message": "Updating pull request branch.",
                      "url": f"https://github.com/{REPO}/pull/12"}
    repo = fake.repos[REPO]
    updated = repo.branches["claude/12-cheaper"]
    assert repo.parents[updated] == [head, main]
    files = {p: repo.blobs[s].decode() for p, s in repo.files[updated].items()}
    assert files == {**BASE, "docs/new.md": "new\n", "manifests/a.yaml": "kind: Agent # 2\n"}
    assert (await call(app, "GET", "/pulls/12"))["mergeable_state"] == "clean"
    assert await refused(app, "PUT", "/pulls/12/update-branch", json={}) == (
        422, "There are no new commits on the base branch.")
    listed = await call(app, "GET", "/pulls/12/files")
    assert [f["filename"] for f in listed] == ["manifests/a.yaml"]  # not the base's new file


async def test_a_branch_is_deleted_once(app: GitHubApp, fake: FakeGitHub) -> None:
    fake.push_branch(REPO, "claude/12-x", {"README.md": "x\n"})
    assert await call(app, "DELETE", "/git/refs/heads/claude/12-x") is None  # 204
    assert "claude/12-x" not in fake.repos[REPO].branches
    assert fake.deleted_refs == [(REPO, "claude/12-x")]
    assert await refused(app, "DELETE", "/git/refs/heads/claude/12-x") == (
        422, "Reference does not exist")
    assert fake.deleted_refs == [(REPO, "claude/12-x")]


async def test_reviews_are_listed_oldest_first_in_pages(app: GitHubApp,
                                                        fake: FakeGitHub) -> None:
    head = a_pull(fake)
    fake.add_review(REPO, 12, "dana-ops", "CHANGES_REQUESTED")
    fake.add_review(REPO, 12, "outsider", "COMMENTED", association="NONE", commit_id="0" * 40)
    fake.add_review(REPO, 12, "dana-ops", "APPROVED")
    first = await call(app, "GET", "/pulls/12/reviews", params={"per_page": "2"})
    second = await call(app, "GET", "/pulls/12/reviews", params={"per_page": "2", "page": "2"})
    assert [(r["user"]["login"], r["state"]) for r in first + second] == [
        ("dana-ops", "CHANGES_REQUESTED"), ("outsider", "COMMENTED"), ("dana-ops", "APPROVED")]
    assert [r["commit_id"] for r in first + second] == [head, "0" * 40, head]
    assert {tuple(sorted(r)) for r in first} == {(
        "author_association", "body", "commit_id", "html_url", "id", "node_id",
        "pull_request_url", "state", "submitted_at", "user")}
    fake.add_review(REPO, 12, "dana-ops", "DISMISSED")  # the approval is dismissed
    listed = await call(app, "GET", "/pulls/12/reviews")
    assert [r["state"] for r in listed] == ["CHANGES_REQUESTED", "COMMENTED", "DISMISSED"]


async def test_combined_status_is_the_newest_of_each_context(app: GitHubApp,
                                                             fake: FakeGitHub) -> None:
    head = a_pull(fake)
    empty = await call(app, "GET", f"/commits/{head}/status")
    assert (empty["state"], empty["total_count"], empty["statuses"]) == ("pending", 0, [])
    fake.set_status(REPO, head, "ci/build", "pending")
    fake.set_status(REPO, head, "ci/build", "success")
    made = await call(app, "POST", f"/statuses/{head}",
                      json={"state": "failure", "context": "lint", "description": "2 errors"})
    assert (made["state"], made["context"], made["creator"]["login"]) == (
        "failure", "lint", "project38[bot]")
    combined = await call(app, "GET", "/commits/claude/12-cheaper/status")  # a branch name
    assert (combined["state"], combined["sha"], combined["total_count"]) == (
        "failure", head, 2)
    assert sorted((s["context"], s["state"]) for s in combined["statuses"]) == [
        ("ci/build", "success"), ("lint", "failure")]
    assert combined["repository"]["full_name"] == REPO
    await call(app, "POST", f"/statuses/{head}", json={"state": "success", "context": "lint"})
    assert (await call(app, "GET", f"/commits/{head}/status"))["state"] == "success"
    assert (await refused(app, "POST", f"/statuses/{head}", json={"context": "lint"}))[0] == 422


async def test_check_runs_of_every_app_newest_of_each_name(app: GitHubApp,
                                                           fake: FakeGitHub) -> None:
    head = a_pull(fake)
    ours = await app.create_check_run(REPO, installation_id=INSTALLATION, name="p38/plan",
                                      head_sha=head, status="in_progress")
    assert (ours["app"]["slug"], ours["status"], ours["conclusion"]) == (
        "project38", "in_progress", None)
    assert ours["started_at"] and ours["completed_at"] is None
    assert [p["number"] for p in ours["pull_requests"]] == [12]
    fake.add_check_run(REPO, head, "ci / test", conclusion="failure")
    rerun = fake.add_check_run(REPO, head, "ci / test", status="in_progress")
    fake.add_check_run(REPO, head, "deploy", app="railway")
    latest = await call(app, "GET", f"/commits/{head}/check-runs")
    assert latest["total_count"] == 3
    assert sorted((r["app"]["slug"], r["name"], r["status"]) for r in latest["check_runs"]) == [
        ("ci", "ci / test", "in_progress"), ("project38", "p38/plan", "in_progress"),
        ("railway", "deploy", "completed")]
    every = await call(app, "GET", f"/commits/{head}/check-runs",
                       params={"filter": "all", "per_page": "2"})
    assert (every["total_count"], len(every["check_runs"])) == (4, 2)
    done = await call(app, "GET", f"/commits/{head}/check-runs",
                      params={"filter": "all", "status": "completed"})
    assert sorted(r["conclusion"] for r in done["check_runs"]) == ["failure", "success"]
    named = await call(app, "GET", f"/commits/{head}/check-runs",
                       params={"check_name": "ci / test"})
    assert [r["id"] for r in named["check_runs"]] == [rerun["id"]]
    finished = await app.update_check_run(REPO, ours["id"], installation_id=INSTALLATION,
                                          conclusion="success",
                                          output={"title": "Plan", "summary": "nothing"})
    assert (finished["status"], finished["output"]["summary"]) == ("completed", "nothing")
    assert finished["completed_at"] is not None and "_repo" not in finished


async def test_mergeability_is_null_while_github_computes(app: GitHubApp,
                                                          fake: FakeGitHub) -> None:
    a_pull(fake)
    fake.computing_mergeable(REPO, 12)
    first = await call(app, "GET", "/pulls/12")
    second = await call(app, "GET", "/pulls/12")
    assert (first["mergeable"], first["mergeable_state"]) == (None, "unknown")
    assert (second["mergeable"], second["mergeable_state"]) == (True, "clean")


async def test_a_fork_pull_request(app: GitHubApp, fake: FakeGitHub) -> None:
    head = a_pull(fake, 13, "feature", fork="alice/infra", author="alice")
    pull = await call(app, "GET", "/pulls/13")
    assert (pull["head"]["repo"]["full_name"], pull["head"]["label"],
            pull["head"]["repo"]["fork"]) == ("alice/infra", "alice:feature", True)
    assert await refused(app, "DELETE", "/git/refs/heads/feature") == (
        422, "Reference does not exist")  # not a branch of the base repository
    run = fake.add_check_run(REPO, head, "ci / test")
    name, payload = check_run_event(fake, REPO, run, INSTALLATION)
    assert (name, payload["check_run"]["pull_requests"]) == ("check_run", [])
    listed = await call(app, "GET", "/pulls", params={"head": "alice:feature"})
    assert [p["number"] for p in listed] == [13] and "mergeable" not in listed[0]


async def test_pulls_are_listed_newest_first_in_pages(app: GitHubApp, fake: FakeGitHub) -> None:
    for n in (3, 4, 5):
        a_pull(fake, n, f"claude/{n}")
    fake.merge_pull(REPO, 4)
    first = await call(app, "GET", "/pulls", params={"state": "all", "per_page": "2"})
    second = await call(app, "GET", "/pulls",
                        params={"state": "all", "per_page": "2", "page": "2"})
    assert [p["number"] for p in first + second] == [5, 4, 3]
    assert [p["number"] for p in await call(app, "GET", "/pulls")] == [5, 3]
    assert [p["number"] for p in await call(app, "GET", "/pulls",
                                            params={"state": "closed"})] == [4]


def test_webhooks_are_built_from_the_state(fake: FakeGitHub) -> None:
    head = a_pull(fake, labels=["p38/hold"])
    name, opened = pull_request_event(fake, REPO, 12, "opened", INSTALLATION)
    assert (name, opened["action"], opened["number"], opened["installation"]) == (
        "pull_request", "opened", 12, {"id": INSTALLATION})
    assert (opened["pull_request"]["head"]["sha"], opened["pull_request"]["mergeable"]) == (
        head, None)
    assert (opened["repository"]["full_name"], opened["repository"]["owner"]["login"],
            opened["repository"]["default_branch"]) == (REPO, "octo-org", "main")
    newer = fake.push_branch(REPO, "claude/12-cheaper", {**BASE, "y.md": "y"})
    _, pushed = pull_request_event(fake, REPO, 12, "synchronize", INSTALLATION)
    assert (pushed["before"], pushed["after"]) == (head, newer)
    _, labeled = pull_request_event(fake, REPO, 12, "labeled", INSTALLATION)
    assert labeled["label"] == {"name": "p38/hold"}
    review = fake.add_review(REPO, 12, "dana-ops", "APPROVED")
    name, reviewed = review_event(fake, REPO, 12, review, INSTALLATION)
    assert (name, reviewed["review"]["state"], reviewed["sender"]["login"]) == (
        "pull_request_review", "approved", "dana-ops")
    assert "mergeable" not in reviewed["pull_request"]
    run = fake.add_check_run(REPO, newer, "ci / test")
    name, checked = check_run_event(fake, REPO, run, INSTALLATION)
    assert [p["number"] for p in checked["check_run"]["pull_requests"]] == [12]
    assert (checked["check_run"]["check_suite"]["conclusion"],
            checked["check_run"]["check_suite"]["head_branch"]) == (
        "success", "claude/12-cheaper")
    name, suite = check_suite_event(fake, REPO, newer, INSTALLATION)
    assert (name, suite["check_suite"]["status"], suite["check_suite"]["app"]["slug"]) == (
        "check_suite", "completed", "ci")
    fake.set_status(REPO, newer, "ci/build", "success")
    name, status = status_event(fake, REPO, newer, "ci/build", "success", INSTALLATION)
    assert (name, status["sha"], status["name"], status["state"], status["context"]) == (
        "status", newer, REPO, "success", "ci/build")
    assert status["branches"] == [{"name": "claude/12-cheaper", "commit": {
        "sha": newer, "url": f"{fake.host}/repos/{REPO}/commits/{newer}"}, "protected": False}]
