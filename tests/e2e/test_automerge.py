"""Auto-merge end to end (issue 21): the real app, the real database and the stateful fake
GitHub. A `claude/` pull request whose required check turns green is merged with the head that
was checked (squash, branch deleted); a head pushed between the green check and the merge is
never merged unchecked; every unmerged pull request in scope has a `p38/automerge` check run
that says why; holds, lost answers and repeated deliveries merge once."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from controller.app import create_app
from controller.config import ManifestSettings, ProviderSettings
from controller.providers import github
from controller.store import Store
from tests.e2e.test_gitops import INSTALLATION, PRIVATE, PUBLIC, REPO, GitOps, Sleeps
from tests.fakes.github import FakeGitHub
from tests.fakes.github_events import (
    check_run_event,
    pull_request_event,
    review_event,
    status_event,
)
from tests.helpers import (
    WRITE,
    WRITE_TOKEN,
    env_for,
    github_payload,
    make_settings,
    p38,
    wait_until,
)

BRANCH = "claude/7-add-x"
CHECK = "p38/automerge"


def policy(extra: str = "", checks: str = "[test]") -> dict[str, str]:
    return {"README.md": "infra\n", "manifests/policy.yaml": (
        "apiVersion: p38/v1\nkind: Policy\nmetadata:\n  name: default\nspec:\n"
        f"  autoMerge:\n    requiredChecks: {checks}\n{extra}")}


@dataclass
class Merging:
    gitops: GitOps
    before: list[Callable[[httpx.Request], None]] = field(default_factory=list)
    restart: Callable[[], Awaitable[Any]] | None = None  # a new controller on the same fakes

    @property
    def fake(self) -> FakeGitHub:
        return self.gitops.fake

    async def send(self, built: tuple[str, dict[str, Any]]) -> None:
        headers, body = github_payload(*built)
        response = await self.gitops.client.post("/webhooks/github", data=body,
                                                 headers=headers)
        assert response.status == 202, await response.text()

    def tree(self, files: dict[str, str]) -> dict[str, str]:
        """A branch's whole content: main's, with `files` changed."""
        return {**self.gitops.files, **files}

    def head(self, number: int = 7) -> str:
        return str(self.fake.pull_json(self.fake.repos[REPO], number)["head"]["sha"])

    async def open(self, number: int = 7, branch: str = BRANCH,
                   files: dict[str, str] | None = None, **how: Any) -> str:
        changed = files or {"README.md": "infra\n\nX\n"}
        sha = self.fake.push_branch(REPO, branch, self.tree(changed))
        self.fake.open_pull(REPO, number, head=branch, title="Add X", **how)
        await self.send(pull_request_event(self.fake, REPO, number, "opened", INSTALLATION))
        return sha

    async def green(self, number: int = 7, name: str = "test",
                    conclusion: str = "success") -> str:
        sha = self.head(number)
        run = self.fake.add_check_run(REPO, sha, name, conclusion=conclusion)
        await self.send(check_run_event(self.fake, REPO, run, INSTALLATION))
        return sha

    def shown(self, sha: str) -> dict[str, Any] | None:
        runs = [r for r in self.fake.check_runs if r["name"] == CHECK and r["head_sha"] == sha]
        assert len(runs) <= 1, runs  # found before it is created: one per head
        return runs[0] if runs else None

    async def says(self, sha: str, words: str) -> dict[str, Any]:
        async def found() -> dict[str, Any] | None:
            run = self.shown(sha)
            return run if run is not None and words in run["output"]["summary"] else None

        return await wait_until(found, what=f"{CHECK} on {sha[:7]} saying {words!r}",
                                store=self.gitops.store)

    async def merged(self, number: int = 7) -> dict[str, Any]:
        async def found() -> dict[str, Any] | None:
            done = [m for m in self.fake.merges if m["number"] == number]
            return done[0] if done else None

        return await wait_until(found, what=f"#{number} merged", store=self.gitops.store)

    async def pull(self, number: int = 7) -> dict[str, Any]:
        response = await self.gitops.client.get(f"/api/pulls/{REPO}/{number}")
        assert response.status == 200, await response.text()
        return dict(await response.json())

    async def blocked_by(self, words: str, number: int = 7) -> dict[str, Any]:
        """The pull request as the API shows it, once a blocker says `words`."""
        async def found() -> dict[str, Any] | None:
            response = await self.gitops.client.get(f"/api/pulls/{REPO}/{number}")
            pull = await response.json() if response.status == 200 else {}
            blockers = (pull.get("automerge") or {}).get("blockers") or []
            return pull if any(words in b for b in blockers) else None

        return await wait_until(found, what=f"a blocker saying {words!r}",
                                store=self.gitops.store)

    def calls(self, method: str, suffix: str) -> int:
        return sum(1 for q in self.fake.requests
                   if q.method == method and q.url.path.endswith(suffix))


async def start(aiohttp_client: Any, store: Store, dsn: str, files: dict[str, str], *,
                resync: float = 3600.0) -> Merging:
    fake = FakeGitHub(public_key=PUBLIC)
    fake.install(INSTALLATION, REPO)
    fake.commit(REPO, {"README.md": "infra\n"})
    merging = Merging(GitOps(None, fake, store, Sleeps(), {"README.md": "infra\n"}))

    def handle(request: httpx.Request) -> httpx.Response:
        for hook in list(merging.before):
            hook(request)
        return fake.handle(request)

    settings = make_settings(dsn, workers=2, held_recheck=0.2).model_copy(update={
        "providers": ProviderSettings(GITHUB_APP_ID=fake.app_id, GITHUB_APP_PRIVATE_KEY=PRIVATE),
        "manifests": ManifestSettings(P38_RESYNC_SECONDS=resync)})
    async def serve() -> Any:
        app = create_app(settings, write_token=WRITE_TOKEN, providers=[
            github.bundle(transport=httpx.MockTransport(handle), sleep=merging.gitops.sleeps)])
        return await aiohttp_client(app, headers=WRITE)

    merging.gitops.client = await serve()
    merging.restart = serve
    await merging.gitops.push(files)
    return merging


@pytest.fixture
async def merging(aiohttp_client: Any, store: Store, dsn: str) -> AsyncIterator[Merging]:
    yield await start(aiohttp_client, store, dsn, policy())


async def test_a_green_required_check_merges_the_checked_head_and_deletes_the_branch(
        merging: Merging) -> None:
    head = await merging.open()
    run = await merging.says(head, "check `test` has not run on " + head[:7])
    assert run["status"] == "in_progress"
    assert await merging.green() == head
    merge = await merging.merged()
    assert (merge["sha"], merge["method"]) == (head, "squash")
    await wait_until(lambda: _async((REPO, BRANCH) in merging.fake.deleted_refs),
                     what="the branch deleted")
    done = await merging.says(head, "Merged " + head[:7])
    assert (done["status"], done["conclusion"]) == ("completed", "success")

    async def shown_merged() -> dict[str, Any] | None:  # recorded when the reconcile settles
        pull = await merging.pull()
        return pull if pull["state"] == "merged" else None

    pull = await wait_until(shown_merged, what="the pull request shown merged")
    assert pull["automerge"]["merge"]["by"] == "project38"
    assert pull["automerge"]["merge"]["method"] == "squash"
    assert merging.calls("PUT", "/pulls/7/merge") == 1
    listed = await (await merging.gitops.client.get(f"/api/pulls?repo={REPO}&state=merged")
                    ).json()
    assert [p["number"] for p in listed["items"]] == [7]
    status = p38("status", env=env_for(merging.gitops.store.dsn))
    assert "pull requests: merged 1; auto-merge: 0 open in scope, 1 merged by project38" \
        in status.stdout, status.stdout


async def test_a_head_pushed_between_the_green_check_and_the_merge_is_not_merged_unchecked(
        merging: Merging) -> None:
    """The new head lands while the merge call is on its way: GitHub answers 409, the new
    head is judged from the start, and merged only once its own check is green."""
    first = await merging.open()
    await merging.says(first, "has not run")

    def push_first(request: httpx.Request) -> None:
        if request.method == "PUT" and request.url.path.endswith("/pulls/7/merge"):
            merging.before.clear()
            merging.fake.push_branch(REPO, BRANCH, merging.tree({"README.md": "later\n"}))

    merging.before.append(push_first)
    await merging.green()
    await wait_until(lambda: _async(not merging.before), what="the head moved mid-merge")
    second = merging.head()
    assert second != first
    await merging.says(second, f"check `test` has not run on {second[:7]}")
    assert merging.fake.merges == [] and merging.calls("PUT", "/pulls/7/merge") == 1
    await merging.send(pull_request_event(merging.fake, REPO, 7, "synchronize", INSTALLATION))
    await merging.green()
    merge = await merging.merged()
    assert merge["sha"] == second and len(merging.fake.merges) == 1


@pytest.mark.parametrize(("arrange", "words"), [
    ("failed", "check `test` failure on"),
    ("label", "label `hold`"),
    ("changes", "changes requested by @lee"),
    ("draft", "draft"),
    ("fork", "from a fork (autoMerge.allowForks is false)"),
    ("protected", "needed on (it changes .github/workflows/ci.yml "
                  "(autoMerge.protectedPaths))"),
    ("dirty", "GitHub cannot merge it (dirty"),
])
async def test_each_unmet_condition_is_named_and_nothing_is_merged(
        merging: Merging, arrange: str, words: str) -> None:
    fake = merging.fake
    files = {"README.md": "infra\n\nX\n"}
    how: dict[str, Any] = {}
    if arrange == "protected":
        files[".github/workflows/ci.yml"] = "on: push\n"
    if arrange == "draft":
        how["draft"] = True
    if arrange == "fork":
        how["fork"] = "mallory/infra"
    if arrange == "label":
        how["labels"] = ("hold",)
    head = await merging.open(files=files, **how)
    if arrange == "changes":
        fake.permissions[(REPO, "lee")] = "write"
        review = fake.add_review(REPO, 7, "lee", "CHANGES_REQUESTED")
        await merging.send(review_event(fake, REPO, 7, review, INSTALLATION))
    if arrange == "dirty":
        fake.set_pull(REPO, 7, mergeable=False, mergeable_state="dirty")
    await merging.green(conclusion="failure" if arrange == "failed" else "success")
    words = words.replace("needed on", f"1 approving review(s) by a writer needed on {head[:7]}")
    run = await merging.says(head, words)
    assert run["status"] == "in_progress"
    await merging.blocked_by(words)
    assert fake.merges == [] and merging.calls("PUT", "/merge") == 0


async def test_a_writers_approval_lets_a_protected_change_merge(merging: Merging) -> None:
    fake = merging.fake
    head = await merging.open(files={"README.md": "x\n", "manifests/extra.yaml": "a: 1\n"})
    await merging.green()
    await merging.says(head, "approving review(s) by a writer needed")
    fake.permissions[(REPO, "eve")] = "read"  # a reader's approval does not count
    review = fake.add_review(REPO, 7, "eve", "APPROVED", association="CONTRIBUTOR")
    await merging.send(review_event(fake, REPO, 7, review, INSTALLATION))
    fake.permissions[(REPO, "dana")] = "write"
    review = fake.add_review(REPO, 7, "dana", "APPROVED")
    await merging.send(review_event(fake, REPO, 7, review, INSTALLATION))
    assert (await merging.merged())["sha"] == head


async def test_outside_the_branches_nothing_is_shown_or_merged(merging: Merging) -> None:
    head = await merging.open(branch="feature/x")
    await merging.green()
    await merging.gitops.settled()
    pull = await merging.pull()
    assert pull["state"] == "open" and pull["automerge"] is None  # tracked, never judged
    assert merging.shown(head) is None and merging.fake.merges == []
    assert merging.calls("GET", "/pulls/7/reviews") == 0  # nothing read for it


async def test_behind_its_base_it_is_updated_then_merged_once_the_new_head_is_green(
        merging: Merging) -> None:
    merging.fake.repos[REPO].up_to_date = True  # branch protection: "require up to date"
    first = await merging.open()
    merging.fake.commit(REPO, merging.tree({"NEWS.md": "news\n"}))  # main moves
    await merging.green()
    updated = await wait_until(lambda: _async(merging.head() != first and merging.head()),
                               what="the branch updated")
    assert merging.calls("PUT", "/pulls/7/update-branch") == 1
    await merging.send(pull_request_event(merging.fake, REPO, 7, "synchronize", INSTALLATION))
    await merging.says(str(updated), "check `test` has not run")
    assert merging.fake.merges == []
    await merging.green()
    assert (await merging.merged())["sha"] == updated


async def test_while_github_computes_mergeability_it_waits_then_merges(
        merging: Merging) -> None:
    head = await merging.open()
    merging.fake.computing_mergeable(REPO, 7, times=2)
    await merging.green()
    assert (await merging.merged())["sha"] == head


async def test_a_commit_status_is_a_required_check_too(merging: Merging) -> None:
    """A status names only its commit: it is mapped to the open pull request whose head it
    is."""
    head = await merging.open()
    await merging.says(head, "has not run")
    merging.fake.set_status(REPO, head, "test", "success")
    await merging.send(status_event(merging.fake, REPO, head, "test", "success",
                                    INSTALLATION))
    assert (await merging.merged())["sha"] == head


async def test_a_merge_whose_answer_was_lost_is_made_once(merging: Merging) -> None:
    """GitHub merges, then its edge answers 502 (or the controller stops before recording the
    answer): the action is tried again from the top, finds the pull request merged at that
    head, and does not call again."""
    head = await merging.open()
    merging.fake.lose_answer_next("PUT", rf"/repos/{REPO}/pulls/7/merge")
    await merging.green()
    assert (await merging.merged())["sha"] == head
    await merging.says(head, "Merged")
    assert merging.calls("PUT", "/pulls/7/merge") == 1 and len(merging.fake.merges) == 1


async def test_duplicate_and_out_of_order_deliveries_change_nothing(merging: Merging) -> None:
    head = await merging.open()
    opened = pull_request_event(merging.fake, REPO, 7, "opened", INSTALLATION)
    run = merging.fake.add_check_run(REPO, head, "test")
    green = check_run_event(merging.fake, REPO, run, INSTALLATION)
    await merging.send(green)
    await merging.send(green)
    await merging.merged()
    await merging.send(opened)  # late: says open, after the merge
    await merging.send(green)
    await merging.gitops.settled()
    assert len(merging.fake.merges) == 1 and merging.calls("PUT", "/pulls/7/merge") == 1
    assert (await merging.pull())["state"] == "merged"


async def test_approval_required_holds_the_merge_and_the_approval_runs_it_once(
        aiohttp_client: Any, store: Store, dsn: str) -> None:
    merging = await start(aiohttp_client, store, dsn,
                          policy("  approvalRequired: [github.merge]\n"))
    head = await merging.open()
    await merging.green()
    run = await merging.says(head, "The merge waits for approval: `p38 approve ")
    key = run["output"]["summary"].split("`p38 approve ")[1].split("`")[0]

    async def blocked() -> bool:
        found = await store.fetch("statuses_of", [f"pull:{REPO}#7"])
        return bool(found and found[0]["reason"] == "AwaitingApproval")

    await wait_until(blocked, what="the merge held for approval", store=store)
    assert merging.fake.merges == []
    await store.execute("approval_grant", key, "dana")
    assert (await merging.merged())["sha"] == head
    assert merging.calls("PUT", "/pulls/7/merge") == 1


async def test_the_killswitch_holds_the_merge_and_lifting_it_merges_once(
        aiohttp_client: Any, store: Store, dsn: str) -> None:
    merging = await start(aiohttp_client, store, dsn, policy("  killswitch: true\n"))
    await merging.open()
    await merging.green()

    async def held() -> bool:
        found = await store.fetch("statuses_of", [f"pull:{REPO}#7"])
        return bool(found and found[0]["reason"] == "Killswitch")

    await wait_until(held, what="the merge held by the killswitch", store=store)
    assert merging.fake.merges == [] and merging.calls("PUT", "/merge") == 0
    first = merging.head()
    await merging.gitops.push(policy())  # committing the switch off
    assert (await merging.merged())["sha"] == first
    assert merging.calls("PUT", "/pulls/7/merge") == 1


async def test_the_sweep_finds_a_pull_request_no_delivery_named(
        aiohttp_client: Any, store: Store, dsn: str) -> None:
    """The pull request was opened and its check went green while the controller heard
    nothing (its deliveries were lost): the resync's sweep of open pull requests finds it."""
    merging = await start(aiohttp_client, store, dsn, policy(), resync=2.0)
    head = merging.fake.push_branch(REPO, BRANCH, merging.tree({"README.md": "X\n"}))
    merging.fake.open_pull(REPO, 7, head=BRANCH, title="Add X")
    merging.fake.add_check_run(REPO, head, "test")
    assert (await merging.merged())["sha"] == head


async def _async(value: Any) -> Any:
    return value
