"""The GitHub REST operations that write a change to a branch and open its pull request (the
Git Data API, pulls), each named after the endpoint of GitHub's published REST description
(api.github.com, 2022-11-28), with the fields it marks required.

Each is one `call` (auth, retries and rate limits are `GitHubApp`'s); nothing here decides
which branch may be written: `controller/providers/github_changes.py` does.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from controller.clients.github_errors import GitHubError
from controller.clients.github_rest import RepositoryOperations


class GitDataOperations(RepositoryOperations):
    """Mixed into `GitHubApp`, which provides `call`."""

    async def issue(self, repo: str, issue_number: int, *,
                    installation_id: int) -> dict[str, Any]:
        """GET /repos/{owner}/{repo}/issues/{issue_number} (a pull request too)"""
        result: dict[str, Any] = await self.call(
            "GET", f"/repos/{repo}/issues/{issue_number}", installation_id=installation_id)
        return result

    async def commit(self, repo: str, commit_sha: str, *,
                     installation_id: int) -> dict[str, Any]:
        """GET /repos/{owner}/{repo}/git/commits/{commit_sha}"""
        result: dict[str, Any] = await self.call(
            "GET", f"/repos/{repo}/git/commits/{commit_sha}", installation_id=installation_id)
        return result

    async def branch_ref(self, repo: str, branch: str, *, installation_id: int) -> str | None:
        """GET /repos/{owner}/{repo}/git/ref/heads/{branch} -> its commit SHA; None if none."""
        try:
            found = await self.call("GET", f"/repos/{repo}/git/ref/heads/{quote(branch)}",
                                    installation_id=installation_id)
        except GitHubError as exc:
            if exc.status == 404:
                return None
            raise
        return str(found["object"]["sha"])

    async def create_blob(self, repo: str, content: str, *, installation_id: int) -> str:
        """POST /repos/{owner}/{repo}/git/blobs (required: content) -> the blob's SHA."""
        made = await self.call("POST", f"/repos/{repo}/git/blobs",
                               installation_id=installation_id,
                               json={"content": content, "encoding": "utf-8"})
        return str(made["sha"])

    async def create_tree(self, repo: str, base_tree: str, entries: list[dict[str, Any]], *,
                          installation_id: int) -> str:
        """POST /repos/{owner}/{repo}/git/trees (required: tree) on `base_tree`; an entry
        whose `sha` is None deletes its path. -> the tree's SHA."""
        made = await self.call("POST", f"/repos/{repo}/git/trees",
                               installation_id=installation_id,
                               json={"base_tree": base_tree, "tree": entries})
        return str(made["sha"])

    async def create_commit(self, repo: str, *, message: str, tree: str, parents: list[str],
                            installation_id: int) -> str:
        """POST /repos/{owner}/{repo}/git/commits (required: message, tree) -> its SHA."""
        made = await self.call("POST", f"/repos/{repo}/git/commits",
                               installation_id=installation_id,
                               json={"message": message, "tree": tree, "parents": parents})
        return str(made["sha"])

    async def create_branch(self, repo: str, branch: str, sha: str, *,
                            installation_id: int) -> None:
        """POST /repos/{owner}/{repo}/git/refs (required: ref, sha)"""
        await self.call("POST", f"/repos/{repo}/git/refs", installation_id=installation_id,
                        json={"ref": f"refs/heads/{branch}", "sha": sha})

    async def move_branch(self, repo: str, branch: str, sha: str, *,
                          installation_id: int) -> None:
        """PATCH /repos/{owner}/{repo}/git/refs/heads/{branch} (required: sha), fast-forward
        only (`force: false`: GitHub answers 422 when the branch moved)."""
        await self.call("PATCH", f"/repos/{repo}/git/refs/heads/{quote(branch)}",
                        installation_id=installation_id, json={"sha": sha, "force": False})

    async def pulls_from(self, repo: str, branch: str, *,
                         installation_id: int) -> list[dict[str, Any]]:
        """GET /repos/{owner}/{repo}/pulls?head={owner}:{branch}&state=open (newest first)"""
        owner = repo.partition("/")[0]
        result: list[dict[str, Any]] = await self.call(
            "GET", f"/repos/{repo}/pulls", installation_id=installation_id,
            params={"head": f"{owner}:{branch}", "state": "open", "per_page": "10"})
        return result

    async def create_pull(self, repo: str, *, head: str, base: str, title: str, body: str,
                          installation_id: int) -> dict[str, Any]:
        """POST /repos/{owner}/{repo}/pulls (required: head, base; title)"""
        result: dict[str, Any] = await self.call(
            "POST", f"/repos/{repo}/pulls", installation_id=installation_id,
            json={"head": head, "base": base, "title": title, "body": body})
        return result
