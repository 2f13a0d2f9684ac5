"""`GET /api/objects/{key}`: one object as `p38 describe` shows it (controller/web/views.py):
its status and reason, its queue row, the newest reconciles with each decision's reason and
the deliveries it consumed, its actions (done, held, dry-run, failed), the deliveries that
named it, and by kind what it owns (an agent's versions and runs, a schedule's ticks, a
manifest object's applied spec).

The key goes in the path as it is, its `#` percent-encoded (`/api/objects/pull:o/r%2312`).
Behind P38_API_TOKEN like the rest of /api. Reads only.
"""

from __future__ import annotations

from aiohttp import web

from controller.web import views
from controller.web.json import answer, expect_continue, path_text, problem, query
from controller.web.keys import STORE


async def show_object(request: web.Request) -> web.Response:
    query(request, {})
    key = path_text(request.match_info["key"], "the object's key")
    found = await views.describe(request.app[STORE], key)
    if found is None:
        return problem(404, f"no object with key {key!r} (GET /api/objects lists them)")
    return answer(found)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/objects/{key:.+}", show_object, expect_handler=expect_continue)
