"""A run of consecutive allowed actions of a kind whose runner takes them at once is recorded,
run and finished in three statements, and keeps every guarantee of one action at a time:
a succeeded key never runs again, a failure is recorded on each, other kinds run alone."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from controller.engine.executor import ActionFailed, Executor
from controller.reconcile.plan import Action, Batched
from controller.reconcile.policy import Policy, gate
from controller.store import Store, statements


class Many:
    def __init__(self, fail: bool = False) -> None:
        self.batches: list[list[str]] = []
        self.single: list[str] = []
        self.fail = fail

    async def one(self, action: Action) -> Mapping[str, Any]:
        self.single.append(action.idempotency_key)
        return {"one": action.idempotency_key}

    async def many(self, actions: Sequence[Action]) -> list[Mapping[str, Any]]:
        self.batches.append([a.idempotency_key for a in actions])
        if self.fail:
            raise ConnectionError("the store went away")
        return [{"many": a.idempotency_key} for a in actions]


def plan(*keys: str, kind: str = "test.apply") -> list[Action]:
    return [Action(kind, {"n": k}, k) for k in keys]


async def run(executor: Executor, actions: list[Action]):  # type: ignore[no-untyped-def]
    return await executor.act(gate(actions, Policy(), set()), key="k",
                              reconcile_id="00000000-0000-0000-0000-000000000001")


async def test_a_run_of_one_kind_is_three_statements(store: Store) -> None:
    many = Many()
    executor = Executor(store, {"test.apply": Batched(many.one, many.many),
                                "test.other": many.one})
    with statements.counting() as sent:
        outcomes = await run(executor, [*plan("a", "b", "c"), *plan("x", kind="test.other"),
                                        *plan("d")])
    assert many.batches == [["a", "b", "c"]]
    assert many.single == ["x", "d"]  # another kind between: alone, and so is the one after
    assert sent["actions_begin_many"] == 1 and sent["actions_finish_many"] == 1
    assert [o.status for o in outcomes] == ["succeeded"] * 5
    rows = {r["idempotency_key"]: r for r in
            await store.fetch("actions_list", "k", None, 10, None)}
    assert {k: (r["status"], r["attempts"], r["result"]) for k, r in rows.items()
            if k in "abc"} == {k: ("succeeded", 1, {"many": k}) for k in "abc"}

    again = await run(executor, plan("a", "b", "c"))  # recorded succeeded: never again
    assert [o.status for o in again] == ["already_succeeded"] * 3
    assert many.batches == [["a", "b", "c"]]


async def test_a_failure_is_recorded_on_every_action_of_the_run(store: Store) -> None:
    many = Many(fail=True)
    executor = Executor(store, {"test.apply": Batched(many.one, many.many)})
    with pytest.raises(ActionFailed):
        await run(executor, plan("a", "b"))
    rows = await store.fetch("actions_list", "k", None, 10, None)
    assert {(r["status"], r["error"]) for r in rows} == {
        ("failed", "ConnectionError: the store went away")}

    many.fail = False  # the next attempt runs both again
    outcomes = await run(executor, plan("a", "b"))
    assert [o.status for o in outcomes] == ["succeeded", "succeeded"]
    rows = await store.fetch("actions_list", "k", None, 10, None)
    assert {(r["status"], r["attempts"]) for r in rows} == {("succeeded", 2)}
