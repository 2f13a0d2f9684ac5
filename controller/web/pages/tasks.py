"""The `/claude` tasks' pages: `/tasks` (newest first, paged by id, filtered by state and
repository: state, where, who asked, tokens, US dollars, tool calls, the pull request) and
`/tasks/{id}` (one task: its command, its history with each step's reason, its cost, the
change it pushed and its pull request, and the keys that carried it out).

The same reads and shape as `GET /api/tasks` and `/api/tasks/{id}` (controller/web/tasks.py
`task_json`). Reads only. Commands, titles and summaries come from commenters and Claude: the
templates escape them; a pull request's address is linked only when it is an https one.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aiohttp import web

from controller.web.json import Int, Text
from controller.web.keys import STORE
from controller.web.pages.reading import (
    Missing,
    args,
    next_url,
    page,
    path_number,
    scrub,
    secrets_of,
)
from controller.web.pages.render import render
from controller.web.pages.session import Viewer
from controller.web.tasks import STATES, task_json

TASKS = 50  # tasks on one page


@page
async def tasks(request: web.Request, who: Viewer) -> web.Response:
    q = args(request, {"state": Text(choices=STATES), "repo": Text(), "before": Int()})
    rows = await request.app[STORE].fetch("claude_tasks_list", q["before"], q["state"],
                                          q["repo"], TASKS + 1)
    items = [_shown(task_json(r)) for r in rows[:TASKS]]
    return render(request, who, "tasks.html", {
        "title": "Tasks", "tasks": items, "states": STATES, "state": q["state"],
        "repo": q["repo"],
        "next": next_url(request, before=items[-1]["id"]) if len(rows) > TASKS else None})


@page
async def task(request: web.Request, who: Viewer) -> web.Response:
    args(request, {})
    task_id = path_number(request, "id", "a task's id")
    row = await request.app[STORE].fetchrow("claude_task_get", task_id)
    if row is None:
        raise Missing(f"no task {task_id}")
    found = _shown(task_json(row, detail=True))
    secrets = secrets_of(request)
    found["summary"] = scrub(found["summary"], secrets)
    found["command"] = scrub(found["command"], secrets)
    where = f"{found['repo']}#{found['issue']}@{found['comment_id']}"
    return render(request, who, "task.html", {
        "title": f"Task {task_id}", "task": found,
        "history": [{**h, "at": _when(h.get("at"))} for h in found["history"] or []
                    if isinstance(h, dict)],
        "keys": [("The command", f"command:{where}"), ("The task", f"task:{where}"),
                 ("Its work with Claude", f"task-work:{task_id}"),
                 ("Its push and pull request", f"task-push:{task_id}")]})


def _when(at: Any) -> datetime | str:
    """A history step's time (ISO text in the task's JSON) as a time, when it reads as one."""
    try:
        return datetime.fromisoformat(str(at))
    except ValueError:
        return str(at)


def _shown(item: dict[str, Any]) -> dict[str, Any]:
    """The API's item, with the pull request's address kept only when it is https."""
    pull = item["pull_request"]
    if pull is not None and not str(pull.get("url") or "").startswith("https://"):
        item["pull_request"] = {**pull, "url": None}
    return item


def add_routes(app: web.Application) -> None:
    app.router.add_get("/tasks", tasks)
    app.router.add_get("/tasks/{id}", task)
