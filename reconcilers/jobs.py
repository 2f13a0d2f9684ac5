"""Jobs (`<job kind>:<source>#<action id>`): long work carried out by job workers of its own
kind, never inside the reconcile that planned it.

An action whose parameters name a job kind (`Params.job`: a generation, a Claude session, a
run) is not run by the reconcile that plans it: the executor records it, queues this key and
the planning key waits (controller/engine/executor.py, ooda.py). A job worker claims the key
like any other (a lease, SKIP LOCKED, renewed while it works), and `decide` plans the same
action to run here, under the job kind's deadline, with the planning key enqueued so that the
job's end wakes it in the settle's own transaction. An action that succeeded is not run again
(its key is forgotten); one that failed is retried by this key's backoff, from the top (its
runner finds what an interrupted attempt did, docs/extending.md), and its failure wakes the
planning key too, which decides again (a killswitch turned on meanwhile holds the action:
recorded held, this key then lets it go). A job whose worker stopped
(a deploy's SIGTERM, a crash) is claimed again on any process. No I/O of its own.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, ClassVar

from controller.reconcile.context import ActionRecord, ObserveContext
from controller.reconcile.ids import job_ref
from controller.reconcile.plan import Params, Plan
from controller.reconcile.reconciler import Reconciler

if TYPE_CHECKING:
    from controller.reconcile.policy import Policy


@dataclass(frozen=True)
class JobSnapshot:
    key: str
    record: ActionRecord | None


class JobReconciler(Reconciler):
    """One job kind: `params` is the action it carries out, `owns` the kinds of the keys that
    plan it (woken when it ends), `deadline` the longest such work may take."""

    params: ClassVar[type[Params]]
    wakes_on_failure: ClassVar[bool] = True  # the planning key sees the failure and decides

    def source(self, key: str) -> str | None:
        ref = job_ref(key)
        return ref[0] if ref else None

    async def observe(self, ctx: ObserveContext, key: str) -> JobSnapshot:
        ref = job_ref(key)
        return JobSnapshot(key, await ctx.action_by_id(ref[1]) if ref else None)

    def decide(self, snapshot: JobSnapshot, policy: Policy) -> Plan:
        record = snapshot.record
        if record is None or record.kind != self.params.action_kind or record.params is None:
            return Plan("NoSuchJob", f"{snapshot.key} names no {self.params.action_kind} "
                                     "action", forget=True)
        owner = (record.key,) if record.key else ()
        if record.status == "succeeded":
            return Plan("JobDone", f"{record.idempotency_key} succeeded", enqueue=owner,
                        forget=True)
        if record.status in ("held", "dry_run", "skipped"):
            return Plan("JobNotRun", f"{record.idempotency_key} is {record.status}",
                        enqueue=owner, forget=True)
        work = self.params.model_validate(dict(record.params))
        action = replace(work.action(record.idempotency_key, description=record.description),
                         job=None)  # run here
        return Plan("JobRan", f"{record.idempotency_key}: {record.description}",
                    actions=(action,), enqueue=owner, forget=True)
