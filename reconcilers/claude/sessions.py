"""Sessions (`session:<source>#<action id>`): Claude working on a `/claude` task, as a job of
its own kind (reconcilers/jobs.py), on job workers of their own (`P38_JOB_WORKERS_SESSION`),
so that a session of up to half an hour never holds a reconcile worker. The task's key waits
and is woken when the session ends; a session stopped by a deploy is taken up again by the
next controller's session worker (its spend so far counted). `machine` is the lifecycle the
task goes through (reconcilers/claude/lifecycle.py): the session moves none of it; the task's
reconciler moves the task to WORKING before the session and on from the session's result.
No I/O of its own.
"""

from __future__ import annotations

from typing import ClassVar

from controller.reconcile.fsm import StateMachine
from controller.reconcile.plan import Params
from reconcilers.claude.lifecycle import TASK_MACHINE
from reconcilers.claude.task_actions import WorkTask
from reconcilers.jobs import JobReconciler


class Sessions(JobReconciler):
    kind: ClassVar[str] = "session"
    params: ClassVar[type[Params]] = WorkTask
    machine: ClassVar[StateMachine | None] = TASK_MACHINE  # of the task it works on
    owns: ClassVar[frozenset[str]] = frozenset({"task"})
    deadline: ClassVar[float | None] = 1800.0  # Claude's whole session
