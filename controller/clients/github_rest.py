"""The GitHub REST operations the controller performs as an installation, each one named
after the endpoint of GitHub's published REST description (api.github.com, 2022-11-28).

Each is one `call` (auth, retries and rate limits are `GitHubApp`'s, in `github.py`) and
shapes its answer; nothing here sends a request by itself or decides anything.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote


class RepositoryOperations:
    """Mixed into `GitHubApp`, which provides `call`."""

    async def call(self, method: str, path: str, *, installation_id: int,
                   json: Mapping[str, Any] | None = None,
                   params: Mapping[str, Any] | None = None) -> Any:
        raise NotImplementedError

    async def repository(self, repo: str, *, installation_id: int) -> dict[str, Any]:
        """GET /repos/{owner}/{repo}"""
        result: dict[str, Any] = await self.call("GET", f"/repos/{repo}",
                                                 installation_id=installation_id)
        return result

    async def branch_head(self, repo: str, branch: str, *, installation_id: int) -> str:
        """GET /repos/{owner}/{repo}/branches/{branch} -> the head commit's SHA."""
        body = await self.call("GET", f"/repos/{repo}/branches/{branch}",
                               installation_id=installation_id)
        return str(body["commit"]["sha"])

    async def branch_revision(self, repo: str, branch: str, *,
                              installation_id: int) -> tuple[str, str]:
        """GET /repos/{owner}/{repo}/branches/{branch} -> (head commit SHA, its tree SHA)."""
        body = await self.call("GET", f"/repos/{repo}/branches/{branch}",
                               installation_id=installation_id)
        return str(body["commit"]["sha"]), str(body["commit"]["commit"]["tree"]["sha"])

    async def commit_tree(self, repo: str, commit_sha: str, *, installation_id: int) -> str:
        """GET /repos/{owner}/{repo}/git/commits/{commit_sha} -> the commit's tree SHA."""
        body = await self.call("GET", f"/repos/{repo}/git/commits/{commit_sha}",
                               installation_id=installation_id)
        return str(body["tree"]["sha"])

    async def pull_files(self, repo: str, pull_number: int, *,
                         installation_id: int) -> list[dict[str, Any]]:
        """GET /repos/{owner}/{repo}/pulls/{pull_number}/files, every page (GitHub lists at
        most 3,000 files)."""
        return await self._pages(f"/repos/{repo}/pulls/{pull_number}/files",
                                 installation_id=installation_id, max_pages=30)

    async def _pages(self, path: str, *, installation_id: int, max_pages: int,
                     params: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
        """Every item of a list endpoint, 100 a page, up to `max_pages` pages."""
        found: list[dict[str, Any]] = []
        for page in range(1, max_pages + 1):
            batch = await self.call("GET", path, installation_id=installation_id,
                                    params={**(params or {}), "per_page": "100",
                                            "page": str(page)})
            found.extend(batch)
            if len(batch) < 100:
                break
        return found

    async def tree(self, repo: str, tree_sha: str, *, installation_id: int,
                   recursive: bool = True) -> dict[str, Any]:
        """GET /repos/{owner}/{repo}/git/trees/{tree_sha}[?recursive=1]"""
        result: dict[str, Any] = await self.call(
            "GET", f"/repos/{repo}/git/trees/{tree_sha}", installation_id=installation_id,
            params={"recursive": "1"} if recursive else None)
        return result

    async def blob(self, repo: str, file_sha: str, *, installation_id: int) -> bytes:
        """GET /repos/{owner}/{repo}/git/blobs/{file_sha} -> the decoded content."""
        body = await self.call("GET", f"/repos/{repo}/git/blobs/{file_sha}",
                               installation_id=installation_id)
        if body.get("encoding") == "base64":
            return base64.b64decode(body["content"])
        return str(body["content"]).encode()

    async def create_check_run(self, repo: str, *, installation_id: int, name: str,
                               head_sha: str, **fields: Any) -> dict[str, Any]:
        """POST /repos/{owner}/{repo}/check-runs (required: name, head_sha)"""
        result: dict[str, Any] = await self.call(
            "POST", f"/repos/{repo}/check-runs", installation_id=installation_id,
            json={"name": name, "head_sha": head_sha, **fields})
        return result

    async def check_runs_for_ref(self, repo: str, ref: str, *, installation_id: int,
                                 check_name: str) -> list[dict[str, Any]]:
        """GET /repos/{owner}/{repo}/commits/{ref}/check-runs?check_name=...&filter=all
        (every run of that name on the commit, newest first; at most 1,000)."""
        runs: list[dict[str, Any]] = []
        for page in range(1, 11):
            body = await self.call("GET", f"/repos/{repo}/commits/{ref}/check-runs",
                                   installation_id=installation_id,
                                   params={"check_name": check_name, "filter": "all",
                                           "per_page": "100", "page": str(page)})
            batch = body.get("check_runs") or []
            runs.extend(batch)
            if len(batch) < 100:
                break
        return runs

    async def pull_request(self, repo: str, pull_number: int, *,
                           installation_id: int) -> dict[str, Any]:
        """GET /repos/{owner}/{repo}/pulls/{pull_number}"""
        result: dict[str, Any] = await self.call("GET", f"/repos/{repo}/pulls/{pull_number}",
                                                 installation_id=installation_id)
        return result

    async def update_check_run(self, repo: str, check_run_id: int, *, installation_id: int,
                               **fields: Any) -> dict[str, Any]:
        """PATCH /repos/{owner}/{repo}/check-runs/{check_run_id}"""
        result: dict[str, Any] = await self.call(
            "PATCH", f"/repos/{repo}/check-runs/{check_run_id}",
            installation_id=installation_id, json=fields)
        return result

    async def open_issues(self, repo: str, *, installation_id: int,
                          labels: str | None = None,
                          max_pages: int = 10) -> list[dict[str, Any]]:
        """GET /repos/{owner}/{repo}/issues?state=open[&labels=...], up to `max_pages` pages
        of 100 (pull requests are listed too, as GitHub does)."""
        return await self._pages(f"/repos/{repo}/issues", installation_id=installation_id,
                                 max_pages=max_pages,
                                 params={"state": "open", **({"labels": labels} if labels
                                                             else {})})

    async def create_issue(self, repo: str, *, installation_id: int, title: str,
                           **fields: Any) -> dict[str, Any]:
        """POST /repos/{owner}/{repo}/issues (required: title)"""
        result: dict[str, Any] = await self.call(
            "POST", f"/repos/{repo}/issues", installation_id=installation_id,
            json={"title": title, **fields})
        return result

    async def update_issue(self, repo: str, issue_number: int, *, installation_id: int,
                           **fields: Any) -> dict[str, Any]:
        """PATCH /repos/{owner}/{repo}/issues/{issue_number}"""
        result: dict[str, Any] = await self.call(
            "PATCH", f"/repos/{repo}/issues/{issue_number}", installation_id=installation_id,
            json=fields)
        return result

    async def create_issue_comment(self, repo: str, issue_number: int, *, installation_id: int,
                                   body: str) -> dict[str, Any]:
        """POST /repos/{owner}/{repo}/issues/{issue_number}/comments (required: body)"""
        result: dict[str, Any] = await self.call(
            "POST", f"/repos/{repo}/issues/{issue_number}/comments",
            installation_id=installation_id, json={"body": body})
        return result

    async def issue_comments(self, repo: str, issue_number: int, *, installation_id: int,
                             max_pages: int = 10) -> list[dict[str, Any]]:
        """GET /repos/{owner}/{repo}/issues/{issue_number}/comments, oldest first."""
        return await self._pages(f"/repos/{repo}/issues/{issue_number}/comments",
                                 installation_id=installation_id, max_pages=max_pages)

    async def react_to_comment(self, repo: str, comment_id: int, *, installation_id: int,
                               content: str) -> dict[str, Any]:
        """POST /repos/{owner}/{repo}/issues/comments/{comment_id}/reactions (required:
        content); 200 when the reaction was there already, 201 when made."""
        result: dict[str, Any] = await self.call(
            "POST", f"/repos/{repo}/issues/comments/{comment_id}/reactions",
            installation_id=installation_id, json={"content": content})
        return result

    async def collaborator_permission(self, repo: str, username: str, *,
                                      installation_id: int) -> str:
        """GET /repos/{owner}/{repo}/collaborators/{username}/permission: the `role_name`
        when it is a built-in role (`admin`, `maintain`, `write`, `triage`, `read`), else
        `permission` (`admin`, `write`, `read` or `none`: a custom role reads as its base)."""
        found = await self.call("GET", f"/repos/{repo}/collaborators/{quote(username)}"
                                       "/permission", installation_id=installation_id)
        role = str(found.get("role_name") or "")
        return role if role in ("admin", "maintain", "write", "triage", "read") else \
            str(found.get("permission") or "none")
