"""Auto-merge's side of the GitHub provider: the runners of the merge, the branch update, the
branch deletion and the `p38/automerge` check run, and the reads `observe` uses to judge a pull
request (its checks, statuses, reviews and paths, the open pull requests of a repository).

Every runner looks before it writes, so a write whose answer was lost (the client never
resends one blind) is retried from the top without doing it twice: a pull request already
merged at the checked head is a success; a head that moved is a refusal, not a merge; a branch
already gone is fine; the check run is found by its external id. GitHub's 405, 409 and 422 on a
merge or update are answered as refusals for the reconcile to look again, never retried here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from controller.clients.github import GitHubApp
from controller.clients.github_errors import GitHubError
from controller.reconcile.plan import Action, ActionRunner, runner
from reconcilers.automerge.actions import (
    CHECK_NAME,
    AutomergeCheck,
    DeleteBranch,
    MergePull,
    UpdateBranch,
)

LOOK_AGAIN = frozenset({403, 405, 409, 422})  # GitHub will not do it now: refused, not retried
MAX_PATHS = 3000  # GitHub lists at most 3,000 files of a pull request


def runners(github: GitHubApp) -> dict[str, ActionRunner]:
    async def merge(p: MergePull, _action: Action) -> Mapping[str, Any]:
        pull = await github.pull_request(p.repo, p.number, installation_id=p.installation_id)
        head = str((pull.get("head") or {}).get("sha") or "")
        if pull.get("merged"):
            return {"merged": True, "sha": head, "commit": pull.get("merge_commit_sha"),
                    "found": True, "by_us": head == p.sha}
        if pull.get("state") != "open":
            return {"merged": False, "refused": "the pull request is closed"}
        if head != p.sha:
            return {"merged": False, "refused": f"its head moved to {head[:7]} after "
                                                f"{p.sha[:7]} was checked"}
        try:
            made = await github.merge_pull(p.repo, p.number, installation_id=p.installation_id,
                                           sha=p.sha, merge_method=p.method,
                                           commit_title=p.title)
        except GitHubError as exc:
            if exc.status not in LOOK_AGAIN:
                raise
            return {"merged": False, "status": exc.status,
                    "refused": f"GitHub answered {exc.status}: {exc.github_message}"}
        return {"merged": bool(made.get("merged", True)), "sha": p.sha,
                "commit": made.get("sha"), "method": p.method, "by_us": True}

    async def update_branch(p: UpdateBranch, _action: Action) -> Mapping[str, Any]:
        pull = await github.pull_request(p.repo, p.number, installation_id=p.installation_id)
        head = str((pull.get("head") or {}).get("sha") or "")
        if head != p.expected_head_sha:
            return {"updated": True, "head": head, "found": True}
        try:
            await github.update_pull_branch(p.repo, p.number,
                                            installation_id=p.installation_id,
                                            expected_head_sha=p.expected_head_sha)
        except GitHubError as exc:
            if exc.status not in LOOK_AGAIN:
                raise
            return {"updated": False, "status": exc.status,
                    "refused": f"GitHub answered {exc.status}: {exc.github_message}"}
        return {"updated": True}

    async def delete_branch(p: DeleteBranch, _action: Action) -> Mapping[str, Any]:
        found = await github.branch_ref(p.repo, p.branch, installation_id=p.installation_id)
        if found is None:
            return {"deleted": False, "gone": True}
        if found != p.sha:
            return {"deleted": False, "kept": f"it moved to {found[:7]} after the merge"}
        try:
            await github.delete_branch(p.repo, p.branch, installation_id=p.installation_id)
        except GitHubError as exc:
            if exc.status != 422:  # 422: "Reference does not exist" (deleted meanwhile)
                raise
            return {"deleted": False, "gone": True}
        return {"deleted": True}

    async def automerge_check(p: AutomergeCheck, _action: Action) -> Mapping[str, Any]:
        fields: dict[str, Any] = {"status": p.status, "output": p.output.model_dump()}
        if p.conclusion is not None:
            fields["conclusion"] = p.conclusion
        for run in await github.check_runs_for_ref(p.repo, p.head_sha, check_name=CHECK_NAME,
                                                   installation_id=p.installation_id):
            own = str((run.get("app") or {}).get("id")) == str(github.app_id)
            if own and run.get("external_id") == p.external_id:  # (another app's: not ours)
                await github.update_check_run(p.repo, int(run["id"]),
                                              installation_id=p.installation_id, **fields)
                return {"check_run_id": int(run["id"])}
        made = await github.create_check_run(p.repo, installation_id=p.installation_id,
                                             name=CHECK_NAME, head_sha=p.head_sha,
                                             external_id=p.external_id, **fields)
        return {"check_run_id": made["id"], "created": True}

    return {**runner(MergePull, merge), **runner(UpdateBranch, update_branch),
            **runner(DeleteBranch, delete_branch), **runner(AutomergeCheck, automerge_check)}


class PullReadsMixin:
    """`reconcilers.automerge.facts.PullReads`, mixed into the provider's `GitHubReads`."""

    _github: GitHubApp

    async def open_pulls(self, repo: str, *, installation_id: int) -> list[Mapping[str, Any]]:
        return list(await self._github.open_pulls(repo, installation_id=installation_id))

    async def pulls_of_commit(self, repo: str, sha: str, *,
                              installation_id: int) -> list[Mapping[str, Any]]:
        return list(await self._github.commit_pulls(repo, sha,
                                                    installation_id=installation_id))

    async def check_runs(self, repo: str, sha: str, *,
                         installation_id: int) -> tuple[list[Mapping[str, Any]], bool]:
        runs, complete = await self._github.check_runs_all(repo, sha,
                                                           installation_id=installation_id)
        return list(runs), complete

    async def statuses(self, repo: str, sha: str, *,
                       installation_id: int) -> tuple[list[Mapping[str, Any]], bool]:
        found, complete = await self._github.combined_status(repo, sha,
                                                             installation_id=installation_id)
        return list(found), complete

    async def reviews(self, repo: str, number: int, *,
                      installation_id: int) -> tuple[list[Mapping[str, Any]], bool]:
        found, complete = await self._github.pull_reviews(repo, number,
                                                          installation_id=installation_id)
        return list(found), complete

    async def paths(self, repo: str, number: int, *,
                    installation_id: int) -> tuple[list[str], bool]:
        """The paths it changes (and renamed from), and whether that is all of them (GitHub
        lists 3,000 at most)."""
        files = await self._github.pull_files(repo, number, installation_id=installation_id)
        found = {str(f.get(key)) for f in files for key in ("filename", "previous_filename")
                 if f.get(key)}
        return sorted(found), len(files) < MAX_PATHS
