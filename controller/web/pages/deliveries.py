"""Webhook deliveries on the operator's page: `/deliveries` (newest first, filters source,
event and status, keyset-paged by id through `deliveries_list`, as `GET /api/deliveries`) and
`/deliveries/{id}` (one delivery: its headers that carry no credentials, its payload
pretty-printed with secrets redacted (redact.py; the controller's own secret values too), the
keys it produced, each linking to its object, and a Replay button). Reads only: Replay posts
to words.py.
"""

from __future__ import annotations

from aiohttp import web

from controller.web.api import DELIVERY_STATUSES, SOURCES
from controller.web.json import Int, Text
from controller.web.keys import SETTINGS, STORE, WRITE_TOKEN
from controller.web.pages.paging import checked, link, page_of
from controller.web.pages.redact import pretty_payload, safe_headers, scrub_text
from controller.web.pages.render import reader, refused, render
from controller.web.pages.session import Viewer

LISTED = 50


@reader
async def deliveries(request: web.Request, who: Viewer) -> web.Response:
    q = checked(request, {"source": Text(SOURCES), "event": Text(),
                          "status": Text(DELIVERY_STATUSES), "before": Int(lo=1),
                          "limit": Int(lo=1, hi=500, default=LISTED)})
    if isinstance(q, str):
        return refused(request, who, q, status=400)
    rows, more = page_of([dict(r) for r in await request.app[STORE].fetch(
        "deliveries_list", q["source"], q["event"], q["status"], q["before"], q["limit"] + 1)],
        q["limit"])
    filters = {**{k: q[k] for k in ("source", "event", "status")},
               "limit": q["limit"] if q["limit"] != LISTED else None}
    return render(request, who, "deliveries.html", {
        "title": "Deliveries", "items": rows, "filters": filters, "sources": SOURCES,
        "statuses": DELIVERY_STATUSES, "paged": q["before"] is not None,
        "next_url": link("/deliveries", filters, before=rows[-1]["id"]) if more else None})


@reader
async def one_delivery(request: web.Request, who: Viewer) -> web.Response:
    q = checked(request, {})
    if isinstance(q, str):
        return refused(request, who, q, status=400)
    ref = request.match_info["id"]
    store = request.app[STORE]
    row = None
    if ref.isascii() and ref.isdigit() and int(ref) < 2**62:
        row = await store.fetchrow("delivery_by_id", int(ref))
    if row is None:
        return refused(request, who, "no delivery with that id (the list at /deliveries has "
                                     "them)", status=404)
    known = [*request.app[SETTINGS].secret_values(), request.app[WRITE_TOKEN] or ""]
    payload, cut = pretty_payload(row["payload"], known)
    headers, withheld = safe_headers(row["headers"] or {}, known)
    keys = [dict(k) for k in await store.fetch("delivery_keys_of", row["id"])]
    return render(request, who, "delivery.html", {
        "title": f"Delivery {row['id']}", "d": dict(row), "payload": payload, "cut": cut,
        "headers": headers, "withheld": withheld, "keys": keys,
        "error": scrub_text(row["error"], known) if row["error"] else None})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/deliveries", deliveries)
    app.router.add_get("/deliveries/{id}", one_delivery)
