"""The gate's policies are kept between reconciles and read again only when they changed
(the policy epoch of migration 0025), and a change between a reconcile's claim and its
actions still holds those actions."""

from __future__ import annotations

from typing import Any

from controller.reconcile.plan import Action
from controller.store import Store
from tests.helpers import store_delivery, worker_for
from tests.probes import Probe


async def epoch(store: Store) -> int:
    return int(await store.pool.fetchval("SELECT epoch FROM policy_epoch"))


async def test_the_epoch_moves_with_policies_and_killswitches_only(store: Store) -> None:
    start = await epoch(store)
    await store.execute("applied_object_upsert", "octo/infra", "Agent", "a", "h1", {}, None)
    assert await epoch(store) == start  # another kind of object: the gate is not concerned
    await store.execute("applied_object_upsert", "octo/infra", "Policy", "default", "h2",
                        {"spec": {"killswitch": False}}, None)
    applied = await epoch(store)
    assert applied > start
    await store.execute("killswitch_on", "octo/infra", "@ops")
    switched = await epoch(store)
    assert switched > applied
    await store.execute("killswitch_off", "octo/infra")
    off = await epoch(store)
    assert off > switched
    await store.execute("applied_object_delete", "octo/infra", "Policy", "default")
    assert await epoch(store) > off


class Runs:
    def __init__(self) -> None:
        self.calls: list[str] = []

    async def __call__(self, action: Action) -> dict[str, Any]:
        self.calls.append(action.idempotency_key)
        return {}


async def test_policies_are_read_again_only_when_they_changed(store: Store) -> None:
    probe = Probe()
    worker = worker_for(store, probe)
    for _ in range(3):
        await store_delivery(store, "probe:octo/infra/a")
        lease = await worker._queue.claim("w")
        await worker.process(lease)
    rows = await store.fetch("audit_list", "probe:octo/infra/a", None, None, 10)
    sent = [r["phases"]["statements"] for r in reversed(rows)]
    # The first reconcile reads the policies (one statement); the next ones keep them.
    assert sent[0] == sent[1] + 1 == sent[2] + 1, sent

    await store.execute("killswitch_on", "octo/infra", "@ops")
    await store_delivery(store, "probe:octo/infra/a")
    await worker.process(await worker._queue.claim("w"))
    [last] = await store.fetch("audit_list", "probe:octo/infra/a", None, None, 1)
    assert last["phases"]["statements"] == sent[0]  # the epoch moved: read again


async def test_a_killswitch_turned_on_after_the_claim_holds_the_next_action(
        store: Store) -> None:
    """The claim saw the old epoch; the killswitch commits while the reconcile observes. The
    action the plan then wants is not run: the check before the actions sees the new epoch."""
    runner = Runs()
    probe = Probe(actions=[Action("probe.write", {}, idempotency_key="probe-write-1",
                                  needs="github")])
    worker = worker_for(store, probe, runners={"probe.write": runner})
    await store_delivery(store, "probe:octo/infra/a")
    await worker.process(await worker._queue.claim("w"))  # the policies are kept now
    assert runner.calls == ["probe-write-1"]

    async def switch_on(_key: str) -> None:
        await store.execute("killswitch_on", "octo/infra", "@ops")

    probe.actions = [Action("probe.write", {}, idempotency_key="probe-write-2", needs="github")]
    probe.on_observe = switch_on
    await store_delivery(store, "probe:octo/infra/a")
    await worker.process(await worker._queue.claim("w"))
    assert runner.calls == ["probe-write-1"]
    row = await store.fetchrow("action_by_key", "probe-write-2")
    assert row is not None and row["status"] == "held"
    assert probe.policies[-1].killswitch  # decided again under the policy as it is now
    [last] = await store.fetch("statuses_of", ["probe:octo/infra/a"])
    assert (last["status"], last["reason"]) == ("Blocked", "Killswitch")
