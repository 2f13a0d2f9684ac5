"""The notify provider: the controller's own notifications (a Service rolled back, a rollback
that failed) to the Policy's notification targets, through the sender the agents' `notify`
tool uses (`controller/clients/tools.py`: the bound bearer token, never sent twice). Needs no
credentials: always available; a target without a token is sent without one.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime
from typing import Any

from controller.clients.tools import ToolClient
from controller.providers import Env, Provider
from controller.reconcile.plan import Action, ActionRunner, runner
from reconcilers.railway.service_actions import NotifyEvent

NAME = "notify"


@contextlib.asynccontextmanager
async def bundle(env: Env) -> AsyncIterator[Provider]:
    async with ToolClient.open() as tools:
        yield Provider(NAME, runners=runners(tools))


def runners(tools: ToolClient) -> dict[str, ActionRunner]:
    async def event(p: NotifyEvent, action: Action) -> Mapping[str, Any]:
        body: dict[str, Any] = {**p.body, "time": datetime.now(UTC).isoformat()}
        return await tools.event(p.target, p.url, body, action.idempotency_key)

    return runner(NotifyEvent, event)
