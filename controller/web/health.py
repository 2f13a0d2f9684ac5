"""`/healthz` (the process answers), `/readyz` and `/api/health` (database reachable and migrated,
and what runs: webhook routes, providers, killswitch, the agents' sandbox), `/metrics`
(Prometheus text).

`describe(app)` is the truth at a glance, shared with the start banner (a `p38 worker` has no
webhook routes: it lists none, and says its role and job workers). `/readyz` answers
within `READY_TIMEOUT` seconds even when PostgreSQL hangs; `/metrics` answers during a database
outage, keeping the last queue depths and marking them stale. No writes.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from controller.store.migrations import latest_version
from controller.web.json import answer, expect_continue
from controller.web.keys import METRICS, POLICY, ROLE, SANDBOX, SETTINGS, STORE

READY_TIMEOUT = 3.0  # seconds: under the usual 5 s probe timeout of an orchestrator
METRICS_DB_TIMEOUT = 2.0
WEBHOOK_SECRETS = {"github": "GITHUB_WEBHOOK_SECRET", "railway": "RAILWAY_WEBHOOK_SECRET",
                   "n8n": "N8N_WEBHOOK_SECRET"}


async def describe(app: web.Application) -> dict[str, Any]:
    """What this process runs: each webhook route (enabled, or why not), each provider (live,
    or dry-run and why), and where a killswitch is on (the environment's and each source's
    applied Policy; the latter read from the database)."""
    settings, policy, role = app[SETTINGS], app[POLICY], app[ROLE]
    routes = []
    for source, variable in WEBHOOK_SECRETS.items() if role.name == "serve" else ():
        secret = getattr(settings.secrets, f"{source}_webhook_secret")
        enabled = secret is not None and bool(secret.get_secret_value())
        routes.append({"path": f"/webhooks/{source}", "enabled": enabled,
                       "reason": None if enabled else f"{variable} is not set"})
    providers = {}
    for name in sorted(set(policy.unavailable) | set(policy.providers or ())):
        live = not policy.dry_run and policy.can_use(name)
        reason = None if live else ("P38_DRY_RUN is set" if policy.dry_run
                                    else policy.unavailable.get(name, "unavailable"))
        providers[name] = {"live": live, "reason": reason}
    on = ["everywhere (P38_KILLSWITCH)"] if settings.policy.killswitch else []
    for row in await app[STORE].fetch("applied_policies"):
        spec = (row["document"] or {}).get("spec") or {}
        if spec.get("killswitch") is True:
            on.append(f"{row['source']} (Policy/{row['name']})")
    for row in await app[STORE].fetch("killswitches_all"):
        on.append(f"{row['source']} (/claude stop by {row['by_whom']})")
    sandbox = app.get(SANDBOX)
    return {"role": role.name, "jobs": dict(role.jobs),
            "routes": routes, "providers": providers, "dry_run": policy.dry_run,
            "killswitch": {"on": on, "environment": settings.policy.killswitch},
            "agents": sandbox.describe() if sandbox is not None else {"sandbox": "unknown"}}


async def healthz(_request: web.Request) -> web.Response:
    return answer({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    store = request.app[STORE]
    try:
        async with asyncio.timeout(READY_TIMEOUT):
            if not await store.ping():
                return answer({"status": "unavailable",
                               "reason": "database is not reachable"}, 503)
            version, expected = await store.schema_version(), latest_version()
            if version < expected:
                return answer({"status": "unavailable", "reason": "migrations not applied: "
                               f"at {version}, need {expected}"}, 503)
            state = await describe(request.app)
    except TimeoutError:
        return answer({"status": "unavailable", "reason": "the database did not answer "
                       f"within {READY_TIMEOUT:g}s"}, 503)
    except Exception as exc:  # the database went away between two questions
        return answer({"status": "unavailable",
                       "reason": f"database error: {type(exc).__name__}"}, 503)
    return answer({"status": "ready", "schema_version": version, **state})


async def metrics(request: web.Request) -> web.Response:
    m = request.app[METRICS]
    try:
        async with asyncio.timeout(METRICS_DB_TIMEOUT):
            rows = await request.app[STORE].fetch("queue_depth")
    except Exception:  # the database is away or slow: the last figures, marked stale
        m.queue_depth_stale.set(1)
    else:
        depth = {"queued": 0, "running": 0, "dead": 0}
        for row in rows:
            state = "running" if row["leased"] else row["state"]
            depth[state] = depth.get(state, 0) + row["n"]
        for state, n in depth.items():
            m.queue_depth.labels(state).set(n)
        m.queue_depth_stale.set(0)
    return web.Response(body=generate_latest(m.registry),
                        headers={"Content-Type": CONTENT_TYPE_LATEST})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/healthz", healthz, expect_handler=expect_continue)
    app.router.add_get("/readyz", readyz, expect_handler=expect_continue)
    app.router.add_get("/api/health", readyz, expect_handler=expect_continue)
    app.router.add_get("/metrics", metrics, expect_handler=expect_continue)
