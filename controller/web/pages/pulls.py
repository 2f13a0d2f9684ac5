"""The pull requests' pages: `/pulls` (every pull request auto-merge tracks, paged by name,
filtered by repository and state: its state, status and what auto-merge last judged, with the
blockers) and `/pulls/{owner}/{repo}/{n}` (one: its head, its blockers in the words of its
`p38/automerge` check run, the merge it made, and the `/claude` tasks that made or worked on
it).

The same shape as `GET /api/pulls` and `/api/pulls/{owner}/{repo}/{n}` (controller/web/pulls.py
`pull_json`), a page at a time; the page orders by name (the primary key's order, so paging
stays on the index) where the API shows the most recently changed first. Reads only. Titles
and blockers quote GitHub's text: the templates escape them.
"""

from __future__ import annotations

from aiohttp import web

from controller.web.json import Text
from controller.web.keys import STORE
from controller.web.pages.reading import Missing, args, next_url, page, path_number, path_value
from controller.web.pages.render import render
from controller.web.pages.session import Viewer
from controller.web.pulls import STATES, pull_json
from controller.web.tasks import task_json

PULLS = 50  # pull requests on one page


@page
async def pulls(request: web.Request, who: Viewer) -> web.Response:
    q = args(request, {"repo": Text(), "state": Text(choices=STATES), "after": Text()})
    rows = await request.app[STORE].fetch("page_pulls", q["after"], q["repo"], q["state"],
                                          PULLS + 1)
    items = [{**pull_json(r), "name": r["name"]} for r in rows[:PULLS]]
    return render(request, who, "pulls.html", {
        "title": "Pull requests", "pulls": items, "states": STATES, "state": q["state"],
        "repo": q["repo"],
        "next": next_url(request, after=items[-1]["name"]) if len(rows) > PULLS else None})


@page
async def pull(request: web.Request, who: Viewer) -> web.Response:
    args(request, {})
    repo = f"{path_value(request, 'owner')}/{path_value(request, 'repo')}"
    number = path_number(request, "n", "a pull request's number", hi=2**31 - 1)
    store = request.app[STORE]
    row = await store.fetchrow("pull_get", f"{repo}#{number}")
    if row is None:
        raise Missing(f"no tracked pull request {repo}#{number} (the Pull requests page "
                      "lists them)")
    tasks = [task_json(t) for t in await store.fetch("claude_tasks_of_pull", repo, number)]
    return render(request, who, "pull.html", {
        "title": f"Pull request {repo}#{number}", "pull": pull_json(row), "name": row["name"],
        "key": f"pull:{row['name']}", "tasks": tasks})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/pulls", pulls)
    app.router.add_get("/pulls/{owner}/{repo}/{n}", pull)
