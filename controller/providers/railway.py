"""The Railway provider: configured from RAILWAY_TOKEN (and RAILWAY_API_URL); without a token
it is unavailable and its actions are recorded as dry-run. Today it carries out the agents'
read-only `railway` tool; Service deploys and rollbacks will be its other runners.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping
from typing import Any

import orjson

from controller.clients.railway import RailwayClient, RailwayQuery, read_only
from controller.clients.tools import MAX_ANSWER_BYTES
from controller.providers import Bundle, Env, Provider
from controller.reconcile.plan import Action, ActionRunner, runner

NAME = "railway"
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
            yield Provider(NAME, runners=runners(client))

    return open_railway


def runners(client: RailwayClient) -> dict[str, ActionRunner]:
    async def query(p: RailwayQuery, _action: Action) -> Mapping[str, Any]:
        data = await client.execute(read_only(p.query), p.variables)
        if len(orjson.dumps(data)) > MAX_ANSWER_BYTES:
            raise ValueError(f"the answer is larger than {MAX_ANSWER_BYTES} bytes: ask for "
                             "less (first: N, fewer fields)")
        return {"data": data}

    return runner(RailwayQuery, query)
