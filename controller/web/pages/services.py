"""The services' pages: `/services` (every applied Service, paged by key: its status, Railway
ids and branch, the commits it will not deploy again, its open incident) and
`/services/{key}` (one Service by its URL-quoted key `service:<source>/<name>`: the same, its
recent incidents, and the deployments followed from Railway's webhooks, each with the
timeline of its states).

The same shape as `GET /api/services` and `/api/services/{name}` (controller/web/services.py
`service_json`), a page at a time. Reads only: Railway itself is not called.
"""

from __future__ import annotations

from aiohttp import web

from controller.reconcile.reconciler import object_ref
from controller.web.json import BadQuery, Text
from controller.web.keys import STORE
from controller.web.pages.reading import Missing, args, next_url, page, path_value
from controller.web.pages.render import render
from controller.web.pages.session import Viewer
from controller.web.services import service_json

SERVICES = 30  # services on one page (each is a few reads)


@page
async def services(request: web.Request, who: Viewer) -> web.Response:
    q = args(request, {"after": Text()})
    source = name = None
    if q["after"] is not None:
        _, source, name = object_ref(_service_key(q["after"]))
    store = request.app[STORE]
    rows = await store.fetch("page_services", source, name, SERVICES + 1)
    items = [await service_json(store, r) for r in rows[:SERVICES]]
    return render(request, who, "services.html", {
        "title": "Services", "services": items,
        "next": next_url(request, after=items[-1]["key"]) if len(rows) > SERVICES else None})


@page
async def service(request: web.Request, who: Viewer) -> web.Response:
    args(request, {})
    key = _service_key(path_value(request, "key"))
    _, source, name = object_ref(key)
    store = request.app[STORE]
    row = await store.fetchrow("page_service", source, name)
    if row is None:
        raise Missing(f"no applied Service {key!r} (the Services page lists them)")
    found = await service_json(store, row, detail=True)
    return render(request, who, "service.html", {"title": f"Service {name}", "service": found})


def _service_key(value: str) -> str:
    if not value.startswith("service:") or "/" not in value:
        raise BadQuery("a Service is named by its key, service:<source>/<name>, not "
                       f"{value[:100]!r}")
    return value


def add_routes(app: web.Application) -> None:
    app.router.add_get("/services", services)
    app.router.add_get("/services/{key:.+}", service)
