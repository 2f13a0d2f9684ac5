"""The services API: `GET /api/services` and `GET /api/services/{name}` (`?source=` when two
sources define the name).

Each applied `Service` with its status (what runs, what is deploying, a rollback, a bad
commit held back), its Railway ids and branch, the commits it will not deploy again and its
open incident, and, for one Service, its recent incidents and the deployments followed from
Railway's webhooks with the timeline of their states. Behind
P38_API_TOKEN like the rest of /api. Reads only: Railway itself is not called.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiohttp import web

from controller.web.json import Text, answer, expect_continue, path_text, problem, query
from controller.web.keys import STORE


async def service_json(store: Any, row: Mapping[str, Any], *,
                       detail: bool = False) -> dict[str, Any]:
    spec: Mapping[str, Any] = (row["document"] or {}).get("spec") or {}
    railway: Mapping[str, Any] = spec.get("railway") or {}
    bad = await store.fetch("service_bad_list", row["key"])
    item: dict[str, Any] = {
        "key": row["key"], "source": row["source"], "name": row["name"],
        "revision": row["revision"], "branch": spec.get("branch", "main"),
        "railway": {k: railway.get(k) for k in ("project", "environment", "service")},
        "status": ({"status": row["status"], "reason": row["reason"],
                    "message": row["message"], "reconciled_at": row["reconciled_at"]}
                   if row["status"] else None),
        "bad_commits": [{"commit": b["commit_sha"], "deployment": b["deployment"],
                         "reason": b["reason"], "marked_at": b["marked_at"]} for b in bad]}
    incidents = [await incident_json(store, row["key"], i)
                 for i in await store.fetch("service_incidents_list", row["key"],
                                            20 if detail else 1)]
    item["incident"] = next((i for i in incidents if i["closed_at"] is None), None)
    if detail:
        item["incidents"] = incidents
    if detail and isinstance(railway.get("service"), str):
        followed = await store.fetch("deployments_of_service", railway["service"])
        timeline: dict[str, list[dict[str, Any]]] = {}
        for t in await store.fetch("transitions_of_many", "deployment",
                                   [d["id"] for d in followed]):
            timeline.setdefault(t["name"], []).append(
                {"from": t["from_state"], "to": t["to_state"], "at": t["at"]})
        item["deployments"] = [
            {"id": d["id"], "state": d["state"], "commit": (d["data"] or {}).get("commit"),
             "updated_at": d["updated_at"], "timeline": timeline.get(d["id"], [])}
            for d in followed]
    return item


async def incident_json(store: Any, key: str, row: Mapping[str, Any]) -> dict[str, Any]:
    """One failure as recorded, with its issue on the source repository when one was opened
    (the `github.issue_upsert` action's answer)."""
    issue = await store.fetchrow("action_by_key", f"incident:{key}:{row['deployment']}")
    result = (issue["result"] or {}) if issue is not None else {}
    return {"deployment": row["deployment"], "commit": row["commit_sha"],
            "status": row["status"],
            "rolled_back_to": ({"deployment": row["rolled_back_to"],
                                "commit": row["rolled_back_commit"]}
                               if row["rolled_back_to"] else None),
            "opened_at": row["opened_at"], "closed_at": row["closed_at"],
            "closed_by": row["closed_by"], "issue": result.get("issue")}


async def services(store: Any) -> list[dict[str, Any]]:
    """Every applied Service as `GET /api/services` and `p38 services` show it."""
    return [await service_json(store, r) for r in await store.fetch("services_list")]


async def list_services(request: web.Request) -> web.Response:
    query(request, {})
    return answer({"items": await services(request.app[STORE])})


async def show_service(request: web.Request) -> web.Response:
    q = query(request, {"source": Text()})
    name = path_text(request.match_info["name"], "name")
    store = request.app[STORE]
    rows = [r for r in await store.fetch("services_list")
            if r["name"] == name and q["source"] in (None, r["source"])]
    if not rows:
        return problem(404, f"no Service {name!r}")
    if len(rows) > 1:
        return problem(400, f"{len(rows)} sources define Service {name!r}: say which with "
                            f"?source= ({', '.join(r['source'] for r in rows)})")
    return answer(await service_json(store, rows[0], detail=True))


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/services", list_services, expect_handler=expect_continue)
    app.router.add_get("/api/services/{name}", show_service, expect_handler=expect_continue)
