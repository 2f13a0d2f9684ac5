"""`GET /api/objects`: every object the controller reconciles, with its one status.

Each item is an object (a key): its status (Ready, Reconciling, Waiting, Stalled, Blocked), the
CamelCase reason, the message, the revision observed, since when it has had that status, when
it was last reconciled, and whether a reconcile of it is running now. Manifest objects (agent,
schedule, service, policy) also say what is applied: Applied (the content desired), Pending
(desired, not applied yet: dry-run, held, failing) or Pruning (applied, no longer desired);
manifest sources list their problems. Filters `kind`, `status`, `source`; keyset-paged by key
(`after`). Read-only.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiohttp import web

from controller.reconcile.plan import STATUSES
from controller.reconcile.reconciler import object_ref
from controller.web.json import Int, Text, answer, expect_continue, query
from controller.web.keys import REGISTRY, STORE

MANIFEST_KINDS = {"agent": "Agent", "schedule": "Schedule", "service": "Service",
                  "policy": "Policy"}


def object_state(desired: str | None, applied: str | None) -> str:
    if desired is None:
        return "Pruning"
    return "Applied" if desired == applied else "Pending"


async def list_objects(request: web.Request) -> web.Response:
    store = request.app[STORE]
    q = query(request, {"kind": Text(tuple(request.app[REGISTRY].keys())), "status": Text(STATUSES),
                        "source": Text(), "after": Text(),
                        "limit": Int(lo=1, hi=5000, default=500)})
    limit = q["limit"]
    rows = await store.fetch("statuses_list", q["kind"], q["status"], q["after"], limit + 1,
                             q["source"])
    sources = {r["name"]: r["data"] or {} for r in await store.fetch("resources_list",
                                                                       "manifests", 10_000)}
    applied: dict[tuple[str, str, str], Mapping[str, Any]] = {
        (r["source"], r["kind"], r["name"]): r for r in await store.fetch("applied_objects_all")}
    items = [_item(row, sources, applied) for row in rows[:limit]]
    more = len(rows) > limit
    return answer({"items": items, "next": rows[limit - 1]["key"] if more else None})


def _item(row: Mapping[str, Any], sources: Mapping[str, Mapping[str, Any]],
          applied: Mapping[tuple[str, str, str], Mapping[str, Any]]) -> dict[str, Any]:
    key, kind = row["key"], row["kind"]
    item: dict[str, Any] = {
        "key": key, "kind": kind, "name": key.partition(":")[2], "status": row["status"],
        "reason": row["reason"], "message": row["message"], "revision": row["revision"],
        "since": row["since"], "reconciled_at": row["reconciled_at"],
        "reconciling": bool(row["leased"]),
        "queue": None if row["queue_state"] is None else {
            "state": row["queue_state"], "not_before": row["not_before"],
            "wait": row["wait_kind"], "attempts": row["attempts"]}}
    source = row["source"]
    if source is not None:
        item["source"] = source
    if kind == "manifests":
        data = sources.get(source or "", {})
        item["problems"] = data.get("problems", [])
        item["objects"] = len(data.get("objects") or {})
    elif kind in MANIFEST_KINDS and source is not None:
        manifest_kind, name = MANIFEST_KINDS[kind], object_ref(key)[2]
        desired = (sources.get(source, {}).get("objects") or {}).get(f"{manifest_kind}/{name}")
        found = applied.get((source, manifest_kind, name))
        item["name"] = name
        item["manifest"] = {
            "kind": manifest_kind,
            "applied": object_state(desired, found["content_hash"] if found else None),
            "content_hash": desired or (found["content_hash"] if found else None),
            "applied_revision": found["revision"] if found else None,
            "applied_at": found["applied_at"] if found else None}
    return item


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/objects", list_objects, expect_handler=expect_continue)
