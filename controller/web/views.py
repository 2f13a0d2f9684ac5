"""What the read side shows, built from the store: one function per view, each returning
JSON-ready dicts (datetimes left to the JSON encoder).

The API routes (`controller/web/describe.py`, `/api/objects`, `/api/runs`, `/api/tasks`) answer
with these, and the CLI's database reader (`controller/cli/remote.py`) calls the same
functions, so `p38 get`/`describe`/`runs`/`logs` show the same thing with database credentials
or through a remote controller's API. Reads only; no request handling here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from controller.reconcile.reconciler import object_key, object_ref
from controller.store import Store
from controller.web.tasks import task_json

RECONCILES = 10  # audit rows `describe` shows (the API's /api/audit?key= pages the rest)
ACTIONS = 20
DELIVERIES = 20
VERSIONS = 10
RUNS = 10

MANIFEST_KINDS = {"agent": "Agent", "schedule": "Schedule", "service": "Service",
                  "policy": "Policy"}


def object_state(desired: str | None, applied: str | None) -> str:
    """A manifest object's `applied`: Applied (the content desired), Pending (desired, not
    applied yet) or Pruning (no longer desired)."""
    if desired is None:
        return "Pruning"
    return "Applied" if desired == applied else "Pending"


async def objects_page(store: Store, *, kind: str | None, status: str | None,
                       source: str | None, after: str | None,
                       limit: int) -> dict[str, Any]:
    """`/api/objects`: one page of objects with their status, keyset-paged by key."""
    rows = await store.fetch("statuses_list", kind, status, after, limit + 1, source)
    shown = rows[:limit]
    # Only what this page's objects need: their sources' records, their applied objects.
    named = sorted({r["source"] for r in shown if r["source"] is not None})
    sources = {r["name"]: r["data"] or {} for r in await store.fetch("resources_named",
                                                                       "manifests", named)}
    refs = [(r["source"], MANIFEST_KINDS[r["kind"]], object_ref(r["key"])[2]) for r in shown
            if r["kind"] in MANIFEST_KINDS and r["source"] is not None]
    applied: dict[tuple[str, str, str], Mapping[str, Any]] = {
        (r["source"], r["kind"], r["name"]): r for r in await store.fetch(
            "applied_objects_of_refs", [s for s, _, _ in refs], [k for _, k, _ in refs],
            [n for _, _, n in refs])}
    items = [_item(row, sources, applied) for row in shown]
    more = len(rows) > limit
    return {"items": items, "next": rows[limit - 1]["key"] if more else None}


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


async def describe(store: Store, key: str) -> dict[str, Any] | None:
    """One object as `p38 describe` shows it: its status, its queue row, the newest
    reconciles (each decision with its reason and the deliveries it consumed), its actions,
    the deliveries that named it, and by kind what it owns (an agent's versions and runs, a
    schedule's ticks, a manifest object's applied document). None when the controller has
    nothing about `key`."""
    status = await store.fetchrow("statuses_of", [key])
    queue = await store.fetchrow("queue_of_key", key)
    audit = await store.fetch("audit_list", key, None, None, RECONCILES)
    actions = await store.fetch("actions_list", key, None, ACTIONS, None)
    if status is None and queue is None and not audit and not actions:
        return None
    kind = key.partition(":")[0]
    found: dict[str, Any] = {
        "key": key, "kind": kind,
        "status": None if status is None else {
            k: status[k] for k in ("status", "reason", "message", "revision", "source",
                                   "since", "reconciled_at")},
        "queue": None if queue is None else {
            k: queue[k] for k in ("state", "not_before", "wait_kind", "attempts",
                                  "failing_since", "last_error", "leased")},
        "reconciles": [{k: r[k] for k in ("id", "reconcile_id", "started_at", "duration_ms",
                                          "attempt", "outcome", "decision", "reason", "error",
                                          "worker", "deliveries", "actions")} for r in audit],
        "actions": [{k: a[k] for k in ("id", "idempotency_key", "kind", "description",
                                       "status", "reason", "error", "attempts", "created_at",
                                       "updated_at")} for a in actions],
        "deliveries": [dict(d) for d in await store.fetch("deliveries_of_key", key,
                                                          DELIVERIES)]}
    if kind in MANIFEST_KINDS:
        _, source, name = object_ref(key)
        applied = await store.fetchrow("applied_object_get", source, MANIFEST_KINDS[kind],
                                       name)
        found["manifest"] = None if applied is None else {
            "kind": applied["kind"], "name": applied["name"], "source": source,
            "revision": applied["revision"], "applied_at": applied["applied_at"],
            "content_hash": applied["content_hash"],
            "spec": (applied["document"] or {}).get("spec")}
    if kind == "agent":
        current = await store.fetchrow("agent_version_current", key)
        found["running_version"] = current["number"] if current else None
        found["versions"] = [_version(v) for v in await store.fetch("agent_versions_of", key,
                                                                      VERSIONS)]
        found["runs"] = [dict(r) for r in await store.fetch("agent_runs_of", key, None, RUNS)]
    if kind == "schedule":
        found["ticks"] = [dict(t) for t in await store.fetch("schedule_ticks_of", key, 10)]
    return found


def _version(row: Mapping[str, Any]) -> dict[str, Any]:
    return {k: row[k] for k in ("number", "state", "origin", "model", "rounds",
                                "input_tokens", "output_tokens", "usd", "duration_ms",
                                "error", "created_at", "finished_at")}


async def agent_key(store: Store, name: str, source: str | None = None) -> str | list[str]:
    """The key of the applied agent named `name` (a key as it is), or the sources defining
    it when they are none or several."""
    if name.startswith("agent:"):
        return name
    rows = [r for r in await store.fetch("applied_of_kind", "Agent")
            if r["name"] == name and source in (None, r["source"])]
    if len(rows) == 1:
        return object_key("Agent", rows[0]["source"], rows[0]["name"])
    return [r["source"] for r in rows]


async def runs(store: Store, agent: str | None, *, before: int | None,
               limit: int) -> dict[str, Any]:
    """`/api/runs`: runs newest first (of one agent's key when given), without their stderr
    and tool calls (their number only)."""
    items = [dict(r) for r in await store.fetch("agent_runs_of", agent, before, limit)]
    return {"items": items, "next": items[-1]["id"] if len(items) == limit else None}


async def run(store: Store, run_id: int) -> dict[str, Any] | None:
    """`/api/runs/{id}`: one run with its result, stderr, tool calls and isolation."""
    row = await store.fetchrow("agent_run_get", run_id)
    return None if row is None else dict(row)


async def cancel_run(store: Store, run_id: int, by: str) -> dict[str, Any] | None:
    """`p38 runs cancel ID` and `POST /api/runs/{id}/cancel`: stop a run, recorded with who
    asked (its `stop_requested`). None: no such run; `state` finished: it had already ended."""
    row = await store.fetchrow("agent_run_cancel", run_id, f"cancelled by {by}")
    if row is None or row["state"] is None:
        return None
    return {"run": run_id, "state": row["state"], "outcome": row["outcome"],
            "asked": row["state"] != "finished"}


async def tasks(store: Store, *, state: str | None, repo: str | None, before: int | None,
                limit: int) -> dict[str, Any]:
    """`/api/tasks`: `/claude` tasks newest first."""
    rows = await store.fetch("claude_tasks_list", before, state, repo, limit)
    items = [task_json(r) for r in rows]
    return {"items": items, "next": items[-1]["id"] if len(items) == limit else None}


async def task(store: Store, task_id: int) -> dict[str, Any] | None:
    """`/api/tasks/{id}`: one task with its history."""
    row = await store.fetchrow("claude_task_get", task_id)
    return None if row is None else task_json(row, detail=True)
