"""The services provider: the controller's own records of `Service` objects (the commits they
must not deploy again, `service_bad_commits`): the runner that marks one, the health probe of a
deployment (`controller/clients/health.py`), and the read the Service reconciler uses. Needs
no credentials: always available. Idempotent by construction (a commit is marked once; a probe
only reads).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping
from typing import Any

from controller.clients.health import HealthProbe
from controller.providers import Bundle, Env, Provider
from controller.reconcile.plan import Action, ActionRunner, runner
from controller.store import Store
from reconcilers.railway.service_actions import HealthCheck, MarkBad

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

    return {**runner(MarkBad, mark_bad), **runner(HealthCheck, health)}


class ServiceStoreReads:
    """`reconcilers.railway.service_actions.ServiceReads` over the store."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def bad_commits(self, service_key: str) -> list[Mapping[str, Any]]:
        return [{"commit": r["commit_sha"], "deployment": r["deployment"],
                 "reason": r["reason"]}
                for r in await self._store.fetch("service_bad_list", service_key)]
