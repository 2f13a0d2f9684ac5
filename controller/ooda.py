"""The worker loop: claim -> observe -> decide -> gate -> act -> record -> done / requeue.

Each worker claims one key at a time, keeps its lease alive while it works, and ends every
reconcile with one atomic call fenced by the lease (`WorkQueue.settle`): queue update, state
transition and audit row together. What an outcome means is decided in one `match`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import structlog

from controller.context import StoreContext
from controller.errors import ConcurrentUpdate, LeaseLost, TerminalError, UnknownKind, Waiting
from controller.executor import ActionFailed, ActionOutcome, Executor
from controller.metrics import Metrics
from controller.policy import Policy, Verdict, gate
from controller.queue import AuditEntry, Lease, WorkQueue
from controller.store import Store
from reconcilers.base import ObserveContext, Plan, Reconciler, Transition

log = structlog.get_logger("p38.ooda")

APPROVAL_RECHECK_SECONDS = 60.0


@dataclass(frozen=True)
class Done:
    plan: Plan


@dataclass(frozen=True)
class Requeue:
    after: float
    reason: str
    plan: Plan | None = None


@dataclass(frozen=True)
class Retry:
    error: BaseException


@dataclass(frozen=True)
class Stalled:
    error: BaseException


Outcome = Done | Requeue | Retry | Stalled


@dataclass
class Record:
    """What the audit row says about one reconcile."""

    reconcile_id: str
    started: datetime
    t0: float
    phases: dict[str, Any] = field(default_factory=dict)
    plan: Plan | None = None
    actions: list[ActionOutcome] = field(default_factory=list)


class Worker:
    def __init__(self, name: str, *, store: Store, queue: WorkQueue,
                 registry: Mapping[str, Reconciler], executor: Executor, policy: Policy,
                 metrics: Metrics, wake: asyncio.Event,
                 context: ObserveContext | None = None) -> None:
        self.name = name
        self._store = store
        self._queue = queue
        self._registry = registry
        self._executor = executor
        self._policy = policy
        self._metrics = metrics
        self._wake = wake
        self._context: ObserveContext = context or StoreContext(store)
        self.current: Lease | None = None

    async def run(self, stopping: asyncio.Event) -> None:
        """Claim and reconcile until `stopping` is set; a claimed key is finished or released."""
        poll = self._queue.settings.poll_seconds
        while not stopping.is_set():
            self._wake.clear()
            try:
                lease = await self._queue.claim(self.name)
            except Exception as exc:  # database away: keep trying, do not die
                log.warning("claim_failed", worker=self.name, error=str(exc))
                lease = None
            if lease is None:
                due = await self._seconds_until_due(poll)
                await _wait_any(self._wake, stopping, timeout=due)
                continue
            try:
                await self.process(lease)
            except Exception as exc:  # the database went away mid-settle, say: never die
                log.error("reconcile_not_settled", worker=self.name, key=lease.key,
                          error=f"{type(exc).__name__}: {exc}",
                          meaning="the lease expires and the key is retried")
                await _wait_any(self._wake, stopping, timeout=poll)

    async def _seconds_until_due(self, poll: float) -> float:
        try:
            due = await self._queue.seconds_until_due()
        except Exception:
            return poll
        return poll if due is None else max(0.01, min(poll, due))

    async def process(self, lease: Lease) -> Outcome | None:
        """Reconcile one leased key and settle it; releases the lease if cancelled."""
        self.current = lease
        record = Record(str(uuid.uuid4()), datetime.now(UTC), time.perf_counter())
        structlog.contextvars.bind_contextvars(key=lease.key, reconcile_id=record.reconcile_id)
        try:
            try:
                outcome = await self._with_heartbeat(lease, self._reconcile(lease, record))
            except LeaseLost as exc:
                await self._audit_lost(lease, record, exc)
                return None
            await self._settle(lease, outcome, record)
            return outcome
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await asyncio.shield(self._queue.release(lease))
            raise
        finally:
            self.current = None
            structlog.contextvars.unbind_contextvars("key", "reconcile_id")

    async def _with_heartbeat(self, lease: Lease, body: Any) -> Outcome:
        task: asyncio.Task[Outcome] = asyncio.ensure_future(body)
        interval = self._queue.settings.lease_seconds / 3
        try:
            while True:
                done, _ = await asyncio.wait({task}, timeout=interval)
                if done:
                    return task.result()
                if not await self._queue.renew(lease):
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await task
                    raise LeaseLost(f"{lease.key}: lease expired before the reconcile ended")
        finally:
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    async def _reconcile(self, lease: Lease, record: Record) -> Outcome:
        reconciler = self._registry.get(lease.kind)
        if reconciler is None:
            return Stalled(UnknownKind(f"no reconciler for kind {lease.kind!r}"))
        try:
            t = time.perf_counter()
            snapshot = await reconciler.observe(self._context, lease.key)
            record.phases["observe"] = {"ms": _ms(t)}

            t = time.perf_counter()
            plan = reconciler.decide(snapshot, self._policy)
            record.plan = plan
            record.phases["decide"] = {"ms": _ms(t), "decision": plan.decision}

            approved = await self._approved([a.idempotency_key for a in plan.actions])
            verdicts = gate(plan.actions, self._policy, approved)
            record.phases["gate"] = {v.action.idempotency_key: v.verdict.value for v in verdicts}

            t = time.perf_counter()
            record.actions = await self._executor.act(
                verdicts, key=lease.key, reconcile_id=record.reconcile_id)
            record.phases["act"] = {"ms": _ms(t), "actions": len(record.actions)}
            for outcome in record.actions:
                self._metrics.actions.labels(outcome.kind, outcome.status).inc()
        except ActionFailed as exc:
            record.actions = exc.outcomes
            return Retry(exc)
        except Waiting as exc:
            record.plan = record.plan or Plan("Waiting", exc.reason)
            return Requeue(exc.requeue_after, exc.reason)
        except TerminalError as exc:
            return Stalled(exc)
        except Exception as exc:
            return Retry(exc)
        if any(v.verdict is Verdict.HELD for v in verdicts):
            return Requeue(APPROVAL_RECHECK_SECONDS, "actions held for approval", plan)
        if plan.requeue_after is not None:
            return Requeue(plan.requeue_after, plan.reason, plan)
        return Done(plan)

    async def _approved(self, keys: list[str]) -> set[str]:
        if not keys:
            return set()
        rows = await self._store.fetch("approvals_for", keys)
        return {r["idempotency_key"] for r in rows}

    async def _settle(self, lease: Lease, outcome: Outcome, record: Record) -> None:
        """The one place that decides what an outcome means for the key."""
        max_attempts = self._queue.settings.max_attempts
        transition: Transition | None = None
        delay, error = 0.0, None
        match outcome:
            case Done(plan=plan):
                label, transition = "done", plan.transition
            case Requeue(after=after, plan=plan):
                label, delay = "requeue", after
                transition = plan.transition if plan else None
            case Retry(error=exc) if lease.attempt >= max_attempts:
                label = "dead"
                error = f"{_describe(exc)} (gave up after {lease.attempt} attempts)"
            case Retry(error=exc):
                label, error = "retry", _describe(exc)
                delay = self._queue.backoff(lease.attempt)
            case Stalled(error=exc):
                label, error = "dead", _describe(exc)
        try:
            await self._queue.settle(lease, label, delay=delay, error=error,
                                     transition=transition, audit=self._entry(record))
        except ConcurrentUpdate as exc:
            # The object changed under us; nothing was written. Try again after backoff.
            await self._settle(lease, Retry(exc), record)
            return
        except LeaseLost as exc:
            await self._audit_lost(lease, record, exc)
            return
        duration = time.perf_counter() - record.t0
        self._metrics.reconciles.labels(lease.kind, label).inc()
        self._metrics.reconcile_seconds.labels(lease.kind).observe(duration)
        log.info("reconciled", outcome=label, attempt=lease.attempt,
                 decision=record.plan.decision if record.plan else None,
                 error=error, ms=round(duration * 1000, 2))

    def _entry(self, record: Record) -> AuditEntry:
        plan = record.plan
        return AuditEntry(
            reconcile_id=record.reconcile_id, started=record.started,
            duration_ms=(time.perf_counter() - record.t0) * 1000, phases=record.phases,
            decision=plan.decision if plan else None, reason=plan.reason if plan else None,
            actions=[a.as_audit() for a in record.actions])

    async def _audit_lost(self, lease: Lease, record: Record, exc: BaseException) -> None:
        """A reconcile whose lease was taken over: recorded, nothing else written."""
        self._metrics.reconciles.labels(lease.kind, "lost").inc()
        log.warning("lease_lost", error=str(exc))
        entry = self._entry(record)
        await self._store.execute(
            "audit_record", uuid.UUID(entry.reconcile_id), lease.key, lease.kind, self.name,
            list(lease.deliveries), lease.attempt, "lost", entry.phases, entry.decision,
            entry.reason, entry.actions, str(exc), entry.started, entry.duration_ms)


def _ms(t0: float) -> float:
    return round((time.perf_counter() - t0) * 1000, 3)


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


async def _wait_any(wake: asyncio.Event, stopping: asyncio.Event, *, timeout: float) -> None:
    waiters = [asyncio.ensure_future(wake.wait()), asyncio.ensure_future(stopping.wait())]
    try:
        await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
