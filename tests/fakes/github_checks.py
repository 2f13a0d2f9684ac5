"""The fake GitHub's checks and commit statuses, as GitHub's REST description has them: check runs
created (required `name`, `head_sha`) and updated by the App, listed for a commit with every
app's runs (`check_name`, `status`, `app_id`, `filter=latest|all`, pages, `total_count` of all
that match), each with its `app` and `check_suite`; commit statuses created (required `state`)
and combined per context (the newest of each) by GET /commits/{ref}/status.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

import httpx

from tests.fakes.github_arrange import STATUS_STATES, public
from tests.fakes.github_git import _error

if TYPE_CHECKING:
    from tests.fakes.github import FakeGitHub, Repo

CHECK_STATUSES = ("queued", "in_progress", "completed", "waiting", "requested", "pending")


def _page(request: httpx.Request, items: list[Any]) -> list[Any]:
    size = min(100, int(request.url.params.get("per_page", "30")))
    page = int(request.url.params.get("page", "1"))
    return items[(page - 1) * size: page * size]


def pulls_at(fake: FakeGitHub, repo: Repo, sha: str) -> list[dict[str, Any]]:
    """A check's `pull_requests`: the open pull requests of the same repository (never a
    fork's) whose head is `sha`."""
    minimal = {"id": 0, "url": "", "name": ""}
    return [{"url": f"{fake.host}/repos/{repo.full_name}/pulls/{n}", "id": fake.pull_id(repo, n),
             "number": n,
             "head": {"ref": head, "sha": sha, "repo": {
                 k: fake.repo_json(repo.full_name)[k] for k in minimal}},
             "base": {"ref": base, "sha": repo.branches.get(base), "repo": {
                 k: fake.repo_json(repo.full_name)[k] for k in minimal}}}
            for n, (head, base) in sorted(repo.pulls.items())
            if repo.pull_states[n]["state"] == "open"
            and not repo.pull_info.get(n, {}).get("fork") and fake.pull_head(repo, n) == sha]


def run_json(fake: FakeGitHub, repo: Repo, run: dict[str, Any]) -> dict[str, Any]:
    """A check run as the REST API shows it."""
    return {**public(run), "url": f"{fake.host}/repos/{repo.full_name}/check-runs/{run['id']}",
            "html_url": f"https://github.com/{repo.full_name}/runs/{run['id']}",
            "pull_requests": pulls_at(fake, repo, run["head_sha"])}


def _resolve(repo: Repo, ref: str) -> str:
    """A commit SHA, a branch name or `heads/<branch>` -> the commit."""
    name = ref.removeprefix("refs/").removeprefix("heads/")
    return repo.branches.get(ref) or repo.branches.get(name) or ref


def combined_state(statuses: list[dict[str, Any]]) -> str:
    states = {s["state"] for s in statuses}
    if states & {"failure", "error"}:
        return "failure"
    if not statuses or "pending" in states:
        return "pending"
    return "success"


def latest_statuses(fake: FakeGitHub, repo: str, sha: str) -> list[dict[str, Any]]:
    """The newest status of each context on the commit, newest first."""
    newest: dict[str, dict[str, Any]] = {}
    for status in reversed(fake.statuses):
        if status["_repo"] == repo and status["_sha"] == sha:
            newest.setdefault(status["context"], status)
    return list(newest.values())


def route_checks(fake: FakeGitHub, repo: Repo, request: httpx.Request, rest: str,
                 body: dict[str, Any]) -> httpx.Response | None:
    """The response to a checks or statuses request; None when `rest` is not one."""
    method, params = request.method, request.url.params
    if method == "GET" and (m := re.fullmatch(r"/commits/(.+)/check-runs", rest)):
        sha = _resolve(repo, unquote(m[1]))
        name, status, app_id = params.get("check_name"), params.get("status"), \
            params.get("app_id")
        runs = [r for r in reversed(fake.check_runs) if r["_repo"] == repo.full_name
                and r["head_sha"] == sha and name in (None, r["name"])
                and status in (None, r["status"])
                and app_id in (None, str(r["app"]["id"]))]
        if params.get("filter", "latest") == "latest":
            newest: dict[tuple[str, str], dict[str, Any]] = {}
            for run in runs:  # newest first: the first of each (app, name) is its latest
                newest.setdefault((run["app"]["slug"], run["name"]), run)
            runs = list(newest.values())
        return httpx.Response(200, json={"total_count": len(runs), "check_runs": [
            run_json(fake, repo, r) for r in _page(request, runs)]})
    if method == "POST" and rest == "/check-runs":
        return _create_run(fake, repo, body)
    if method == "PATCH" and (m := re.fullmatch(r"/check-runs/(\d+)", rest)):
        for run in fake.check_runs:
            if run["id"] == int(m[1]) and run["_repo"] == repo.full_name:
                if "status" in body and body["status"] not in CHECK_STATUSES:
                    return _error(422, "Invalid request: status")
                run.update({k: v for k, v in body.items() if k != "output"})
                if "output" in body:
                    run["output"] = {**run.get("output", {}), **body["output"]}
                if "conclusion" in body and body["conclusion"] is not None \
                        and "status" not in body:
                    run["status"] = "completed"
                if run["status"] == "completed" and not run.get("completed_at"):
                    run["completed_at"] = fake.now()
                return httpx.Response(200, json=run_json(fake, repo, run))
        return _error(404, "Not Found")
    if method == "GET" and (m := re.fullmatch(r"/commits/([0-9a-f]{40})/pulls", rest)):
        # The pull requests whose branch holds the commit (here: whose head it is), forks'
        # included, in the list shape.
        from tests.fakes.github_git import simple_pull

        return httpx.Response(200, json=[
            simple_pull(fake.pull_json(repo, n)) for n in sorted(repo.pulls)
            if fake.pull_head(repo, n) == m[1]])
    if method == "GET" and (m := re.fullmatch(r"/commits/(.+)/status", rest)):
        sha = _resolve(repo, unquote(m[1]))
        latest = latest_statuses(fake, repo.full_name, sha)
        if sha not in repo.commits and not latest:
            return _error(422, f"No commit found for SHA: {m[1]}")
        return httpx.Response(200, json={
            "state": combined_state(latest), "sha": sha, "total_count": len(latest),
            "statuses": [{k: v for k, v in public(s).items() if k != "creator"}
                         for s in _page(request, latest)],
            "repository": fake.repo_json(repo.full_name),
            "commit_url": f"{fake.host}/repos/{repo.full_name}/commits/{sha}",
            "url": f"{fake.host}/repos/{repo.full_name}/commits/{sha}/status"})
    if method == "POST" and (m := re.fullmatch(r"/statuses/([0-9a-f]{40})", rest)):
        if body.get("state") not in STATUS_STATES:
            return _error(422, "Invalid request: \"state\" must be one of error, failure, "
                               "pending, success")
        if m[1] not in repo.commits:
            return _error(422, f"No commit found for SHA: {m[1]}")
        made = fake.set_status(repo.full_name, m[1], body.get("context") or "default",
                               body["state"], description=body.get("description"),
                               target_url=body.get("target_url"),
                               creator=f"{fake.app_slug}[bot]")
        return httpx.Response(201, json=public(made))
    return None


def _create_run(fake: FakeGitHub, repo: Repo, body: dict[str, Any]) -> httpx.Response:
    missing = [f for f in ("name", "head_sha") if f not in body]
    if missing or ("output" in body and "summary" not in body["output"]):
        return _error(422, f"Invalid request: missing {missing or ['output.summary']}")
    if body.get("status", "queued") not in CHECK_STATUSES:
        return _error(422, "Invalid request: status")
    status = body.get("status") or ("completed" if body.get("conclusion") else "queued")
    run = {"id": next(fake._ids), "_repo": repo.full_name, "external_id": "",
           "details_url": None, "conclusion": None, "started_at": fake.now(),
           "completed_at": None, **body, "status": status,
           "app": fake.app_json(fake.app_slug),
           "check_suite": {"id": fake.suite_id(repo.full_name, body["head_sha"],
                                               fake.app_slug)}}
    run["output"] = {"title": None, "summary": None, "text": None, "annotations_count": 0,
                     **body.get("output", {})}
    if status == "completed" and not run["completed_at"]:
        run["completed_at"] = fake.now()
    fake.check_runs.append(run)
    return httpx.Response(201, json=run_json(fake, repo, run))
