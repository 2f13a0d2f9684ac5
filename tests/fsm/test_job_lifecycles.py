"""The job kinds' lifecycles, pure: what each machine allows and refuses, and what the one move
function derives from it (its from-states, a caller's narrowing)."""

from __future__ import annotations

import pytest

from controller.providers.lifecycle import RUNS, TASKS, VERSIONS, sources
from controller.reconcile.errors import InvalidTransition
from reconcilers.agents.generations import Generations
from reconcilers.agents.lifecycles import RUN_MACHINE, VERSION_MACHINE
from reconcilers.agents.runs import Runs
from reconcilers.claude.lifecycle import TASK_MACHINE
from reconcilers.claude.sessions import Sessions
from reconcilers.claude.task_actions import TERMINAL


def test_each_job_kind_declares_its_records_machine() -> None:
    """The job reconcilers carry the lifecycle of what they work on, and the move function
    uses the same machines."""
    assert Sessions.machine is TASK_MACHINE and TASKS.machine is TASK_MACHINE
    assert Generations.machine is VERSION_MACHINE and VERSIONS.machine is VERSION_MACHINE
    assert Runs.machine is RUN_MACHINE and RUNS.machine is RUN_MACHINE


@pytest.mark.parametrize(("machine", "current", "target"), [
    (TASK_MACHINE, "RECEIVED", "AUTHORIZED"),
    (TASK_MACHINE, "RECEIVED", "REFUSED"),
    (TASK_MACHINE, "AUTHORIZED", "WORKING"),
    (TASK_MACHINE, "AUTHORIZED", "CANCELLED"),
    (TASK_MACHINE, "WORKING", "PR_OPENED"),
    (TASK_MACHINE, "WORKING", "FAILED"),
    (TASK_MACHINE, "WORKING", "CANCELLED"),
    (VERSION_MACHINE, "PENDING", "GENERATING"),
    (VERSION_MACHINE, "GENERATING", "GENERATING"),  # the next fix round
    (VERSION_MACHINE, "VALIDATING", "GENERATING"),
    (VERSION_MACHINE, "VALIDATING", "READY"),
    (VERSION_MACHINE, "PENDING", "VALIDATING"),  # hand-written code
    (RUN_MACHINE, "queued", "running"),
    (RUN_MACHINE, "queued", "finished"),
    (RUN_MACHINE, "running", "queued"),  # interrupted, tried once more
    (RUN_MACHINE, "running", "finished"),
])
def test_declared_moves_are_allowed(machine: object, current: str, target: str) -> None:
    assert current in machine.sources(target)  # type: ignore[attr-defined]
    machine.check(current, target)  # type: ignore[attr-defined]


@pytest.mark.parametrize(("machine", "current", "target"), [
    (TASK_MACHINE, "FAILED", "WORKING"),
    (TASK_MACHINE, "PR_OPENED", "FAILED"),
    (TASK_MACHINE, "CANCELLED", "WORKING"),
    (TASK_MACHINE, "AUTHORIZED", "PR_OPENED"),  # only a WORKING task's change is pushed
    (TASK_MACHINE, "WORKING", "AUTHORIZED"),
    (TASK_MACHINE, "REFUSED", "AUTHORIZED"),
    (VERSION_MACHINE, "READY", "GENERATING"),
    (VERSION_MACHINE, "FAILED", "READY"),
    (VERSION_MACHINE, "GENERATING", "READY"),  # READY only once validated
    (VERSION_MACHINE, "GENERATING", "PENDING"),
    (RUN_MACHINE, "finished", "queued"),
    (RUN_MACHINE, "finished", "running"),
    (RUN_MACHINE, "queued", "queued"),
])
def test_undeclared_moves_are_refused(machine: object, current: str, target: str) -> None:
    assert current not in machine.sources(target)  # type: ignore[attr-defined]
    if current != target:
        with pytest.raises(InvalidTransition):
            machine.check(current, target)  # type: ignore[attr-defined]


def test_a_finished_record_never_changes() -> None:
    """The terminal states are the ones the products call finished, and no move starts from
    one, not even to the same state."""
    assert TASK_MACHINE.terminal == TERMINAL == {"PR_OPENED", "FAILED", "REFUSED", "CANCELLED",
                                                 "DRY_RUN"}
    assert VERSION_MACHINE.terminal == {"READY", "FAILED"}
    assert RUN_MACHINE.terminal == {"finished"}
    for machine in (TASK_MACHINE, VERSION_MACHINE, RUN_MACHINE):
        for target in machine.states:
            assert not machine.sources(target) & machine.terminal, (machine.name, target)


def test_the_move_functions_from_states_come_from_the_machine() -> None:
    """`sources` is what the conditional UPDATE allows; a caller may narrow it, never widen it
    or name a state the machine does not know."""
    assert sources(TASK_MACHINE, "WORKING") == {"AUTHORIZED"}
    assert sources(TASK_MACHINE, "FAILED") == {"AUTHORIZED", "WORKING"}
    assert sources(RUN_MACHINE, "finished") == {"queued", "running"}
    assert sources(RUN_MACHINE, "finished", ["queued"]) == {"queued"}
    with pytest.raises(InvalidTransition, match="run: finished -> finished is not allowed"):
        sources(RUN_MACHINE, "finished", ["queued", "finished"])
    with pytest.raises(InvalidTransition, match="task: unknown state 'DONE'"):
        sources(TASK_MACHINE, "DONE")
