"""What one reconcile can come to (Done, Requeue, Retry, Stalled), the record its audit row is
written from, a reconciler's retry policy with the settings' defaults filled in, and the
status a carried-out plan leaves.

Plain data for the worker loop (`controller/engine/ooda.py`); no I/O.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from controller.config import QueueSettings
from controller.engine.executor import ActionOutcome
from controller.engine.queue import StatusEntry
from controller.reconcile.errors import TerminalError, Waiting
from controller.reconcile.plan import Plan
from controller.reconcile.policy import Gated, Verdict
from controller.reconcile.reconciler import RetryPolicy


@dataclass(frozen=True)
class Done:
    plan: Plan


@dataclass(frozen=True)
class Requeue:
    """Look again after `after` seconds. `carried_out`: the plan's transition and follow-ups
    are written (False when its actions were held: the next look decides them again). `firm`:
    hints do not end the wait."""

    after: float
    reason: str
    plan: Plan | None = None
    carried_out: bool = True
    firm: bool = False


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
    phase: str = "observe"  # the phase running now (named when a deadline cancels it)
    plan: Plan | None = None
    verdicts: list[Gated] = field(default_factory=list)
    actions: list[ActionOutcome] = field(default_factory=list)
    statements: Counter[str] = field(default_factory=Counter)  # sent by this reconcile


@dataclass(frozen=True)
class EffectiveRetry:
    """A reconciler's retry policy with the settings' defaults filled in."""

    backoff_base: float
    backoff_cap: float
    give_up_after: float
    max_attempts: int

    @classmethod
    def of(cls, declared: RetryPolicy | None, settings: QueueSettings) -> EffectiveRetry:
        d = declared or RetryPolicy()
        return cls(
            backoff_base=settings.backoff_base_seconds if d.backoff_base is None
            else d.backoff_base,
            backoff_cap=settings.backoff_cap_seconds if d.backoff_cap is None else d.backoff_cap,
            give_up_after=settings.give_up_seconds if d.give_up_after is None
            else d.give_up_after,
            max_attempts=settings.max_attempts if d.max_attempts is None else d.max_attempts)

    def gave_up(self, attempt: int, failing_for: float) -> bool:
        return (0 < self.give_up_after <= failing_for) or (0 < self.max_attempts <= attempt)


def failed_outcome(exc: Waiting | TerminalError, record: Record) -> Outcome:
    """A reconcile that said Waiting (a requeue, its plan a Waiting status) or could not go
    on (Stalled)."""
    if isinstance(exc, Waiting):
        record.plan = record.plan or Plan("Waiting", exc.reason)
        return Requeue(exc.requeue_after, exc.reason,
                       Plan(type(exc).__name__, exc.reason, status="Waiting"), firm=exc.firm)
    return Stalled(exc)


def status_of(plan: Plan, verdicts: list[Gated]) -> StatusEntry:
    """The status a carried-out plan leaves: Blocked when actions were held or only recorded
    (and the plan said Ready or Reconciling), else the plan's own."""
    if plan.status not in ("Ready", "Reconciling"):
        return StatusEntry(plan.status, plan.decision, plan.reason, plan.revision,
                           plan.forget)
    for wanted in (Verdict.REFUSED, Verdict.HELD, Verdict.DRY_RUN):
        blocked = [v for v in verdicts if v.verdict is wanted]
        if blocked:
            return StatusEntry("Blocked", blocked[0].blocked_by or "Held",
                               f"{len(blocked)} action(s) not executed: {blocked[0].reason}; "
                               f"{plan.reason}", plan.revision, plan.forget)
    return StatusEntry(plan.status, plan.decision, plan.reason, plan.revision, plan.forget)
