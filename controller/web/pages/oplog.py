"""The operator log (`/operator-log`): every operator's word (approve, replay, revive,
killswitch on and off, run) with who said it, through what (cli, api, page), its target
(linked to the object or the delivery when it names one), what came of it and when; newest
first, keyset-paged by id through `operator_actions_list`, as `GET /api/operator-actions`;
filter `target`. Reads only.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import orjson
from aiohttp import web

from controller.web.json import Int, Text
from controller.web.keys import REGISTRY, STORE
from controller.web.pages.filters import short, url_part
from controller.web.pages.paging import checked, link, page_of
from controller.web.pages.redact import redact
from controller.web.pages.render import reader, refused, render
from controller.web.pages.session import Viewer

LISTED = 50


def target_link(target: str, kinds: Collection[str]) -> str | None:
    """Where a word's target is shown: its object's page when it is a key (its kind is one a
    reconciler has), its delivery's page for a replay's `delivery:N`, else nowhere (a source's
    killswitch, an action's idempotency key)."""
    kind, colon, rest = target.partition(":")
    if not colon:
        return None
    if kind == "delivery" and rest.isascii() and rest.isdigit():
        return f"/deliveries/{rest}"
    return f"/objects/{url_part(target)}" if kind in kinds and rest else None


def _detail(detail: Any) -> str:
    return "" if not detail else short(orjson.dumps(redact(detail)).decode(), 200)


@reader
async def operator_log(request: web.Request, who: Viewer) -> web.Response:
    q = checked(request, {"target": Text(), "before": Int(lo=1),
                          "limit": Int(lo=1, hi=500, default=LISTED)})
    if isinstance(q, str):
        return refused(request, who, q, status=400)
    rows, more = page_of([dict(r) for r in await request.app[STORE].fetch(
        "operator_actions_list", q["before"], q["target"], q["limit"] + 1)], q["limit"])
    kinds = request.app[REGISTRY].keys()
    items = [{**r, "link": target_link(r["target"], kinds), "shown": _detail(r["detail"])}
             for r in rows]
    filters = {"target": q["target"], "limit": q["limit"] if q["limit"] != LISTED else None}
    return render(request, who, "operator_log.html", {
        "title": "Operator log", "items": items, "filters": filters,
        "paged": q["before"] is not None,
        "next_url": link("/operator-log", filters, before=rows[-1]["id"]) if more else None})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/operator-log", operator_log)
