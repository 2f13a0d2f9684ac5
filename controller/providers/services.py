"""The services provider: the controller's own records of `Service` objects (the commits they
must not deploy again, `service_bad_commits`; their incidents, `service_incidents`): the
runners that mark a commit, record and close an incident, and probe a deployment's health
(`controller/clients/health.py`), and the reads the Service reconciler uses. Needs no
credentials: always available. Idempotent by construction (a commit is marked once, an
incident recorded once per failed deployment; a probe only reads).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping
from typing import Any

from controller.clients.health import HealthProbe
from controller.providers import Bundle, Env, Provider
from controller.reconcile.plan import Action, ActionRunner, runner
from controller.store import Store
from reconcilers.railway.service_actions import CloseIncidents, HealthCheck, MarkBad, RecordIncident

NAME = "services"


def bundle(*, transport: Any = None) -> Bundle:
    """`transport` (an httpx transport) replaces the network of the health probe in tests."""

    @contextlib.asynccontextmanager
    async def open_services(env: Env) -> AsyncIterator[Provider]:
        async with HealthProbe.open(transport=transport) as probe:
            yield Provider(NAME, runners=runners(env.store, probe),
                           reads=ServiceStoreReads(env.store))

    return open_services


def runners(store: Store, probe: HealthProbe) -> dict[str, ActionRunner]:
    async def mark_bad(p: MarkBad, _action: Action) -> Mapping[str, Any]:
        marked = await store.fetchval("service_bad_mark", p.service_key, p.commit,
                                      p.deployment, p.reason)
        return {"commit": p.commit, "marked": marked is not None}

    async def health(p: HealthCheck, _action: Action) -> Mapping[str, Any]:
        return {**await probe.probe(p.url), "deployment": p.deployment}

    async def record_incident(p: RecordIncident, _action: Action) -> Mapping[str, Any]:
        recorded = await store.fetchval("service_incident_record", p.service_key, p.deployment,
                                        p.commit, p.status, p.rolled_back_to,
                                        p.rolled_back_commit)
        return {"deployment": p.deployment, "recorded": recorded is not None}

    async def close_incidents(p: CloseIncidents, _action: Action) -> Mapping[str, Any]:
        closed = await store.fetch("service_incidents_close", p.service_key, p.deployment)
        return {"closed": [r["deployment"] for r in closed], "by": p.deployment}

    return {**runner(MarkBad, mark_bad), **runner(HealthCheck, health),
            **runner(RecordIncident, record_incident), **runner(CloseIncidents, close_incidents)}


class ServiceStoreReads:
    """`reconcilers.railway.service_actions.ServiceReads` over the store."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def bad_commits(self, service_key: str) -> list[Mapping[str, Any]]:
        return [{"commit": r["commit_sha"], "deployment": r["deployment"],
                 "reason": r["reason"]}
                for r in await self._store.gathered.fetch("service_bad_list", service_key)]

    async def open_incidents(self, service_key: str) -> list[Mapping[str, Any]]:
        return [{"deployment": r["deployment"], "commit": r["commit_sha"],
                 "status": r["status"], "rolled_back_to": r["rolled_back_to"],
                 "rolled_back_commit": r["rolled_back_commit"]}
                for r in await self._store.gathered.fetch("service_incidents_list", service_key, 20)
                if r["closed_at"] is None]
