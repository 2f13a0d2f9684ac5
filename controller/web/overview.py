"""The system at a glance, as `p38 status` and `GET /api/status` show it: the schema, the
controllers running (heartbeat rows; one killed without a word is shown as gone), webhook
deliveries and the controller's own events, what was recovered from GitHub after a restart,
the queue (work due now apart from keys waiting for a later instant), long work (jobs) by
kind and state, dead keys, the
killswitches, pull requests, and objects by status, those only waiting for a provider's
credentials apart from real trouble. Reads only; renders nothing (the CLI writes the text).
"""

from __future__ import annotations

import os
import socket
from typing import Any

from aiohttp import web

from controller.config import JOB_KINDS, Settings
from controller.engine.heartbeat import GONE_AFTER_SECONDS
from controller.reconcile.plan import STATUSES
from controller.reconcile.reconciler import object_key
from controller.store import Store
from controller.store.migrations import latest_version
from controller.web.json import answer, expect_continue, query
from controller.web.keys import SETTINGS, STORE

# What a provider's status message says when it is not configured (controller/providers/*):
# an object Blocked for this only waits for credentials, it has not failed.
UNCONFIGURED = ("%ANTHROPIC_API_KEY is not set%", "%RAILWAY_TOKEN is not set%",
                "%no GitHub App credentials%")
LISTED = 20  # objects not Ready listed by name, dead keys too

async def gather(store: Store, settings: Settings) -> dict[str, Any]:
    version = await store.schema_version()
    found: dict[str, Any] = {"schema": {"version": version, "latest": latest_version()}}
    if version < latest_version():
        found["migrations_pending"] = True
        return found
    controllers = [dict(r) for r in await store.fetch("controllers_list", GONE_AFTER_SECONDS)]
    here = socket.gethostname()
    for row in controllers:  # on this host, a process that is not there is gone at once
        if row["alive"] and row["host"] == here and not _exists(row["pid"]):
            row["alive"] = False
    found["controllers"] = {
        "running": [_controller(r) for r in controllers if r["alive"]],
        "gone": [_controller(r) for r in controllers if not r["alive"]]}
    counts = await store.fetch("deliveries_counts")
    found["deliveries"] = {r["status"]: r["n"] for r in counts if not r["own"]}
    found["internal_events"] = {r["status"]: r["n"] for r in counts if r["own"]}
    recovered = await store.fetchrow("redeliveries_summary")
    found["recovered_from_github"] = dict(recovered) if recovered else None
    queue = {r["bucket"]: {"n": r["n"], "next_in_seconds": r["next_in"]}
             for r in await store.fetch("queue_summary")}
    found["queue"] = {bucket: queue.get(bucket, {"n": 0})["n"]
                      for bucket in ("due", "running", "later", "retrying", "dead")}
    found["queue"]["next_later_in_seconds"] = (queue.get("later") or {}).get("next_in_seconds")
    jobs: dict[str, dict[str, int]] = {kind: {} for kind in JOB_KINDS}
    for counted in await store.fetch("jobs_summary", list(JOB_KINDS)):
        jobs[counted["kind"]][counted["state"]] = counted["n"]
    found["jobs"] = jobs
    alive = found["controllers"]["running"]
    found["job_workers"] = {kind: sum(int(c["jobs"].get(kind) or 0) for c in alive)
                            for kind in JOB_KINDS}
    # Long work queued where no live process carries out its kind (P38_JOBS, `p38 worker`).
    found["jobs_without_workers"] = [
        kind for kind in JOB_KINDS if not found["job_workers"][kind]
        and (jobs[kind].get("queued") or jobs[kind].get("waiting"))]
    found["dead"] = [{"key": r["key"], "error": r["last_error"]}
                     for r in await store.fetch("queue_list", "dead", None, LISTED)]
    held = [f"{r['source']} (Policy/{r['name']})"
            for r in await store.fetch("applied_policies")
            if (r["document"] or {}).get("spec", {}).get("killswitch") is True]
    held += [f"{r['source']} (/claude stop by {r['by_whom']})"
             for r in await store.fetch("killswitches_all")]
    if settings.policy.killswitch:
        held.insert(0, "everywhere (P38_KILLSWITCH)")
    found["killswitch"] = held
    pulls = {r["state"]: dict(r) for r in await store.fetch("pulls_counts")}
    found["pull_requests"] = {
        "by_state": {state: row["n"] for state, row in pulls.items()},
        "auto_merge_open_in_scope": (pulls.get("open") or {}).get("in_scope", 0),
        "merged_by_project38": (pulls.get("merged") or {}).get("by_us", 0)} if pulls else None
    objects: dict[str, int] = {}
    waiting_credentials = 0
    for count in await store.fetch("statuses_summary", list(UNCONFIGURED)):
        if count["credentials"]:
            waiting_credentials += count["n"]
        else:
            objects[count["status"]] = objects.get(count["status"], 0) + count["n"]
    rows = [dict(r) for r in await store.fetch("statuses_not_ready", list(UNCONFIGURED), 500)]
    # A schedule whose agent has no version only because Claude is not configured waits for
    # the same credentials.
    waiting = {r["key"] for r in rows if r["credentials"]}
    agent_of = {object_key("Schedule", r["source"], r["name"]):
                object_key("Agent", r["source"], str(spec.get("agent")))
                for r in await store.fetch("applied_of_kind", "Schedule")
                if isinstance(spec := (r["document"] or {}).get("spec"), dict)}
    for r in rows:
        if r["status"] == "Blocked" and r["reason"] == "AgentNotReady" \
                and agent_of.get(r["key"]) in waiting:
            r["credentials"] = True
            objects["Blocked"] -= 1
            waiting_credentials += 1
    found["objects"] = {s: objects[s] for s in STATUSES if objects.get(s)}
    found["waiting_for_credentials"] = waiting_credentials
    rank = {s: n for n, s in enumerate(STATUSES)}
    found["not_ready"] = sorted(
        ({"key": r["key"], "status": r["status"], "reason": r["reason"],
          "message": r["message"], "waiting_for_credentials": r["credentials"]}
         for r in rows), key=lambda o: (o["waiting_for_credentials"], rank.get(o["status"], 0),
                                        o["key"]))
    return found


async def controllers_running(store: Store, *, runs: bool = False) -> int:
    """How many controllers are alive now that reconcile (`runs`: that carry out agent runs,
    a `p38 worker` of runs among them)."""
    here = socket.gethostname()
    return sum(1 for r in await store.fetch("controllers_list", GONE_AFTER_SECONDS)
               if r["alive"] and (r["run_workers"] if runs else r["workers"])
               and (r["host"] != here or _exists(r["pid"])))


def _exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's process: it exists
        return True
    return True


def _controller(row: dict[str, Any]) -> dict[str, Any]:
    return {"host": row["host"], "pid": row["pid"], "version": row["version"],
            "role": row["role"], "workers": row["workers"], "run_workers": row["run_workers"],
            "jobs": dict(row["jobs"] or {}),
            "started_at": row["started_at"], "last_seen": row["last_seen"],
            "seen_seconds_ago": round(row["seen_ago"], 1),
            "up_seconds": round(row["up_for"], 1)}


async def show_status(request: web.Request) -> web.Response:
    query(request, {})
    return answer(await gather(request.app[STORE], request.app[SETTINGS]))


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/status", show_status, expect_handler=expect_continue)
