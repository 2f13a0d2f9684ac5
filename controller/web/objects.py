"""`GET /api/objects`: every manifest object with its kind, state and last reconcile, and every
manifest source with its revision, state and problems.

An object's state compares what its source last desired (recorded at the source's last valid
reconcile) with what is applied: Applied (the same content), Pending (desired, not applied yet:
dry-run, held for approval, or failing; see /api/actions), Pruning (applied, no longer
desired). Read-only.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiohttp import web

from controller.web.json import answer, text_param
from controller.web.keys import STORE


def object_state(desired: str | None, applied: str | None) -> str:
    if desired is None:
        return "Pruning"
    return "Applied" if desired == applied else "Pending"


async def list_objects(request: web.Request) -> web.Response:
    store = request.app[STORE]
    only_source, only_kind = text_param(request, "source"), text_param(request, "kind")
    sources = [r for r in await store.fetch("resources_list", "manifests", 10_000)
               if only_source in (None, r["name"])]
    keys = [f"manifests:{r['name']}" for r in sources]
    last = {r["key"]: _reconcile(r) for r in await store.fetch("last_audit_of", keys)}
    applied: dict[tuple[str, str, str], Mapping[str, Any]] = {
        (r["source"], r["kind"], r["name"]): r for r in await store.fetch("applied_objects_all")}
    items: list[dict[str, Any]] = []
    described = []
    for source in sources:
        name, data = source["name"], source["data"] or {}
        reconciled = last.get(f"manifests:{name}")
        described.append({"source": name, "state": source["state"],
                          "revision": data.get("revision"), "tree": data.get("tree"),
                          "problems": data.get("problems", []), "reason": data.get("reason"),
                          "updated_at": source["updated_at"], "last_reconcile": reconciled})
        desired: Mapping[str, str] = data.get("objects") or {}
        idents = set(desired) | {f"{k}/{n}" for (s, k, n) in applied if s == name}
        for ident in sorted(idents):
            kind, _, obj = ident.partition("/")
            if only_kind not in (None, kind):
                continue
            row = applied.get((name, kind, obj))
            items.append({
                "source": name, "kind": kind, "name": obj,
                "state": object_state(desired.get(ident), row["content_hash"] if row else None),
                "content_hash": desired.get(ident) or (row["content_hash"] if row else None),
                "applied_revision": row["revision"] if row else None,
                "applied_at": row["applied_at"] if row else None,
                "last_reconcile": reconciled})
    return answer({"sources": described, "items": items})


def _reconcile(row: Mapping[str, Any]) -> dict[str, Any]:
    return {"reconcile_id": row["reconcile_id"], "at": row["started_at"],
            "outcome": row["outcome"], "decision": row["decision"], "reason": row["reason"],
            "error": row["error"]}


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/objects", list_objects)
