"""The overview (`/`): killswitches and where they are on, controllers, queue depth and dead
letters, held actions, objects by status, recent failures, and the chart of the last hour.
Reads what `p38 status` reads (controller/web/overview.py gather) plus a few bounded lists;
nothing loads all rows. No writes.
"""

from __future__ import annotations

from datetime import UTC, datetime

from aiohttp import web

from controller.web.keys import SETTINGS, STORE
from controller.web.overview import gather
from controller.web.pages.activity import ACTIVITY
from controller.web.pages.chart import HEIGHT, WIDTH, activity
from controller.web.pages.render import reader, render
from controller.web.pages.session import Viewer

LISTED = 20


@reader
async def overview(request: web.Request, who: Viewer) -> web.Response:
    store = request.app[STORE]
    found = await gather(store, request.app[SETTINGS])
    if found.get("migrations_pending"):
        return render(request, who, "overview.html", {"title": "Overview", "found": found})
    rows, counted_at = await request.app[ACTIVITY].current(store)
    series = activity(rows, counted_at or datetime.now(UTC))
    switches = {r["source"]: r for r in await store.fetch("killswitches_all")}
    sources = [r["source"] for r in await store.fetch("page_sources")]
    return render(request, who, "overview.html", {
        "title": "Overview", "found": found, "series": series, "width": WIDTH, "refresh": True,
        "counted_at": counted_at,
        "height": HEIGHT, "held": [dict(r) for r in await store.fetch("actions_held", LISTED)],
        "failures": [dict(r) for r in await store.fetch("page_failures", 10)],
        "switches": switches, "sources": sources})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/", overview)
