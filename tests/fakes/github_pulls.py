"""The fake GitHub's pull request operations beyond creating one, as GitHub's REST API answers
them: GET /pulls/{n} (mergeability `null` while GitHub computes), its reviews (oldest first),
the merge (405 when GitHub will not merge it, 409 when `sha` is not the head any more), the
update of a branch that is behind its base (a merge commit of the base into the head; 422 when
`expected_head_sha` is stale, the base has nothing new or they conflict) and the deletion of a
branch (DELETE /git/refs/heads/...; 422 when there is no such reference; an open pull request
from or into it is closed, as GitHub does).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

import httpx

from tests.fakes.github_arrange import public
from tests.fakes.github_git import _ancestor, _error

if TYPE_CHECKING:
    from tests.fakes.github import FakeGitHub, Repo

MERGE_METHODS = ("merge", "squash", "rebase")
NOT_MERGEABLE = "Pull Request is not mergeable"


def _page(request: httpx.Request, items: list[Any]) -> list[Any]:
    size = min(100, int(request.url.params.get("per_page", "30")))
    page = int(request.url.params.get("page", "1"))
    return items[(page - 1) * size: page * size]


def route_pulls(fake: FakeGitHub, repo: Repo, request: httpx.Request, rest: str,
                body: dict[str, Any]) -> httpx.Response | None:
    """The response to a pull request or ref deletion request; None when `rest` is not one."""
    method = request.method
    if method == "DELETE" and (m := re.fullmatch(r"/git/refs/(.+)", rest)):
        return _delete_ref(fake, repo, unquote(m[1]))
    m = re.fullmatch(r"/pulls/(\d+)(/reviews|/merge|/update-branch)?", rest)
    if not m:
        return None
    number, what = int(m[1]), m[2] or ""
    if number not in repo.pulls:
        return _error(404, "Not Found") if (method, what) in (
            ("GET", ""), ("GET", "/reviews"), ("PUT", "/merge"),
            ("PUT", "/update-branch")) else None
    if method == "GET" and what == "":
        return httpx.Response(200, json=fake.read_pull(repo, number))
    if method == "GET" and what == "/reviews":
        listed = fake.reviews.get((repo.full_name, number), [])
        return httpx.Response(200, json=[public(r) for r in _page(request, listed)])
    if method == "PUT" and what == "/merge":
        return _merge(fake, repo, number, body)
    if method == "PUT" and what == "/update-branch":
        return _update_branch(fake, repo, number, body)
    return None


def _merge(fake: FakeGitHub, repo: Repo, number: int, body: dict[str, Any]) -> httpx.Response:
    method = body.get("merge_method", "merge")
    if method not in MERGE_METHODS:
        return _error(422, "Invalid request: merge_method must be one of merge, squash, "
                           "rebase")
    for name in ("commit_title", "commit_message", "sha"):
        if name in body and not isinstance(body[name], str):
            return _error(422, f"Invalid request: {name} is not a string")
    state = repo.pull_states[number]
    if state["state"] != "open" or state.get("merged"):
        return _error(405, NOT_MERGEABLE)
    head = fake.pull_head(repo, number)
    if "sha" in body and body["sha"] != head:
        return _error(409, "Head branch was modified. Review and try the merge again.")
    if repo.pull_info.get(number, {}).get("draft"):
        return _error(405, "Pull Request is still a draft")
    mergeable, mergeable_state = fake.mergeability(repo, number)
    if not mergeable or mergeable_state in ("dirty", "blocked"):
        return _error(405, NOT_MERGEABLE)
    if mergeable_state == "behind":  # branch protection: branches must be up to date
        return _error(405, "Head branch is not up to date with the base branch")
    made = fake.do_merge(repo, number, method, body.get("commit_title"),
                         body.get("commit_message"))
    fake.merges.append({"repo": repo.full_name, "number": number, "sha": head,
                        "method": method, "commit": made})
    return httpx.Response(200, json={"sha": made, "merged": True,
                                     "message": "Pull Request successfully merged"})


def _update_branch(fake: FakeGitHub, repo: Repo, number: int,
                   body: dict[str, Any]) -> httpx.Response:
    head_ref, base_ref = repo.pulls[number]
    head, base = fake.pull_head(repo, number), repo.branches.get(base_ref)
    if repo.pull_states[number]["state"] != "open" or head is None or base is None:
        return _error(422, "Pull request is closed")  # GitHub's wording not checked
    expected = body.get("expected_head_sha")
    if expected is not None and expected != head:
        return _error(422, "expected head sha didn't match current head ref.")
    if _ancestor(repo, base, head):
        return _error(422, "There are no new commits on the base branch.")
    if fake.mergeability(repo, number)[1] == "dirty":
        return _error(422, "merge conflict between base and head")
    made = fake.make_commit(repo, fake.merged_files(repo, head, base), [head, base],
                            f"Merge branch '{base_ref}' into {head_ref}")
    repo.branches[head_ref] = made
    return httpx.Response(202, json={
        "message": "Updating pull request branch.",
        "url": f"https://github.com/{repo.full_name}/pull/{number}"})


def _delete_ref(fake: FakeGitHub, repo: Repo, ref: str) -> httpx.Response:
    """DELETE /git/refs/{ref}: only branches (`heads/...`) are modelled."""
    branch = ref.removeprefix("refs/").removeprefix("heads/") \
        if ref.startswith(("heads/", "refs/heads/")) else None
    forks = {repo.pulls[n][0] for n in repo.pulls if repo.pull_info.get(n, {}).get("fork")}
    if branch is None or branch not in repo.branches or branch in forks:
        return _error(422, "Reference does not exist")
    for number, (head, base) in repo.pulls.items():
        if repo.pull_states[number]["state"] == "open" and branch in (head, base):
            info = repo.pull_info.setdefault(number, {})
            info["head_sha"] = fake.pull_head(repo, number)
            repo.pull_states[number] = {**repo.pull_states[number], "state": "closed",
                                        "closed_at": fake.now()}
    del repo.branches[branch]
    fake.deleted_refs.append((repo.full_name, branch))
    return httpx.Response(204)
