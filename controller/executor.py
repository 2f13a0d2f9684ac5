"""The executor: every side effect goes through here, recorded before it runs.

Each action has a kind, params and an idempotency key. Its row is written first (pending ->
running -> succeeded | failed; dry_run, held and skipped are recorded and not run); a key
that already succeeded never runs again. Runners are registered by action kind and do the
outbound I/O through `controller.clients`; retries of transient errors belong to the clients.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import structlog

from controller.errors import NoActionRunner
from controller.policy import Gated, Verdict
from controller.store import Store

log = structlog.get_logger("p38.executor")

ActionRunner = Callable[[Mapping[str, Any]], Awaitable[Mapping[str, Any] | None]]

_RECORDED_STATUS = {Verdict.RUN: "pending", Verdict.DRY_RUN: "dry_run", Verdict.HELD: "held",
                    Verdict.SKIPPED: "skipped"}


@dataclass(frozen=True)
class ActionOutcome:
    action_id: int
    kind: str
    idempotency_key: str
    status: str  # succeeded | already_succeeded | dry_run | held | skipped
    reason: str

    def as_audit(self) -> dict[str, Any]:
        return {"id": self.action_id, "kind": self.kind, "key": self.idempotency_key,
                "status": self.status, "reason": self.reason}


class ActionFailed(Exception):
    """An action's runner raised; the reconcile is retried with backoff."""

    def __init__(self, outcome_so_far: list[ActionOutcome], kind: str, error: BaseException):
        super().__init__(f"action {kind} failed: {type(error).__name__}: {error}")
        self.outcomes = outcome_so_far


class Executor:
    def __init__(self, store: Store, runners: Mapping[str, ActionRunner] | None = None) -> None:
        self._store = store
        self.runners: dict[str, ActionRunner] = dict(runners or {})

    async def act(self, gated: Sequence[Gated], *, key: str,
                  reconcile_id: str) -> list[ActionOutcome]:
        """Record and (when allowed) run each action in order; stop at the first failure."""
        outcomes: list[ActionOutcome] = []
        for item in gated:
            action = item.action
            row = await self._store.fetchrow(
                "action_record", action.idempotency_key, action.kind, dict(action.params),
                _RECORDED_STATUS[item.verdict], item.reason, key, reconcile_id,
                action.description)
            assert row is not None
            action_id, status = row["id"], row["status"]
            if status == "succeeded":
                outcomes.append(ActionOutcome(action_id, action.kind, action.idempotency_key,
                                              "already_succeeded", "succeeded earlier"))
                continue
            if item.verdict is not Verdict.RUN:
                outcomes.append(ActionOutcome(action_id, action.kind, action.idempotency_key,
                                              status, item.reason))
                continue
            runner = self.runners.get(action.kind)
            if runner is None:
                error = NoActionRunner(f"no runner for action kind {action.kind!r}")
                await self._store.execute("action_finish", action_id, "failed", None, str(error))
                raise error
            await self._store.fetchval("action_start", action_id)
            try:
                result = await runner(action.params)
            except Exception as exc:
                await self._store.execute("action_finish", action_id, "failed", None,
                                          f"{type(exc).__name__}: {exc}")
                log.warning("action_failed", action=action.kind, action_id=action_id,
                            error=str(exc))
                raise ActionFailed(outcomes, action.kind, exc) from exc
            await self._store.execute("action_finish", action_id, "succeeded",
                                      dict(result or {}), None)
            outcomes.append(ActionOutcome(action_id, action.kind, action.idempotency_key,
                                          "succeeded", item.reason))
        return outcomes
