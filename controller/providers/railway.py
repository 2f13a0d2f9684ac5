"""The Railway provider: configured from RAILWAY_TOKEN (RAILWAY_TOKEN_KIND, RAILWAY_API_URL);
without a token it is unavailable and its actions are recorded as dry-run. It carries out the
agents' read-only `railway` tool and a Service's deploys and rollbacks, and offers the Service
reconciler its reads (a service's deployments).

The deploy and the rollback look before they act, so a mutation whose answer was lost (the
client never resends one) is retried from the top without doing it twice: a deployment of
the commit already made is the deploy's answer; a deployment of the rolled-back-to commit
newer than the failed one is the rollback's.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping
from typing import Any

import orjson

from controller.clients import railway_ops
from controller.clients.railway import RailwayClient, RailwayQuery, read_only
from controller.clients.tools import MAX_ANSWER_BYTES
from controller.providers import Bundle, Env, Provider
from controller.reconcile.plan import Action, ActionRunner, runner
from reconcilers.railway.service_actions import Deploy, Redeploy, Rollback

NAME = "railway"
NOT_LIVE = frozenset({"FAILED", "CRASHED", "REMOVED", "REMOVING", "SKIPPED"})
UNCONFIGURED = "RAILWAY_TOKEN is not set"


def bundle(*, transport: Any = None) -> Bundle:
    """`transport` (an httpx transport) replaces the network in tests (a fake Railway API)."""

    @contextlib.asynccontextmanager
    async def open_railway(env: Env) -> AsyncIterator[Provider]:
        providers = env.settings.providers
        if providers.railway_token is None:
            yield Provider(NAME, unavailable=UNCONFIGURED)
            return
        async with RailwayClient.open(token=providers.railway_token.get_secret_value(),
                                      url=providers.railway_api_url,
                                      kind=providers.railway_token_kind,
                                      transport=transport) as client:
            yield Provider(NAME, runners=runners(client), reads=Reads(client))

    return open_railway


def runners(client: RailwayClient) -> dict[str, ActionRunner]:
    async def query(p: RailwayQuery, _action: Action) -> Mapping[str, Any]:
        data = await client.execute(read_only(p.query), p.variables)
        if len(orjson.dumps(data)) > MAX_ANSWER_BYTES:
            raise ValueError(f"the answer is larger than {MAX_ANSWER_BYTES} bytes: ask for "
                             "less (first: N, fewer fields)")
        return {"data": data}

    async def deploy(p: Deploy, _action: Action) -> Mapping[str, Any]:
        for found in await railway_ops.deployments(client, p.service, p.environment):
            if found.commit == p.commit and found.status not in NOT_LIVE:
                return {"deployment": found.id, "found": True}  # in flight or running
        made = await railway_ops.deploy(client, p.service, p.environment, p.commit)
        return {"deployment": made}

    async def rollback(p: Rollback, _action: Action) -> Mapping[str, Any]:
        listed = await railway_ops.deployments(client, p.service, p.environment)
        failed = next((d for d in listed if d.id == p.failed), None)
        for found in listed:
            if failed is not None and found.created_at > failed.created_at \
                    and found.commit == p.commit:
                return {"deployment": found.id, "found": True}
        rolled = await railway_ops.rollback(client, p.to)
        return {"rolled_back_to": p.to, "accepted": rolled}

    async def redeploy(p: Redeploy, _action: Action) -> Mapping[str, Any]:
        listed = await railway_ops.deployments(client, p.service, p.environment)
        base = next((d for d in listed if d.id == p.deployment), None)
        for found in listed:
            if base is not None and found.created_at > base.created_at \
                    and found.commit == p.commit:
                return {"deployment": found.id, "found": True}
        made = await railway_ops.redeploy(client, p.deployment)
        return {"deployment": made.id}

    return {**runner(RailwayQuery, query), **runner(Deploy, deploy),
            **runner(Rollback, rollback), **runner(Redeploy, redeploy)}


class Reads:
    """`reconcilers.railway.service_actions.RailwayReads` over the client."""

    def __init__(self, client: RailwayClient) -> None:
        self._client = client

    async def deployments(self, service: str, environment: str) -> list[Mapping[str, Any]]:
        return [{"id": d.id, "status": d.status, "can_rollback": d.can_rollback,
                 "created_at": d.created_at, "commit": d.commit}
                for d in await railway_ops.deployments(self._client, service, environment)]
