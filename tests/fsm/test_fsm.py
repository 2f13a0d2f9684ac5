"""Declared state machines allow only their transitions; persisted state is versioned."""

from __future__ import annotations

import pytest

from controller.reconcile.errors import InvalidTransition
from controller.reconcile.fsm import StateMachine
from controller.store import Store
from reconcilers import default_registry

MACHINE = StateMachine.declare("door", initial=["closed"],
                               table={"closed": ["open", "locked"], "open": ["closed"],
                                      "locked": ["closed"]})


def test_declared_transitions_are_allowed() -> None:
    """Declared pairs, staying put, and starting in an initial state are allowed."""
    MACHINE.check(None, "closed")
    MACHINE.check("closed", "open")
    MACHINE.check("open", "open")
    assert MACHINE.states == {"closed", "open", "locked"}


@pytest.mark.parametrize(("current", "target", "message"), [
    ("open", "locked", "open -> locked is not allowed"),
    (None, "open", "(new) -> open is not allowed"),
    ("closed", "ajar", "unknown state 'ajar'"),
])
def test_undeclared_transitions_raise(current: str | None, target: str, message: str) -> None:
    """Anything not in the table raises InvalidTransition naming the machine and states."""
    with pytest.raises(InvalidTransition, match="door: "):
        MACHINE.check(current, target)
    with pytest.raises(InvalidTransition) as caught:
        MACHINE.check(current, target)
    assert message in str(caught.value)


def test_declared_machines_are_named_after_their_kind() -> None:
    """A reconciler that declares a machine (optional) names it after its kind, with initial
    states; the trackers of lifecycles declare one, and so does each job kind: a job's is
    the lifecycle of the record it works on (a session's task, a generation's version)."""
    declared = {kind: r.machine for kind, r in default_registry().items() if r.machine}
    assert {"pull", "issue", "repo", "installation", "deployment", "manifests", "task",
            "session", "generation", "run"} <= set(declared)
    records = {"session": "task", "generation": "version"}
    for kind, machine in declared.items():
        assert machine.name == records.get(kind, kind)
        assert machine.initial <= machine.states


async def test_versioned_update_refuses_stale_writers(store: Store) -> None:
    """Optimistic concurrency: an update naming an old version changes nothing."""
    assert await store.fetchval("resource_insert", "door", "front", "closed", {}) == 1
    assert await store.fetchval("resource_insert", "door", "front", "open", {}) is None
    assert await store.fetchval("resource_update", "door", "front", "open", {}, 1) == 2
    assert await store.fetchval("resource_update", "door", "front", "locked", {}, 1) is None
    row = await store.fetchrow("resource_get", "door", "front")
    assert (row["state"], row["version"]) == ("open", 2)
