"""The read-only JSON API: deliveries, queue, audit, actions, resources, manifest revisions.
Newest first, paged.

Paging is by keyset: each page has `next`, the value to pass as `before` (or `after` for the
queue, which is ordered by key) to get the following page.
"""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from controller.web.json import answer, int_param, problem, text_param
from controller.web.keys import STORE

DEFAULT_PAGE = 50


def _page(items: list[dict[str, Any]], limit: int, cursor: str) -> dict[str, Any]:
    more = len(items) > limit
    items = items[:limit]
    return {"items": items, "next": items[-1][cursor] if more and items else None}


async def list_deliveries(request: web.Request) -> web.Response:
    limit = int_param(request, "limit", default=DEFAULT_PAGE) or DEFAULT_PAGE
    rows = await request.app[STORE].fetch(
        "deliveries_list", text_param(request, "source"), text_param(request, "event"),
        text_param(request, "status"), int_param(request, "before", hi=2**62), limit + 1)
    return answer(_page([dict(r) for r in rows], limit, "id"))


async def get_delivery(request: web.Request) -> web.Response:
    ref = request.match_info["ref"]
    store = request.app[STORE]
    row = await store.fetchrow("delivery_by_guid", ref)
    if row is None and ref.isdigit() and int(ref) < 2**62:
        row = await store.fetchrow("delivery_by_id", int(ref))
    if row is None:
        return problem(404, f"no delivery with GUID or id {ref!r}")
    keys = await store.fetch("delivery_keys_of", row["id"])
    return answer({**dict(row), "payload": orjson.Fragment(row["payload"]),
                   "keys": [dict(k) for k in keys]})


async def list_queue(request: web.Request) -> web.Response:
    limit = int_param(request, "limit", default=DEFAULT_PAGE) or DEFAULT_PAGE
    rows = await request.app[STORE].fetch("queue_list", text_param(request, "state"),
                                          text_param(request, "after"), limit + 1)
    return answer(_page([dict(r) for r in rows], limit, "key"))


async def list_audit(request: web.Request) -> web.Response:
    limit = int_param(request, "limit", default=DEFAULT_PAGE) or DEFAULT_PAGE
    rows = await request.app[STORE].fetch(
        "audit_list", text_param(request, "key"), text_param(request, "outcome"),
        int_param(request, "before", hi=2**62), limit + 1)
    return answer(_page([dict(r) for r in rows], limit, "id"))


async def list_actions(request: web.Request) -> web.Response:
    limit = int_param(request, "limit", default=DEFAULT_PAGE) or DEFAULT_PAGE
    rows = await request.app[STORE].fetch("actions_list", text_param(request, "key"),
                                          int_param(request, "before", hi=2**62), limit + 1)
    return answer(_page([dict(r) for r in rows], limit, "id"))


async def list_resources(request: web.Request) -> web.Response:
    limit = int_param(request, "limit", default=500, hi=5000) or 500
    rows = await request.app[STORE].fetch("resources_list", text_param(request, "kind"), limit)
    return answer({"items": [dict(r) for r in rows]})


async def list_revisions(request: web.Request) -> web.Response:
    limit = int_param(request, "limit", default=DEFAULT_PAGE) or DEFAULT_PAGE
    rows = await request.app[STORE].fetch("manifest_revisions_list",
                                          text_param(request, "source"),
                                          int_param(request, "before", hi=2**62), limit + 1)
    return answer(_page([dict(r) for r in rows], limit, "id"))


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/deliveries", list_deliveries)
    app.router.add_get("/api/deliveries/{ref}", get_delivery)
    app.router.add_get("/api/queue", list_queue)
    app.router.add_get("/api/audit", list_audit)
    app.router.add_get("/api/actions", list_actions)
    app.router.add_get("/api/resources", list_resources)
    app.router.add_get("/api/revisions", list_revisions)
