"""The worker loop: claim -> observe -> decide -> gate -> act -> settle -> done / requeue.

Each worker claims one key at a time, keeps its lease alive while it works, cancels a reconcile
that outlives its deadline, and ends every reconcile with one atomic call fenced by the lease
(`WorkQueue.settle`): queue row, state transition, the keys the plan enqueues, the object's
status and the audit row together. What an outcome means is decided in one `match` (`_settle`).
It does no provider I/O itself (reconcilers observe through the context, the executor runs
actions) and never dies: whatever a reconcile raises becomes an outcome.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import structlog

from controller.engine.executor import ActionFailed, Executor, PolicyMoved
from controller.engine.metrics import Metrics
from controller.engine.outcomes import (
    Done,
    EffectiveRetry,
    Outcome,
    Record,
    Requeue,
    Retry,
    Stalled,
    failed_outcome,
    status_of,
)
from controller.engine.policies import PolicySource
from controller.engine.queue import (
    AuditEntry,
    Kinds,
    Lease,
    StatusEntry,
    WorkQueue,
    backoff_delay,
)
from controller.reconcile.context import ObserveContext
from controller.reconcile.errors import (
    ConcurrentUpdate,
    DeadlineExceeded,
    JobGaveUp,
    LeaseLost,
    SettleFailed,
    TerminalError,
    UndeclaredEnqueue,
    UnknownKind,
    Waiting,
)
from controller.reconcile.ids import key_kind
from controller.reconcile.plan import Plan
from controller.reconcile.policy import Policy, Verdict, gate, needs_approval
from controller.reconcile.reconciler import Reconciler
from controller.store import Store, statements

POLICY_TRIES = 3  # gate again at most this often when the policies change meanwhile
JOB_SAFETY_NET_SECONDS = 600.0  # a key waiting for its job looks again at least this often
log = structlog.get_logger("p38.ooda")


class Worker:
    def __init__(self, name: str, *, store: Store, queue: WorkQueue,
                 registry: Mapping[str, Reconciler], executor: Executor,
                 policies: PolicySource, metrics: Metrics, wake: asyncio.Event,
                 context: ObserveContext, kinds: Kinds | None = None) -> None:
        self.name = name
        self.kinds = kinds or Kinds()  # the key kinds this worker claims
        self._store = store
        self._queue = queue
        self._settings = queue.settings
        self._registry = registry
        self._executor = executor
        self._policies = policies
        self._metrics = metrics
        self._wake = wake
        self._context = context
        self.current: Lease | None = None

    async def run(self, stopping: asyncio.Event) -> None:
        """Claim and reconcile until `stopping` is set; a claimed key is finished or released."""
        poll = self._settings.poll_seconds
        while not stopping.is_set():
            self._wake.clear()
            try:
                lease, due = await self._queue.claim_or_wait(self.name, self.kinds)
                self._store.outage.ok()
            except Exception as exc:  # database away: keep trying (said once), do not die
                if not self._store.outage.failed(exc, where="claim"):
                    log.warning("claim_failed", worker=self.name, error=str(exc))
                lease, due = None, poll
            if lease is None:
                wait = poll if due is None else max(0.01, min(poll, due))
                await _wait_any(self._wake, stopping, timeout=wait)
                continue
            try:
                await self.process(lease)
            except Exception as exc:  # the database went away mid-settle, say: never die
                if not self._store.outage.failed(exc, where=f"settle {lease.key}"):
                    log.error("reconcile_not_settled", worker=self.name, key=lease.key,
                              error=f"{type(exc).__name__}: {exc}",
                              meaning="the lease expires and the key is retried")
                await _wait_any(self._wake, stopping, timeout=poll)

    async def process(self, lease: Lease) -> Outcome | None:
        """Reconcile one leased key and settle it; releases the lease if cancelled."""
        self.current = lease
        record = Record(str(uuid.uuid4()), datetime.now(UTC), time.perf_counter())
        reconciler = self._registry.get(lease.kind)
        structlog.contextvars.bind_contextvars(key=lease.key, reconcile_id=record.reconcile_id)
        try:
            with statements.counting() as record.statements:
                return await self._process(lease, record, reconciler)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await asyncio.shield(self._queue.release(lease))
            raise
        finally:
            self.current = None
            structlog.contextvars.unbind_contextvars("key", "reconcile_id")

    async def _process(self, lease: Lease, record: Record,
                       reconciler: Reconciler | None) -> Outcome | None:
        try:
            outcome = await self._with_heartbeat(lease, self._reconcile(lease, record,
                                                                        reconciler))
        except LeaseLost as exc:
            await self._audit_lost(lease, record, exc)
            return None
        await self._settle(lease, outcome, record, reconciler)
        return outcome

    async def _with_heartbeat(self, lease: Lease, body: Any) -> Outcome:
        task: asyncio.Task[Outcome] = asyncio.ensure_future(body)
        interval = self._settings.lease_seconds / 3
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

    async def _reconcile(self, lease: Lease, record: Record,
                         reconciler: Reconciler | None) -> Outcome:
        """The reconcile under its deadline: past it, cancelled and retried with backoff."""
        if reconciler is None:
            return Stalled(UnknownKind(f"no reconciler for kind {lease.kind!r}"))
        deadline = reconciler.deadline or self._settings.deadline_seconds
        try:
            async with asyncio.timeout(deadline):
                return await self._steps(lease, record, reconciler)
        except TimeoutError:
            return Retry(DeadlineExceeded(
                f"{lease.key}: the reconcile took longer than its deadline of {deadline:g}s "
                f"and was cancelled during {record.phase}"))

    async def _steps(self, lease: Lease, record: Record, reconciler: Reconciler) -> Outcome:
        try:
            t = time.perf_counter()
            snapshot = await reconciler.observe(self._context, lease.key)
            record.phases["observe"] = {"ms": _ms(t)}

            source = reconciler.source(lease.key)
            epoch, policies = await self._policies.current(lease.policy_epoch)
            for _ in range(POLICY_TRIES):
                if await self._decide_and_gate(record, reconciler, snapshot,
                                               policies.for_source(source), epoch):
                    epoch, policies = await self._policies.current(None)
                    continue
                t = time.perf_counter()
                record.phase = "act"
                try:
                    # The first record checks that the epoch is still the one gated under.
                    record.actions = await self._executor.act(
                        record.verdicts, key=lease.key, reconcile_id=record.reconcile_id,
                        source=source, epoch=epoch)
                except PolicyMoved:  # nothing written or run: decide and gate again
                    epoch, policies = await self._policies.current(None)
                    continue
                break
            else:
                return Retry(PolicyMoved("the policies kept changing while this reconcile "
                                         "gated its plan"))
            plan = record.plan
            assert plan is not None
            record.phases["act"] = {"ms": _ms(t), "actions": len(record.actions)}
            for outcome in record.actions:
                self._metrics.actions.labels(outcome.kind, outcome.status).inc()
        except ActionFailed as exc:
            record.actions = exc.outcomes
            if isinstance(exc.error, Waiting | TerminalError):
                return failed_outcome(exc.error, record)
            return Retry(exc)
        except (Waiting, TerminalError) as exc:
            return failed_outcome(exc, record)
        except Exception as exc:
            return Retry(exc)
        if any(v.verdict is Verdict.HELD for v in record.verdicts):
            # Not carried out: nothing of the plan is recorded, so the next look (a release,
            # an approval, the recheck) decides it again and emits the held actions again.
            return Requeue(self._settings.held_recheck_seconds, "actions held", plan,
                           carried_out=False)
        queued = next((o for o in record.actions if o.status == "queued"), None)
        if queued is not None:
            # Long work went to its job workers: wait for it (its end hints this key), with a
            # safety net in case that hint is lost.
            return Requeue(max(plan.requeue_after or 0.0, JOB_SAFETY_NET_SECONDS),
                           f"{queued.kind} {queued.reason}", plan)
        dry_run = any(v.verdict is Verdict.DRY_RUN for v in record.verdicts)
        if plan.requeue_after is not None and not (dry_run and plan.requeue_after < 1):
            # (A plan looks again at once to see what its actions did; recorded as dry-run,
            # they did nothing, and looking again would only record them again.)
            return Requeue(plan.requeue_after, plan.reason, plan)
        return Done(plan)

    async def _decide_and_gate(self, record: Record, reconciler: Reconciler, snapshot: Any,
                               policy: Policy, epoch: int | None) -> bool:
        """Decide under `policy` (read at `epoch`) and gate the plan's actions, the approvals
        read only for those that need one. True when that read saw the epoch move: the
        policies are read again and this is done again."""
        t = time.perf_counter()
        record.phase = "decide"
        plan = reconciler.decide(snapshot, policy)
        record.plan = plan
        record.phases["decide"] = {"ms": _ms(t), "decision": plan.decision}
        if plan.enqueue:
            record.phases["decide"]["enqueue"] = list(plan.enqueue)
        _check_owns(reconciler, plan)
        record.phase = "gate"
        wanted = [a.idempotency_key for a in plan.actions if needs_approval(a, policy)]
        approved: set[str] = set()
        now: int | None = None
        if wanted:
            now, approved = await self._policies.approvals(wanted)
        if wanted and epoch is not None and now != epoch:
            return True
        record.verdicts = gate(plan.actions, policy, approved)
        record.phases["gate"] = {v.action.idempotency_key: v.verdict.value
                                 for v in record.verdicts}
        return False

    async def _settle(self, lease: Lease, outcome: Outcome, record: Record,
                      reconciler: Reconciler | None) -> None:
        """The one place that decides what an outcome means for the key and its status."""
        retries = EffectiveRetry.of(reconciler.retry if reconciler else None, self._settings)
        elapsed = time.perf_counter() - record.t0
        failing_for = (lease.failing_for or 0.0) + elapsed
        plan = record.plan
        delay, error, firm, carried_out = 0.0, None, False, True
        match outcome:
            case Done(plan=plan):
                label, status = "done", status_of(plan, record.verdicts)
            case Requeue(after=after, reason=reason, plan=plan, carried_out=carried_out,
                         firm=firm):
                label, delay = "requeue", after
                status = status_of(plan, record.verdicts) if plan else \
                    StatusEntry("Waiting", "Waiting", reason)
                if status.status == "Ready" and not (plan and plan.periodic):
                    status = StatusEntry("Waiting", status.reason, reason, status.revision)
            case Retry(error=exc) if retries.gave_up(lease.attempt, failing_for):
                label = "dead"
                error = (f"{_describe(exc)} (gave up after failing for {failing_for:.0f}s, "
                         f"{lease.attempt} attempts)")
                status = StatusEntry("Stalled", "GaveUp", error)
            case Retry(error=exc):
                label, error = "retry", _describe(exc)
                delay = backoff_delay(lease.attempt, base=retries.backoff_base,
                                      cap=retries.backoff_cap)
                status = StatusEntry("Reconciling", type(_cause(exc)).__name__,
                                     f"{error} (attempt {lease.attempt}; next try in "
                                     f"{delay:.0f}s)")
            case Stalled(error=exc):
                label, error = "dead", _describe(exc)
                # (a job that gave up: its planning key gave up with it, and is revived by
                # the resync like any key that gave up)
                status = StatusEntry("Stalled", "GaveUp" if isinstance(exc, JobGaveUp)
                                     else type(exc).__name__, error)
        plan = plan if label in ("done", "requeue") and carried_out else None
        status = replace(status, source=reconciler.source(lease.key) if reconciler else None)
        enqueue = plan.enqueue if plan else ()
        woken: tuple[str, ...] = ()
        if label in ("retry", "dead") and reconciler is not None \
                and reconciler.wakes_on_failure and record.plan is not None:
            woken = record.plan.enqueue  # (a job's failure: the key that queued it decides)
        try:
            await self._queue.settle(
                lease, label, delay=delay, error=error,
                transition=plan.transition if plan else None,
                enqueue=enqueue, status=status, firm=firm,
                audit=self._entry(record))
        except ConcurrentUpdate as exc:
            # The object changed under us; nothing was written. Try again after backoff.
            await self._settle(lease, Retry(exc), record, reconciler)
            return
        except LeaseLost as exc:
            await self._audit_lost(lease, record, exc)
            return
        except Exception as exc:
            if isinstance(outcome, Retry) and isinstance(outcome.error, SettleFailed):
                raise  # even the plain retry cannot be written: the database is away
            # What the plan wanted written was refused (a value PostgreSQL rejects, say):
            # settle as a failure without it, so the key backs off and gives up in time.
            log.error("settle_refused", error=_describe(exc))
            record.plan = None
            await self._settle(lease, Retry(SettleFailed(_describe(exc))), record, reconciler)
            return
        if woken:  # (the settle writes a plan's keys only when the plan was carried out)
            await self._queue.hint(woken, event="job-failed", origin={"from": lease.key})
        if status.status == "Stalled":  # only a person can fix it: say so on the console too
            log.warning("stalled", reason=status.reason, message=status.message)
        duration = time.perf_counter() - record.t0
        self._metrics.reconciles.labels(lease.kind, label).inc()
        self._metrics.reconcile_seconds.labels(lease.kind).observe(duration)
        log.info("reconciled", outcome=label, attempt=lease.attempt, status=status.status,
                 decision=record.plan.decision if record.plan else None,
                 error=error, ms=round(duration * 1000, 2))

    def _entry(self, record: Record) -> AuditEntry:
        plan = record.plan
        # Round trips to PostgreSQL: the claim, what the reconcile sent, and its settle.
        record.phases["statements"] = 1 + sum(record.statements.values()) + 1
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


def _check_owns(reconciler: Reconciler, plan: Plan) -> None:
    if "*" in reconciler.owns:
        return
    undeclared = sorted({key_kind(k) for k in plan.enqueue} - reconciler.owns)
    if undeclared:
        raise UndeclaredEnqueue(f"{reconciler.kind} enqueued {', '.join(undeclared)} keys but "
                                f"declares owns={sorted(reconciler.owns)}")


def _cause(exc: BaseException) -> BaseException:
    return exc.error if isinstance(exc, ActionFailed) else exc


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
