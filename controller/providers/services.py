"""The services provider: the controller's own records of `Service` objects (the commits they
must not deploy again, `service_bad_commits`): the runner that marks one and the read the
Service reconciler uses. Needs no credentials: always available. Idempotent by construction
(a commit is marked once).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping
from typing import Any

from controller.providers import Env, Provider
from controller.reconcile.plan import Action, ActionRunner, runner
from controller.store import Store
from reconcilers.railway.service_actions import MarkBad

NAME = "services"


@contextlib.asynccontextmanager
async def bundle(env: Env) -> AsyncIterator[Provider]:
    yield Provider(NAME, runners=runners(env.store), reads=ServiceStoreReads(env.store))


def runners(store: Store) -> dict[str, ActionRunner]:
    async def mark_bad(p: MarkBad, _action: Action) -> Mapping[str, Any]:
        marked = await store.fetchval("service_bad_mark", p.service_key, p.commit,
                                      p.deployment, p.reason)
        return {"commit": p.commit, "marked": marked is not None}

    return runner(MarkBad, mark_bad)


class ServiceStoreReads:
    """`reconcilers.railway.service_actions.ServiceReads` over the store."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def bad_commits(self, service_key: str) -> list[Mapping[str, Any]]:
        return [{"commit": r["commit_sha"], "deployment": r["deployment"],
                 "reason": r["reason"]}
                for r in await self._store.fetch("service_bad_list", service_key)]
