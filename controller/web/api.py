"""The read-only JSON API: deliveries, queue, audit, actions, resources, manifest revisions.
Newest first, paged.

Paging is by keyset: each page has `next`, the value to pass as `before` (or `after` for the
queue, which is ordered by key) to get the following page. Each route declares its parameters;
anything else is a 400 naming what is valid (controller/web/json.py).
"""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from controller.web.json import Int, Text, answer, expect_continue, path_text, problem, query
from controller.web.keys import REGISTRY, STORE

DEFAULT_PAGE = 50
LIMIT = Int(lo=1, hi=1000, default=DEFAULT_PAGE)
BEFORE = Int(lo=1)
SOURCES = ("github", "railway", "n8n", "p38")
DELIVERY_STATUSES = ("pending", "processed", "failed", "ignored")
OUTCOMES = ("done", "requeue", "retry", "dead", "lost")
ACTION_STATUSES = ("pending", "running", "succeeded", "failed", "dry_run", "held", "skipped")


def page(items: list[dict[str, Any]], limit: int, cursor: str) -> dict[str, Any]:
    more = len(items) > limit
    items = items[:limit]
    return {"items": items, "next": items[-1][cursor] if more and items else None}


async def list_deliveries(request: web.Request) -> web.Response:
    q = query(request, {"source": Text(SOURCES), "event": Text(),
                        "status": Text(DELIVERY_STATUSES), "before": BEFORE, "limit": LIMIT})
    rows = await request.app[STORE].fetch("deliveries_list", q["source"], q["event"],
                                          q["status"], q["before"], q["limit"] + 1)
    return answer(page([dict(r) for r in rows], q["limit"], "id"))


async def get_delivery(request: web.Request) -> web.Response:
    query(request, {})
    ref = path_text(request.match_info["ref"], "the delivery's GUID or id")
    store = request.app[STORE]
    row = await store.fetchrow("delivery_by_guid", ref)
    if row is None and ref.isascii() and ref.isdigit() and int(ref) < 2**62:
        row = await store.fetchrow("delivery_by_id", int(ref))
    if row is None:
        return problem(404, f"no delivery with GUID or id {ref!r}")
    keys = await store.fetch("delivery_keys_of", row["id"])
    return answer({**dict(row), "payload": orjson.Fragment(row["payload"]),
                   "keys": [dict(k) for k in keys]})


async def list_queue(request: web.Request) -> web.Response:
    q = query(request, {"state": Text(("queued", "dead")), "after": Text(), "limit": LIMIT})
    rows = await request.app[STORE].fetch("queue_list", q["state"], q["after"], q["limit"] + 1)
    return answer(page([dict(r) for r in rows], q["limit"], "key"))


async def list_audit(request: web.Request) -> web.Response:
    q = query(request, {"key": Text(), "outcome": Text(OUTCOMES), "before": BEFORE,
                        "limit": LIMIT})
    rows = await request.app[STORE].fetch("audit_list", q["key"], q["outcome"], q["before"],
                                          q["limit"] + 1)
    return answer(page([dict(r) for r in rows], q["limit"], "id"))


async def list_actions(request: web.Request) -> web.Response:
    q = query(request, {"key": Text(), "status": Text(ACTION_STATUSES), "before": BEFORE,
                        "limit": LIMIT})
    rows = await request.app[STORE].fetch("actions_list", q["key"], q["before"],
                                          q["limit"] + 1, q["status"])
    return answer(page([dict(r) for r in rows], q["limit"], "id"))


async def list_resources(request: web.Request) -> web.Response:
    q = query(request, {"kind": Text(tuple(request.app[REGISTRY].keys())),
                        "limit": Int(lo=1, hi=5000, default=500)})
    rows = await request.app[STORE].fetch("resources_list", q["kind"], q["limit"])
    return answer({"items": [dict(r) for r in rows]})


async def list_revisions(request: web.Request) -> web.Response:
    q = query(request, {"source": Text(), "before": BEFORE, "limit": LIMIT})
    rows = await request.app[STORE].fetch("manifest_revisions_list", q["source"], q["before"],
                                          q["limit"] + 1)
    return answer(page([dict(r) for r in rows], q["limit"], "id"))


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/deliveries", list_deliveries, expect_handler=expect_continue)
    app.router.add_get("/api/deliveries/{ref}", get_delivery, expect_handler=expect_continue)
    app.router.add_get("/api/queue", list_queue, expect_handler=expect_continue)
    app.router.add_get("/api/audit", list_audit, expect_handler=expect_continue)
    app.router.add_get("/api/actions", list_actions, expect_handler=expect_continue)
    app.router.add_get("/api/resources", list_resources, expect_handler=expect_continue)
    app.router.add_get("/api/revisions", list_revisions, expect_handler=expect_continue)
