"""The GitHub REST operations auto-merge performs on pull requests, each named after its
endpoint in GitHub's published REST description (api.github.com, 2022-11-28): what a pull
request's head has run (check runs, commit statuses), who reviewed it, the merge with the head
SHA that was checked, the update of a branch that is behind, and the deletion of a merged
branch.

Each is one `call` (or a few pages); auth, retries and rate limits are `GitHubApp`'s. The
writes are never resent blind by the client (`github.py`); what a refusal means (405, 409, 422
are "look again") is the runner's to say. Nothing here decides anything.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from controller.clients.github_git import GitDataOperations


class PullOperations(GitDataOperations):
    """Mixed into `GitHubApp`, which provides `call`."""

    async def open_pulls(self, repo: str, *, installation_id: int,
                         max_pages: int = 10) -> list[dict[str, Any]]:
        """GET /repos/{owner}/{repo}/pulls?state=open, up to `max_pages` pages of 100."""
        return await self._pages(f"/repos/{repo}/pulls", installation_id=installation_id,
                                 max_pages=max_pages, params={"state": "open"})

    async def commit_pulls(self, repo: str, commit_sha: str, *,
                           installation_id: int) -> list[dict[str, Any]]:
        """GET /repos/{owner}/{repo}/commits/{commit_sha}/pulls: the pull requests that
        contain the commit (open ones whose head it is among them)."""
        found: list[dict[str, Any]] = await self.call(
            "GET", f"/repos/{repo}/commits/{commit_sha}/pulls", installation_id=installation_id,
            params={"per_page": "100"})
        return found

    async def pull_reviews(self, repo: str, pull_number: int, *,
                           installation_id: int) -> tuple[list[dict[str, Any]], bool]:
        """GET /repos/{owner}/{repo}/pulls/{pull_number}/reviews, oldest first, up to 3,000;
        and whether that is all of them."""
        pages = 30
        found = await self._pages(f"/repos/{repo}/pulls/{pull_number}/reviews",
                                  installation_id=installation_id, max_pages=pages)
        return found, len(found) < pages * 100

    async def check_runs_all(self, repo: str, ref: str, *,
                             installation_id: int) -> tuple[list[dict[str, Any]], bool]:
        """GET /repos/{owner}/{repo}/commits/{ref}/check-runs?filter=all: every run on the
        commit, every app's, re-runs included (at most 1,000); and whether that is all."""
        runs: list[dict[str, Any]] = []
        total = 0
        for page in range(1, 11):
            body = await self.call("GET", f"/repos/{repo}/commits/{ref}/check-runs",
                                   installation_id=installation_id,
                                   params={"filter": "all", "per_page": "100",
                                           "page": str(page)})
            batch = body.get("check_runs") or []
            total = int(body.get("total_count") or 0)
            runs.extend(batch)
            if len(batch) < 100 or len(runs) >= total:
                break
        return runs, len(runs) >= total

    async def combined_status(self, repo: str, ref: str, *,
                              installation_id: int) -> tuple[list[dict[str, Any]], bool]:
        """GET /repos/{owner}/{repo}/commits/{ref}/status: the newest status of each context
        (at most 1,000, 100 a page); and whether that is all of them."""
        statuses: list[dict[str, Any]] = []
        total = 0
        for page in range(1, 11):
            body = await self.call("GET", f"/repos/{repo}/commits/{ref}/status",
                                   installation_id=installation_id,
                                   params={"per_page": "100", "page": str(page)})
            batch = body.get("statuses") or []
            total = int(body.get("total_count") or 0)
            statuses.extend(batch)
            if len(batch) < 100 or len(statuses) >= total:
                break
        return statuses, len(statuses) >= total

    async def merge_pull(self, repo: str, pull_number: int, *, installation_id: int, sha: str,
                         merge_method: str, commit_title: str | None = None
                         ) -> dict[str, Any]:
        """PUT /repos/{owner}/{repo}/pulls/{pull_number}/merge with the head SHA that must
        still be the head (409 when it moved), 405 when GitHub will not merge it now."""
        body: dict[str, Any] = {"sha": sha, "merge_method": merge_method}
        if commit_title is not None:
            body["commit_title"] = commit_title
        result: dict[str, Any] = await self.call(
            "PUT", f"/repos/{repo}/pulls/{pull_number}/merge", installation_id=installation_id,
            json=body)
        return result

    async def update_pull_branch(self, repo: str, pull_number: int, *, installation_id: int,
                                 expected_head_sha: str) -> dict[str, Any]:
        """PUT /repos/{owner}/{repo}/pulls/{pull_number}/update-branch (202; 422 when the
        head is no longer `expected_head_sha`)."""
        result: dict[str, Any] = await self.call(
            "PUT", f"/repos/{repo}/pulls/{pull_number}/update-branch",
            installation_id=installation_id, json={"expected_head_sha": expected_head_sha})
        return result or {}

    async def delete_branch(self, repo: str, branch: str, *, installation_id: int) -> None:
        """DELETE /repos/{owner}/{repo}/git/refs/heads/{branch} (204; 422 when it is gone)."""
        await self.call("DELETE", f"/repos/{repo}/git/refs/heads/{quote(branch, safe='/')}",
                        installation_id=installation_id)
