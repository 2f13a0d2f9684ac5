"""The executor: every side effect goes through here, recorded before it runs.

Each action has a kind, params and an idempotency key. Its row is written first, in the same
statement that starts it when it runs now (running -> succeeded | failed; pending while it
waits; dry_run and held are recorded and not run); a key that already
succeeded never runs again. Runners are registered by action kind (the providers' bundles) and
do the outbound I/O through `controller.clients`; short retries belong to the clients. A runner
that says `Waiting` (a rate limit minutes away) leaves its action pending with the reason. An
action of long work (`Params.job`) is not run here: it is queued for its kind's job workers
(`<job>:<source>#<action id>`) and the plan stops there, its reconcile waiting for the job.
A run of consecutive allowed actions of one kind whose runner is `Batched` (the store's
upserts of applied objects) is recorded, run and finished together, in three statements.
Because a crash can fall between a runner's call and the record of its success, every runner
first looks for what it would create (docs/extending.md). It decides nothing about retries or
waits (the worker does) and calls no provider but through its runners.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import structlog

from controller.reconcile import ids
from controller.reconcile.errors import JobGaveUp, NoActionRunner, Waiting
from controller.reconcile.plan import ActionRunner, Batched
from controller.reconcile.policy import Gated, Verdict
from controller.store import Store

log = structlog.get_logger("p38.executor")


_RECORDED_STATUS = {Verdict.RUN: "pending", Verdict.DRY_RUN: "dry_run", Verdict.HELD: "held",
                    Verdict.REFUSED: "skipped"}


@dataclass(frozen=True)
class ActionOutcome:
    action_id: int
    kind: str
    idempotency_key: str
    status: str  # succeeded | already_succeeded | dry_run | held | queued (as a job)
    reason: str
    result: Mapping[str, Any] | None = None  # what the runner returned (this attempt)

    def as_audit(self) -> dict[str, Any]:
        return {"id": self.action_id, "kind": self.kind, "key": self.idempotency_key,
                "status": self.status, "reason": self.reason}


class PolicyMoved(Exception):
    """The policy epoch moved between the gate and the first record: nothing was written or
    run; the plan is decided and gated again under the policy as it is now."""


class ActionFailed(Exception):
    """An action's runner raised `error`; what that means (retry, wait, stall) is the
    worker's to decide from the error's type."""

    def __init__(self, outcome_so_far: list[ActionOutcome], kind: str, error: BaseException):
        super().__init__(f"action {kind} failed: {type(error).__name__}: {error}")
        self.outcomes = outcome_so_far
        self.error = error


class Executor:
    def __init__(self, store: Store, runners: Mapping[str, ActionRunner] | None = None) -> None:
        self._store = store
        self.runners: dict[str, ActionRunner] = dict(runners or {})

    async def act(self, gated: Sequence[Gated], *, key: str, reconcile_id: str,
                  source: str | None = None, epoch: int | None = None) -> list[ActionOutcome]:
        """Record and (when allowed) run each action in order; stop at the first failure.

        `epoch`: the policy epoch the actions were gated under; the first record checks it
        in the same statement, and when it moved nothing is written or run (`PolicyMoved`)."""
        outcomes: list[ActionOutcome] = []
        gated = list(gated)
        at = 0
        while at < len(gated):
            check, epoch = epoch, None  # (only the first statement checks: nothing ran yet)
            together = self._run_together(gated, at)
            if len(together) > 1:
                outcomes.extend(await self._act_together(together, outcomes, key=key,
                                                         reconcile_id=reconcile_id,
                                                         epoch=check))
                at += len(together)
                continue
            item = gated[at]
            at += 1
            action = item.action
            runner = self.runners.get(action.kind)
            if item.verdict is Verdict.RUN and action.job is None and runner is not None:
                # Recorded and started in one statement: its runner runs it now.
                row = await self._store.fetchrow(
                    "action_begin", action.idempotency_key, action.kind, dict(action.params),
                    item.reason, key, reconcile_id, action.description, check)
            else:
                runner = None
                row = await self._store.fetchrow(
                    "action_record", action.idempotency_key, action.kind,
                    dict(action.params), _RECORDED_STATUS[item.verdict], item.reason, key,
                    reconcile_id, action.description, check)
            if row is None:
                raise PolicyMoved("a Policy or a killswitch changed since the plan was gated")
            action_id, status = row["id"], row["status"]
            if status == "succeeded":
                outcomes.append(ActionOutcome(action_id, action.kind, action.idempotency_key,
                                              "already_succeeded", "succeeded earlier"))
                continue
            if item.verdict is not Verdict.RUN:
                outcomes.append(ActionOutcome(action_id, action.kind, action.idempotency_key,
                                              status, item.reason))
                continue
            if action.job is not None:
                # Long work: its job workers run it (reconcilers/jobs.py); this reconcile
                # only queues it and waits, woken when the job ends. A job already queued or
                # running is hinted again (a lost or dead job key comes back).
                job_key = ids.job_key(action.job, source, action_id)
                queued = await self._store.fetchrow("queue_of_key", job_key)
                if queued is not None and queued["state"] == "dead":
                    raise ActionFailed(outcomes, action.kind, JobGaveUp(
                        f"{job_key} gave up: {queued['last_error']}"))
                await self._store.fetchval("queue_hint", [job_key], str(uuid.uuid4()), "job",
                                           {"from": key, "action": action_id})
                outcomes.append(ActionOutcome(action_id, action.kind, action.idempotency_key,
                                              "queued", f"queued as {job_key}"))
                break  # what follows waits for the job's result
            if runner is None:
                error = NoActionRunner(f"no runner for action kind {action.kind!r}")
                await self._store.execute("action_finish", action_id, "failed", None, str(error))
                raise error
            try:
                result = await runner(action)
            except asyncio.CancelledError:  # the deadline passed, or the worker is stopping
                await asyncio.shield(self._store.execute(
                    "action_finish", action_id, "failed", None,
                    "cancelled before it finished (its reconcile's deadline, or shutdown); "
                    "the next attempt looks for what it may have done"))
                raise
            except Waiting as exc:  # not run; recorded as still to do, with the reason
                await self._store.execute("action_finish", action_id, "pending", None,
                                          f"waiting {exc.requeue_after:.0f}s: {exc.reason}")
                raise ActionFailed(outcomes, action.kind, exc) from exc
            except Exception as exc:
                await self._store.execute("action_finish", action_id, "failed", None,
                                          f"{type(exc).__name__}: {exc}")
                log.warning("action_failed", action=action.kind, action_id=action_id,
                            error=str(exc))
                raise ActionFailed(outcomes, action.kind, exc) from exc
            await self._store.execute("action_finish", action_id, "succeeded",
                                      dict(result or {}), None)
            outcomes.append(ActionOutcome(action_id, action.kind, action.idempotency_key,
                                          "succeeded", item.reason, result))
        return outcomes

    def _run_together(self, gated: Sequence[Gated], at: int) -> Sequence[Gated]:
        """The run of consecutive allowed actions from `at` that one `Batched` runner takes
        at once (distinct keys, no job); a single action otherwise."""
        first = gated[at].action
        runner = self.runners.get(first.kind)
        if not isinstance(runner, Batched):
            return gated[at:at + 1]
        end, keys = at, set()
        while end < len(gated):
            item = gated[end]
            if item.verdict is not Verdict.RUN or item.action.kind != first.kind \
                    or item.action.job is not None or item.action.idempotency_key in keys:
                break
            keys.add(item.action.idempotency_key)
            end += 1
        return gated[at:max(end, at + 1)]

    async def _act_together(self, together: Sequence[Gated], so_far: list[ActionOutcome], *,
                            key: str, reconcile_id: str,
                            epoch: int | None) -> list[ActionOutcome]:
        """Record, run and finish a run of actions of one kind in three statements."""
        kind = together[0].action.kind
        runner = self.runners[kind]
        assert isinstance(runner, Batched)
        rows = await self._store.fetch(
            "actions_begin_many", [g.action.idempotency_key for g in together], kind,
            [dict(g.action.params) for g in together], [g.reason for g in together], key,
            reconcile_id, [g.action.description for g in together], epoch)
        if not rows:
            raise PolicyMoved("a Policy or a killswitch changed since the plan was gated")
        recorded = {r["idempotency_key"]: (r["id"], r["status"]) for r in rows}
        outcomes: list[ActionOutcome] = []
        to_run: list[tuple[int, Gated]] = []
        for item in together:
            action_id, status = recorded[item.action.idempotency_key]
            if status == "succeeded":
                outcomes.append(ActionOutcome(action_id, kind, item.action.idempotency_key,
                                              "already_succeeded", "succeeded earlier"))
            else:
                to_run.append((action_id, item))
        if not to_run:
            return outcomes
        ids = [action_id for action_id, _ in to_run]
        try:
            results = await runner.many([item.action for _, item in to_run])
        except asyncio.CancelledError:
            await asyncio.shield(self._store.execute(
                "actions_finish_many", ids, "failed", [None] * len(ids),
                "cancelled before it finished (its reconcile's deadline, or shutdown); "
                "the next attempt looks for what it may have done"))
            raise
        except Waiting as exc:
            await self._store.execute("actions_finish_many", ids, "pending", [None] * len(ids),
                                      f"waiting {exc.requeue_after:.0f}s: {exc.reason}")
            raise ActionFailed([*so_far, *outcomes], kind, exc) from exc
        except Exception as exc:
            await self._store.execute("actions_finish_many", ids, "failed", [None] * len(ids),
                                      f"{type(exc).__name__}: {exc}")
            log.warning("action_failed", action=kind, actions=len(ids), error=str(exc))
            raise ActionFailed([*so_far, *outcomes], kind, exc) from exc
        await self._store.execute("actions_finish_many", ids, "succeeded",
                                  [dict(r or {}) for r in results], None)
        for (action_id, item), result in zip(to_run, results, strict=True):
            outcomes.append(ActionOutcome(action_id, kind, item.action.idempotency_key,
                                          "succeeded", item.reason, result))
        return outcomes
