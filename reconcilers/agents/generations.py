"""Generations (`generation:<source>#<action id>`): Claude writing an agent's version, with
its fix rounds, as a job of its own kind (reconcilers/jobs.py), on job workers of their own
(`P38_JOB_WORKERS_GENERATION`), so that a slow generation never holds a reconcile worker and
webhooks' keys are reconciled meanwhile. The agent's key waits and is woken when the
generation ends. `machine` is the version's lifecycle (reconcilers/agents/lifecycles.py),
moved by the generation only through `controller.providers.lifecycle.move`. No I/O of its own.
"""

from __future__ import annotations

from typing import ClassVar

from controller.reconcile.fsm import StateMachine
from controller.reconcile.plan import Params
from reconcilers.agents.agent_actions import GenerateVersion
from reconcilers.agents.lifecycles import VERSION_MACHINE
from reconcilers.jobs import JobReconciler


class Generations(JobReconciler):
    kind: ClassVar[str] = "generation"
    params: ClassVar[type[Params]] = GenerateVersion
    machine: ClassVar[StateMachine | None] = VERSION_MACHINE  # of the version it writes
    owns: ClassVar[frozenset[str]] = frozenset({"agent"})
    deadline: ClassVar[float | None] = 900.0  # a generation with its fix rounds
