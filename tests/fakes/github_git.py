"""The fake GitHub's Git Data API and pull requests (what a `/claude` task writes), as GitHub's
REST description has them: required fields checked (422 otherwise), blobs, trees on a
`base_tree` (an entry with `"sha": null` deletes its path), commits with parents, refs created
once (`Reference already exists`) and moved by fast-forward only unless forced, pull requests
opened once per head branch and listed by `head=owner:branch`.
"""

from __future__ import annotations

import base64
import hashlib
import re
from typing import TYPE_CHECKING, Any

import httpx

if TYPE_CHECKING:
    from tests.fakes.github import FakeGitHub, Repo

# Fields of a pull request GET /pulls/{n} has that a list (and a review's webhook) lacks: GitHub's
# "pull-request-simple" shape.
FULL_ONLY = ("merged", "mergeable", "mergeable_state", "rebaseable", "merged_by", "comments",
             "review_comments", "maintainer_can_modify", "commits", "additions", "deletions",
             "changed_files")


def simple_pull(pull: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in pull.items() if k not in FULL_ONLY}


def _sha(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()


def _error(status: int, message: str) -> httpx.Response:
    return httpx.Response(status, json={"message": message,
                                        "documentation_url": "https://docs.github.com/rest"})


def _ancestor(repo: Repo, old: str, new: str) -> bool:
    seen, todo = set(), [new]
    while todo:
        sha = todo.pop()
        if sha == old:
            return True
        if sha not in seen:
            seen.add(sha)
            todo.extend(repo.parents.get(sha, []))
    return False


def route_git(fake: FakeGitHub, repo: Repo, request: httpx.Request, rest: str,
              body: dict[str, Any]) -> httpx.Response | None:
    """The response to a Git Data or pulls request; None when `rest` is not one."""
    method = request.method
    if method == "GET" and (m := re.fullmatch(r"/git/ref/heads/(.+)", rest)):
        head = repo.branches.get(m[1])
        if head is None:
            return _error(404, "Not Found")
        return httpx.Response(200, json={"ref": f"refs/heads/{m[1]}",
                                         "object": {"sha": head, "type": "commit"}})
    if method == "POST" and rest == "/git/blobs":
        if not isinstance(body.get("content"), str):
            return _error(422, "Invalid request: \"content\" wasn't supplied.")
        data = (base64.b64decode(body["content"]) if body.get("encoding") == "base64"
                else body["content"].encode())
        sha = _sha(b"blob %d\0" % len(data) + data)
        repo.blobs[sha] = data
        return httpx.Response(201, json={"sha": sha, "url": f"{fake.host}/repos/"
                                                            f"{repo.full_name}/git/blobs/{sha}"})
    if method == "POST" and rest == "/git/trees":
        return _create_tree(fake, repo, body)
    if method == "POST" and rest == "/git/commits":
        if not isinstance(body.get("message"), str) or not isinstance(body.get("tree"), str):
            return _error(422, "Invalid request: \"message\" and \"tree\" are required.")
        if body["tree"] not in repo.trees or any(p not in repo.commits
                                                 for p in body.get("parents") or []):
            return _error(422, "Tree SHA does not exist or a parent SHA does not exist")
        parents = list(body.get("parents") or [])
        sha = _sha(f"{body['tree']}{body['message']}{parents}".encode())
        repo.commits[sha] = body["tree"]
        repo.messages[sha] = body["message"]
        repo.parents[sha] = parents
        repo.files[sha] = {e["path"]: e["sha"] for e in fake._flatten(repo, body["tree"])
                           if e["type"] == "blob"}
        return httpx.Response(201, json={"sha": sha, "tree": {"sha": body["tree"]},
                                         "message": body["message"],
                                         "parents": [{"sha": p} for p in parents]})
    if method == "POST" and rest == "/git/refs":
        ref, target = body.get("ref"), body.get("sha")
        if not isinstance(ref, str) or not isinstance(target, str):
            return _error(422, "Invalid request: \"ref\" and \"sha\" are required.")
        if not ref.startswith("refs/") or ref.count("/") < 2:
            return _error(422, "Reference name must start with 'refs/' and have two slashes")
        branch = ref.removeprefix("refs/heads/")
        if branch in repo.branches:
            return _error(422, "Reference already exists")
        if target not in repo.commits:
            return _error(422, "Object does not exist")
        repo.branches[branch] = target
        return httpx.Response(201, json={"ref": ref, "object": {"sha": target, "type": "commit"}})
    if method == "PATCH" and (m := re.fullmatch(r"/git/refs/heads/(.+)", rest)):
        new = body.get("sha")
        if not isinstance(new, str):
            return _error(422, "Invalid request: \"sha\" wasn't supplied.")
        current = repo.branches.get(m[1])
        if current is None:
            return _error(422, "Reference does not exist")
        if new not in repo.commits:
            return _error(422, "Object does not exist")
        if not body.get("force") and not _ancestor(repo, current, new):
            return _error(422, "Update is not a fast forward")
        repo.branches[m[1]] = new
        return httpx.Response(200, json={"ref": f"refs/heads/{m[1]}",
                                         "object": {"sha": new, "type": "commit"}})
    if method == "GET" and rest == "/pulls":
        # Newest first (GitHub's default sort, `created` descending), GitHub's "simple" shape
        # (no mergeability), `head` as `owner:branch`, `base`, paged.
        params = request.url.params
        head, base = params.get("head"), params.get("base")
        state = params.get("state", "open")
        found = [simple_pull(fake.pull_json(repo, n)) for n in sorted(repo.pulls, reverse=True)
                 if state in ("all", repo.pull_states[n]["state"])]
        found = [p for p in found if head in (None, p["head"]["label"])
                 and base in (None, p["base"]["ref"])]
        size, page = min(100, int(params.get("per_page", "30"))), int(params.get("page", "1"))
        return httpx.Response(200, json=found[(page - 1) * size: page * size])
    if method == "POST" and rest == "/pulls":
        return _create_pull(fake, repo, body)
    return None


def _create_tree(fake: FakeGitHub, repo: Repo, body: dict[str, Any]) -> httpx.Response:
    entries = body.get("tree")
    if not isinstance(entries, list):
        return _error(422, "Invalid request: \"tree\" wasn't supplied.")
    files: dict[str, str] = {}
    base = body.get("base_tree")
    if base is not None:
        if base not in repo.trees:
            return _error(422, "base_tree is not a valid tree")
        files = {e["path"]: e["sha"] for e in fake._flatten(repo, base) if e["type"] == "blob"}
    for entry in entries:
        if not isinstance(entry, dict) or not all(k in entry for k in ("path", "mode", "type")):
            return _error(422, "Invalid tree info: path, mode and type are required")
        if entry.get("sha") is None and entry.get("content") is None:
            if entry["path"] not in files:
                return _error(422, f"GitRPC::BadObjectState: {entry['path']} does not exist")
            del files[entry["path"]]
        elif entry.get("sha") is not None:
            if entry["sha"] not in repo.blobs:
                return _error(422, "GitRPC::BadObjectState")
            files[entry["path"]] = entry["sha"]
        else:
            data = str(entry["content"]).encode()
            sha = _sha(b"blob %d\0" % len(data) + data)
            repo.blobs[sha] = data
            files[entry["path"]] = sha
    sha = fake._tree(repo, files)
    return httpx.Response(201, json={"sha": sha, "truncated": False,
                                     "tree": fake._flatten(repo, sha)})


def _create_pull(fake: FakeGitHub, repo: Repo, body: dict[str, Any]) -> httpx.Response:
    head, base = body.get("head"), body.get("base")
    if not isinstance(head, str) or not isinstance(base, str) or (
            "title" not in body and "issue" not in body):
        return _error(422, "Invalid request: \"head\", \"base\" and \"title\" are required.")
    branch = head.partition(":")[2] or head
    if branch not in repo.branches or base not in repo.branches:
        return _error(422, "Validation Failed: head or base does not exist")
    for n, (h, _) in repo.pulls.items():
        if h == branch and repo.pull_states[n]["state"] == "open":
            return _error(422, f"A pull request already exists for {head}.")
    taken = [*repo.pulls, *(i["number"] for i in fake.issues.get(repo.full_name, []))]
    number = max(taken, default=0) + 1
    repo.pulls[number] = (branch, base)
    repo.pull_states[number] = {"state": "open", "merged": False, "merged_at": None}
    repo.pull_info[number] = {"title": body.get("title", ""), "body": body.get("body") or "",
                              "author": f"{fake.app_slug}[bot]", "draft": bool(body.get("draft")),
                              "created_at": fake.now()}
    return httpx.Response(201, json=fake.pull_json(repo, number))
