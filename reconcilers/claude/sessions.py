"""Sessions (`session:<source>#<action id>`): Claude working on a `/claude` task, as a job of
its own kind (reconcilers/jobs.py), on job workers of their own (`P38_JOB_WORKERS_SESSION`),
so that a session of up to half an hour never holds a reconcile worker. The task's key waits
and is woken when the session ends; a session stopped by a deploy is taken up again by the
next controller's session worker (its spend so far counted). No I/O of its own.
"""

from __future__ import annotations

from typing import ClassVar

from controller.reconcile.plan import Params
from reconcilers.claude.task_actions import WorkTask
from reconcilers.jobs import JobReconciler


class Sessions(JobReconciler):
    kind: ClassVar[str] = "session"
    params: ClassVar[type[Params]] = WorkTask
    owns: ClassVar[frozenset[str]] = frozenset({"task"})
    deadline: ClassVar[float | None] = 1800.0  # Claude's whole session
