"""The executor records every action before it runs and never repeats a succeeded one."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from controller.engine.executor import ActionFailed, Executor
from controller.reconcile.errors import NoActionRunner
from controller.reconcile.plan import Action
from controller.reconcile.policy import Policy, Verdict, gate
from controller.store import Store

ACTION = Action("github.add_reaction", {"comment_id": 2487654321, "content": "eyes"},
                "ack:octo-org/infra:2487654321", needs="github")


class Recorder:
    """A runner that records calls and what the action's row said while it ran."""

    def __init__(self, store: Store, fail: int = 0) -> None:
        self.store = store
        self.calls: list[Mapping[str, Any]] = []
        self.status_while_running: list[str] = []
        self.fail = fail

    async def __call__(self, action: Action) -> Mapping[str, Any]:
        self.calls.append(action.params)
        [row] = await self.store.fetch("actions_list", "k", None, 1, None)
        self.status_while_running.append(row["status"])
        if self.fail:
            self.fail -= 1
            raise ConnectionError("provider unreachable")
        return {"id": 99}


async def act(executor: Executor, policy: Policy, approved: set[str] | None = None):  # type: ignore[no-untyped-def]
    return await executor.act(gate([ACTION], policy, approved or set()), key="k",
                              reconcile_id="00000000-0000-0000-0000-000000000001")


async def actions(store: Store) -> list[dict[str, Any]]:
    return [dict(r) for r in await store.fetch("actions_list", None, None, 10, None)]


async def test_succeeded_action_never_runs_again(store: Store) -> None:
    """The same idempotency key twice: the runner is called once, the row says so."""
    runner = Recorder(store)
    executor = Executor(store, {"github.add_reaction": runner})
    first = await act(executor, Policy())
    second = await act(executor, Policy())
    assert [o.status for o in first + second] == ["succeeded", "already_succeeded"]
    assert len(runner.calls) == 1
    assert runner.status_while_running == ["running"]  # recorded before it ran
    [row] = await actions(store)
    assert (row["status"], row["attempts"], row["result"]) == ("succeeded", 1, {"id": 99})


async def test_dry_run_records_without_executing(store: Store) -> None:
    """Dry-run writes the action with its params and does not call the runner."""
    runner = Recorder(store)
    executor = Executor(store, {"github.add_reaction": runner})
    [outcome] = await act(executor, Policy(dry_run=True))
    assert outcome.status == "dry_run"
    assert runner.calls == []
    [row] = await actions(store)
    assert (row["status"], row["params"]) == ("dry_run", dict(ACTION.params))
    [live] = await act(executor, Policy())  # later, with credentials, it runs once
    assert live.status == "succeeded" and len(runner.calls) == 1


async def test_held_until_approved_and_by_the_killswitch(store: Store) -> None:
    """An action needing approval is held until approved; the killswitch holds everything."""
    runner = Recorder(store)
    executor = Executor(store, {"github.add_reaction": runner})
    policy = Policy(approval_required=frozenset({"github.add_reaction"}))
    [held] = await act(executor, policy)
    assert held.status == "held" and runner.calls == []
    [stopped] = await act(executor, Policy(killswitch=True), {ACTION.idempotency_key})
    assert stopped.status == "held" and "killswitch" in stopped.reason and runner.calls == []
    await store.execute("approval_grant", ACTION.idempotency_key, "dana")
    approved = {r["idempotency_key"] for r in await store.fetch(
        "approvals_for", [ACTION.idempotency_key])}
    [ran] = await act(executor, policy, approved)
    assert ran.status == "succeeded" and len(runner.calls) == 1


def test_gate_order_killswitch_then_approval_then_dry_run() -> None:
    """The gate is pure: killswitch beats approval beats dry-run; the killswitch holds what
    touches the world and lets the controller's own records go on."""
    needs = Action("railway.rollback", {}, "rb:1", needs_approval=True, needs="railway")
    plain = Action("n8n.notify", {}, "n:1", needs="n8n")
    record = Action("manifest.create", {}, "m:1")
    assert [(g.verdict, g.blocked_by) for g in gate(
        [needs, plain, record], Policy(killswitch=True), set())] == [
        (Verdict.HELD, "Killswitch"), (Verdict.HELD, "Killswitch"), (Verdict.RUN, None)]
    assert [g.verdict for g in gate([needs, plain], Policy(dry_run=True), set())] == [
        Verdict.HELD, Verdict.DRY_RUN]
    assert [g.verdict for g in gate([needs, plain], Policy(), {"rb:1"})] == [
        Verdict.RUN, Verdict.RUN]


def test_actions_of_a_provider_without_credentials_are_dry_run() -> None:
    """No Railway token: Railway actions are recorded as dry-run, internal ones still run."""
    deploy = Action("railway.deploy", {}, "d:1", needs="railway")
    check = Action("github.check_run", {}, "c:1", needs="github")
    record = Action("manifest.create", {}, "m:1")
    gated = gate([deploy, check, record], Policy(providers=frozenset({"github"})), set())
    assert [g.verdict for g in gated] == [Verdict.DRY_RUN, Verdict.RUN, Verdict.RUN]
    assert gated[0].reason == "dry-run: no railway credentials configured"


async def test_failed_action_is_recorded_and_retried(store: Store) -> None:
    """A runner error marks the row failed and raises; the next attempt runs it again."""
    runner = Recorder(store, fail=1)
    executor = Executor(store, {"github.add_reaction": runner})
    with pytest.raises(ActionFailed):
        await act(executor, Policy())
    [row] = await actions(store)
    assert row["status"] == "failed" and "provider unreachable" in row["error"]
    [outcome] = await act(executor, Policy())
    assert outcome.status == "succeeded"
    [row] = await actions(store)
    assert (row["status"], row["attempts"], row["error"]) == ("succeeded", 2, None)


async def test_action_without_runner_is_terminal(store: Store) -> None:
    """An action kind nobody can run fails terminally instead of retrying forever."""
    with pytest.raises(NoActionRunner):
        await act(Executor(store, {}), Policy())
    [row] = await actions(store)
    assert row["status"] == "failed" and "no runner" in row["error"]
