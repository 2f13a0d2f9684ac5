"""The engine's desk (`controller.reconcile.desk.Desk`): one action gated and executed outside a
reconcile's plan, for a runner that acts on someone's behalf (an agent's tool calls).

The same gate (killswitch, approvals, dry-run, credentials) and the same executor records as a
plan's actions; an action that needs approval cannot wait inside a running agent, so it is
answered as held. Never raises for the action's own failure: the answer says it.
"""

from __future__ import annotations

import uuid

from controller.engine.executor import ActionFailed, Executor
from controller.engine.policies import PolicySource
from controller.reconcile.desk import Performed
from controller.reconcile.plan import Action
from controller.reconcile.policy import gate


class ActionDesk:
    def __init__(self, executor: Executor) -> None:
        self._executor = executor
        self.policies: PolicySource | None = None  # set once the providers are open

    async def perform(self, action: Action, *, key: str, source: str | None) -> Performed:
        if self.policies is None:
            return Performed("held", "the controller is still starting")
        policy = (await self.policies.current())[1].for_source(source)
        gated = gate([action], policy, approved=set())
        try:
            outcomes = await self._executor.act(gated, key=key, reconcile_id=str(uuid.uuid4()))
        except ActionFailed as exc:
            return Performed("failed", f"{type(exc.error).__name__}: {exc.error}")
        outcome = outcomes[0]
        return Performed(outcome.status, outcome.reason, outcome.result)
