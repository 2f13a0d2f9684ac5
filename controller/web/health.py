"""`/healthz` (the process answers), `/readyz` and `/api/health` (database reachable and
migrated), `/metrics` (Prometheus text; queue depth read at scrape time)."""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from controller.store.migrations import latest_version
from controller.web.json import answer
from controller.web.keys import METRICS, POLICY, STORE


async def healthz(_request: web.Request) -> web.Response:
    return answer({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    store = request.app[STORE]
    if not await store.ping():
        return answer({"status": "unavailable", "reason": "database is not reachable"}, 503)
    version, expected = await store.schema_version(), latest_version()
    if version < expected:
        return answer({"status": "unavailable",
                       "reason": f"migrations not applied: at {version}, need {expected}"}, 503)
    policy = request.app[POLICY]
    return answer({"status": "ready", "schema_version": version, "dry_run": policy.dry_run,
                   "providers": sorted(policy.providers or ()),
                   "killswitch": policy.killswitch})


async def metrics(request: web.Request) -> web.Response:
    m = request.app[METRICS]
    rows = await request.app[STORE].fetch("queue_depth")
    depth = {"queued": 0, "running": 0, "dead": 0}
    for row in rows:
        state = "running" if row["leased"] else row["state"]
        depth[state] = depth.get(state, 0) + row["n"]
    for state, n in depth.items():
        m.queue_depth.labels(state).set(n)
    return web.Response(body=generate_latest(m.registry),
                        headers={"Content-Type": CONTENT_TYPE_LATEST})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/api/health", readyz)
    app.router.add_get("/metrics", metrics)
