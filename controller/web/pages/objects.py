"""Objects on the operator's page: `/objects` (every object by kind and status, with reason,
message and age; filters kind, status and source; keyset-paged by key through
`views.objects_page`, as `GET /api/objects` and `p38 get` are) and `/objects/{key}` (one
object as `views.describe` gives it, as `p38 describe` shows it: its status, its queue row,
its timeline of reconciles each with its decision, reason and the deliveries that caused it,
its actions, the deliveries that named it and the operator's words on it; the reconciles and
actions paged by id). Reads only: the Revive and Approve buttons post to words.py.
"""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from controller.reconcile.plan import STATUSES
from controller.web import views
from controller.web.json import MAX_TEXT, Int, Text
from controller.web.keys import REGISTRY, SETTINGS, STORE
from controller.web.pages.filters import url_part
from controller.web.pages.paging import checked, link, page_of
from controller.web.pages.redact import redact
from controller.web.pages.render import reader, refused, render
from controller.web.pages.session import Viewer

LISTED = 50  # objects on one page
LISTED_ON_OBJECT = 20  # reconciles, and actions, on one page of an object
WORDS = 20  # operator's words shown on an object (the operator log has the rest)


@reader
async def objects(request: web.Request, who: Viewer) -> web.Response:
    kinds = sorted(request.app[REGISTRY].keys())
    q = checked(request, {"kind": Text(kinds), "status": Text(STATUSES), "source": Text(),
                          "after": Text(), "limit": Int(lo=1, hi=500, default=LISTED)})
    if isinstance(q, str):
        return refused(request, who, q, status=400)
    found = await views.objects_page(request.app[STORE], kind=q["kind"], status=q["status"],
                                     source=q["source"], after=q["after"], limit=q["limit"])
    filters = {**{k: q[k] for k in ("kind", "status", "source")},
               "limit": q["limit"] if q["limit"] != LISTED else None}
    return render(request, who, "objects.html", {
        "title": "Objects", "items": found["items"], "kinds": kinds, "statuses": STATUSES,
        "filters": filters, "paged": q["after"] is not None,
        "next_url": link("/objects", filters, after=found["next"]) if found["next"] else None})


@reader
async def one_object(request: web.Request, who: Viewer) -> web.Response:
    q = checked(request, {"reconciles_before": Int(lo=1), "actions_before": Int(lo=1),
                          "limit": Int(lo=1, hi=200, default=LISTED_ON_OBJECT)})
    if isinstance(q, str):
        return refused(request, who, q, status=400)
    key = request.match_info["key"]
    if "\x00" in key or len(key) > MAX_TEXT:
        return refused(request, who, f"a key has at most {MAX_TEXT} characters, no NUL",
                       status=400)
    store = request.app[STORE]
    found = await views.describe(store, key)
    if found is None:
        return refused(request, who, f"no object with key {key!r}: the controller has no "
                                     "status, queue row, reconcile or action for it",
                       status=404)
    # describe gives the newest few; the page pages both long lists by id.
    limit = q["limit"]
    timeline, older_reconciles = page_of(
        [dict(r) for r in await store.fetch("audit_list", key, None, q["reconciles_before"],
                                            limit + 1)], limit)
    actions, older_actions = page_of(
        [dict(a) for a in await store.fetch("actions_list", key, q["actions_before"],
                                            limit + 1, None)], limit)
    words = [dict(w) for w in await store.fetch("operator_actions_list", None, key, WORDS + 1)]
    here = f"/objects/{url_part(key)}"
    kept = {"limit": limit if limit != LISTED_ON_OBJECT else None}
    manifest = found.get("manifest")
    return render(request, who, "object.html", {
        "title": key, "key": key, "found": found, "timeline": timeline, "actions": actions,
        "words": words[:WORDS], "more_words": len(words) > WORDS,
        "spec": _pretty(manifest.get("spec"), request.app[SETTINGS].secret_values())
        if manifest else None,
        "older_reconciles": link(here, kept, reconciles_before=timeline[-1]["id"])
        if older_reconciles else None,
        "older_actions": link(here, kept, actions_before=actions[-1]["id"])
        if older_actions else None,
        "paged": q["reconciles_before"] is not None or q["actions_before"] is not None})


def _pretty(value: Any, known: list[str]) -> str | None:
    """A manifest's spec as the page shows it: indented, secret-looking values redacted."""
    if value is None:
        return None
    return orjson.dumps(redact(value, known), option=orjson.OPT_INDENT_2).decode()


def add_routes(app: web.Application) -> None:
    app.router.add_get("/objects", objects)
    app.router.add_get("/objects/{key:.+}", one_object)
