"""The `/claude` tasks API: `GET /api/tasks` (newest first; `state`, `repo`, `before`, `limit`)
and `GET /api/tasks/{id}` (with its history: every step and its reason, and the change it
pushed or would push).

Each task shows its state and reason, who asked what where, tokens, US dollars, tool calls,
the branch and the pull request. Behind P38_API_TOKEN like the rest of /api. Reads only.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiohttp import web

from controller.web.json import BadQuery, Int, Text, answer, expect_continue, problem, query
from controller.web.keys import STORE

STATES = ("RECEIVED", "AUTHORIZED", "WORKING", "PR_OPENED", "FAILED", "REFUSED", "CANCELLED",
          "DRY_RUN")


def task_json(row: Mapping[str, Any], *, detail: bool = False) -> dict[str, Any]:
    tokens = {k: row[k] for k in ("input_tokens", "output_tokens", "cache_read_tokens",
                                  "cache_write_tokens")}
    change = row["change"] or {}
    item = {
        "id": row["id"], "repo": row["repo"], "issue": row["issue"],
        "comment_id": row["comment_id"], "on_pull": row["on_pull"],
        "requested_by": row["requested_by"], "command": row["command"],
        "state": row["state"], "reason": row["reason"], "model": row["model"],
        "tokens": sum(tokens.values()), **tokens, "usd": float(row["usd"]),
        "tool_calls": row["tool_calls"], "retry_of": row["retry_of"],
        "branch": row["branch"], "base_branch": row["base_branch"],
        "base_sha": row["base_sha"], "commit_sha": row["commit_sha"],
        "pull_request": ({"number": row["pull_number"], "url": row["pull_url"]}
                         if row["pull_number"] else None),
        "title": row["title"], "untrusted_input": list(row["untrusted_input"] or ()),
        "files": [{"path": p, "deleted": c.get("content") is None}
                  for p, c in sorted(change.items())],
        "created_at": row["created_at"], "updated_at": row["updated_at"],
        "finished_at": row["finished_at"]}
    if detail:
        item.update(summary=row["summary"], history=row["history"])
    return item


async def list_tasks(request: web.Request) -> web.Response:
    q = query(request, {"state": Text(), "repo": Text(), "before": Int(),
                        "limit": Int(hi=500, default=50)})
    if q["state"] is not None and q["state"] not in STATES:
        raise BadQuery(f"state must be one of {', '.join(STATES)}")
    rows = await request.app[STORE].fetch("claude_tasks_list", q["before"], q["state"],
                                          q["repo"], q["limit"])
    items = [task_json(r) for r in rows]
    return answer({"items": items,
                   "next": items[-1]["id"] if len(items) == q["limit"] else None})


async def show_task(request: web.Request) -> web.Response:
    raw = request.match_info["id"]
    if not (raw.isascii() and raw.isdigit() and 0 < len(raw) < 19 and int(raw) > 0):
        raise BadQuery(f"a task id is a positive integer, not {raw[:20]!r}")
    row = await request.app[STORE].fetchrow("claude_task_get", int(raw))
    if row is None:
        return problem(404, f"no task {int(raw)}")
    return answer(task_json(row, detail=True))


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/tasks", list_tasks, expect_handler=expect_continue)
    app.router.add_get("/api/tasks/{id}", show_task, expect_handler=expect_continue)
