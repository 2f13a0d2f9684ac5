"""The lifecycle of a `/claude` task (`claude_tasks.state`), declared once as data.

A task is opened RECEIVED and moved, in the same transaction, to AUTHORIZED, REFUSED or DRY_RUN
(the command intake's verdict); the task reconciler moves it to WORKING just before it hands
Claude's session to a session worker, and to PR_OPENED once its change is pushed; FAILED comes
from a session's result (a limit, the model), a refused push or a key that gave up; CANCELLED
from `/claude cancel`; DRY_RUN when nothing could act on it. A finished task never changes.

Every move goes through `controller.providers.lifecycle.move`, whose conditional UPDATE allows
exactly `TASK_MACHINE.sources(target)`, so the database refuses anything else atomically. The
session worker (`claude.task`) writes no state: it returns how the session ended. Pure data.
"""

from __future__ import annotations

from controller.reconcile.fsm import StateMachine

TASK_MACHINE = StateMachine.declare(
    "task", initial=["RECEIVED"],
    table={
        "RECEIVED": ["AUTHORIZED", "REFUSED", "DRY_RUN"],
        "AUTHORIZED": ["WORKING", "FAILED", "CANCELLED", "DRY_RUN"],
        "WORKING": ["PR_OPENED", "FAILED", "CANCELLED", "DRY_RUN"],
    })

ACTIVE = ("AUTHORIZED", "WORKING")  # a task someone may still wait for: cancel, resume
