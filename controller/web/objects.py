"""`GET /api/objects`: every object the controller reconciles, with its one status.

Each item is an object (a key): its status (Ready, Reconciling, Waiting, Stalled, Blocked), the
CamelCase reason, the message, the revision observed, since when it has had that status, when
it was last reconciled, and whether a reconcile of it is running now. Manifest objects (agent,
schedule, service, policy) also say what is applied: Applied (the content desired), Pending
(desired, not applied yet: dry-run, held, failing) or Pruning (applied, no longer desired);
manifest sources list their problems. Filters `kind`, `status`, `source`; keyset-paged by key
(`after`). Read-only.

This module checks the query and answers; the page itself is `views.objects_page`, which the
CLI's database reader (`p38 get`) calls too, so both show the same items.
"""

from __future__ import annotations

from aiohttp import web

from controller.reconcile.plan import STATUSES
from controller.web import views
from controller.web.json import Int, Text, answer, expect_continue, query
from controller.web.keys import REGISTRY, STORE


async def list_objects(request: web.Request) -> web.Response:
    q = query(request, {"kind": Text(tuple(request.app[REGISTRY].keys())), "status": Text(STATUSES),
                        "source": Text(), "after": Text(),
                        "limit": Int(lo=1, hi=5000, default=500)})
    return answer(await views.objects_page(request.app[STORE], kind=q["kind"],
                                           status=q["status"], source=q["source"],
                                           after=q["after"], limit=q["limit"]))


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/objects", list_objects, expect_handler=expect_continue)
