"""The pull requests API: `GET /api/pulls` (`repo`, `state`, `limit`; the most recently
changed first) and `GET /api/pulls/{owner}/{repo}/{n}`.

Each tracked pull request with its state-machine state (open, closed, merged), its head, its
status, and what auto-merge last judged of it: in scope or why not, the blockers in the words
of its `p38/automerge` check run, and the merge it made. Behind P38_API_TOKEN like the rest of
/api. Reads only.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiohttp import web

from controller.web.json import Int, Text, answer, expect_continue, path_text, problem, query
from controller.web.keys import STORE
from reconcilers.automerge.actions import explain

STATES = ("open", "closed", "merged")


def pull_json(row: Mapping[str, Any]) -> dict[str, Any]:
    data: Mapping[str, Any] = row["data"] or {}
    repo, _, number = str(row["name"]).rpartition("#")
    automerge: Mapping[str, Any] = data.get("automerge") or {}
    return {
        "repo": repo, "number": int(number) if number.isdigit() else None,
        "state": row["state"], "title": data.get("title"), "head_sha": data.get("head_sha"),
        "head_ref": data.get("head_ref"), "base_ref": data.get("base_ref"),
        "status": ({"status": row["status"], "reason": row["reason"],
                    "message": row["message"]} if row["status"] else None),
        "automerge": ({"in_scope": bool(automerge.get("in_scope")),
                       "why": automerge.get("why") or None,
                       "blockers": list(automerge.get("blockers") or []),
                       "merge": automerge.get("merge"), "says": explain(automerge)}
                      if automerge else None),
        "updated_at": row["updated_at"]}


async def list_pulls(request: web.Request) -> web.Response:
    q = query(request, {"repo": Text(), "state": Text(choices=STATES),
                        "limit": Int(hi=500, default=100)})
    rows = await request.app[STORE].fetch("pulls_list", q["repo"], q["state"], q["limit"])
    return answer({"items": [pull_json(r) for r in rows]})


async def show_pull(request: web.Request) -> web.Response:
    owner = path_text(request.match_info["owner"], "owner")
    repo = path_text(request.match_info["repo"], "repo")
    raw = request.match_info["n"]
    if not (raw.isascii() and raw.isdigit() and 0 < len(raw) < 12 and int(raw) > 0):
        return problem(400, f"a pull request number is a positive integer, not {raw[:20]!r}")
    name = f"{owner}/{repo}"
    found = await request.app[STORE].fetchrow("pull_get", f"{name}#{int(raw)}")
    if found is None:
        return problem(404, f"no tracked pull request {name}#{int(raw)}")
    return answer(pull_json(found))


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/pulls", list_pulls, expect_handler=expect_continue)
    app.router.add_get("/api/pulls/{owner}/{repo}/{n}", show_pull,
                       expect_handler=expect_continue)
