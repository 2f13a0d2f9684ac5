"""Reconciles that lead to other reconciles: a plan's `enqueue` is written in the transaction
that settles the reconcile (never lost by a crash, never claimable before the settle), only for
kinds the reconciler declares, and reaches a key that is being reconciled at that moment."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg
from structlog.testing import capture_logs

from controller.config import QueueSettings
from controller.engine.ingest import IngestWriter
from controller.engine.outcomes import Done, Stalled
from controller.engine.queue import WorkQueue
from controller.reconcile.errors import UndeclaredEnqueue
from controller.store import Store
from handlers.base import Delivery
from tests.helpers import store_delivery, wait_until, worker_for
from tests.probes import Probe


async def queued(store: Store) -> dict[str, Any]:
    return {r["key"]: dict(r) for r in await store.fetch("queue_list", None, None, 100)}


async def test_follow_ups_are_written_in_the_settling_transaction(store: Store) -> None:
    """The audit row of the reconcile, the hint it wrote and the follow-up key's pending row
    carry the same transaction id: one commit."""
    probe = Probe(enqueue=("probe:b", "probe:c"), owns=frozenset({"probe"}))
    worker = worker_for(store, probe)
    await store_delivery(store, "probe:a")
    lease = await worker._queue.claim("w")
    assert isinstance(await worker.process(lease), Done)
    assert set(await queued(store)) == {"probe:b", "probe:c"}
    [audited] = await store.fetch("audit_list", "probe:a", None, None, 5)
    same = await store.pool.fetch(
        "SELECT d.event, d.xmin::text = a.xmin::text AS audit_tx,"
        "       (SELECT bool_and(k.xmin::text = a.xmin::text) FROM delivery_keys k"
        "        WHERE k.delivery_id = d.id) AS keys_tx,"
        "       (SELECT array_agg(k.key ORDER BY k.key) FROM delivery_keys k"
        "        WHERE k.delivery_id = d.id) AS keys"
        " FROM deliveries d JOIN audit a ON a.reconcile_id::text = d.guid"
        " WHERE d.source = 'p38' AND a.reconcile_id = $1", audited["reconcile_id"])
    assert [(r["event"], r["audit_tx"], r["keys_tx"], r["keys"]) for r in same] == [
        ("enqueue", True, True, ["probe:b", "probe:c"])]
    origin = await store.fetchrow("delivery_by_guid", str(audited["reconcile_id"]))
    assert origin["payload"] and '"from": "probe:a"' in origin["payload"].replace('":"', '": "')


async def test_a_settle_that_fails_writes_no_follow_up(store: Store, dsn: str) -> None:
    """The settle fails (the database refuses its audit row, as a crash at that moment would
    leave it): the follow-up is not there either, and the retry writes both."""
    admin = await asyncpg.connect(dsn)
    await admin.execute("""
        CREATE SEQUENCE refusals;
        CREATE FUNCTION refuse_first_audit() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF nextval('refusals') = 1 THEN RAISE EXCEPTION 'the process died here'; END IF;
            RETURN NEW;
        END $$;
        CREATE TRIGGER refuse_first_audit BEFORE INSERT ON audit
            FOR EACH ROW EXECUTE FUNCTION refuse_first_audit();""")
    try:
        probe = Probe(enqueue=("probe:next",), owns=frozenset({"probe"}))
        worker = worker_for(store, probe, lease=0.3)
        await store_delivery(store, "probe:first")
        lease = await worker._queue.claim("w")
        with capture_logs():
            try:
                await worker.process(lease)
            except Exception as exc:  # the worker loop logs this and lets the lease expire
                assert "the process died here" in str(exc)
        assert set(await queued(store)) == {"probe:first"}  # no probe:next, no hint
        assert await store.fetch("deliveries_list", "p38", None, None, None, 5) == []
        again = await wait_until(lambda: worker._queue.claim("w"), what="lease expired",
                                 store=store)
        assert isinstance(await worker.process(again), Done)
        assert set(await queued(store)) == {"probe:next"}
    finally:
        await admin.execute("DROP TRIGGER refuse_first_audit ON audit;"
                            " DROP FUNCTION refuse_first_audit(); DROP SEQUENCE refusals;")
        await admin.close()


async def test_an_undeclared_kind_is_refused_before_anything_runs(store: Store) -> None:
    """A plan enqueueing a kind its reconciler does not declare in `owns` stalls the key,
    says why, and neither acts nor enqueues."""
    probe = Probe(enqueue=("agent:local/x",), owns=frozenset({"probe"}))
    worker = worker_for(store, probe)
    await store_delivery(store, "probe:sloppy")
    lease = await worker._queue.claim("w")
    outcome = await worker.process(lease)
    assert isinstance(outcome, Stalled) and isinstance(outcome.error, UndeclaredEnqueue)
    assert set(await queued(store)) == {"probe:sloppy"}  # dead, and nothing else queued
    [status] = await store.fetch("statuses_of", ["probe:sloppy"])
    assert (status["status"], status["reason"]) == ("Stalled", "UndeclaredEnqueue")


async def test_a_key_being_reconciled_is_reconciled_again_after_a_follow_up(
        store: Store) -> None:
    """probe:b is mid-reconcile (it observed before probe:a's plan) when probe:a enqueues it:
    probe:b is reconciled once more after its own settle, so it sees what probe:a did."""
    probe = Probe(gate=asyncio.Event(), owns=frozenset({"probe"}))
    settings = QueueSettings(P38_COALESCE_SECONDS=0)
    worker_b = worker_for(store, probe, name="wb")
    await store_delivery(store, "probe:b")
    lease_b = await worker_b._queue.claim("wb")
    busy = asyncio.create_task(worker_b.process(lease_b))
    await probe.entered.wait()

    leader = Probe(enqueue=("probe:b",), owns=frozenset({"probe"}))
    worker_a = worker_for(store, leader, name="wa")
    await WorkQueue(store, settings).enqueue_now(["probe:a"])
    lease_a = await worker_a._queue.claim("wa")
    assert lease_a is not None and lease_a.key == "probe:a"
    assert isinstance(await worker_a.process(lease_a), Done)

    probe.gate.set()
    assert isinstance(await busy, Done)
    row = (await queued(store))["probe:b"]  # kept for one more reconcile
    assert row["pending_deliveries"] == 1 and row["lease_holder"] is None


async def test_keys_enqueueing_each_other_under_ingest_never_deadlock(dsn: str,
                                                                      store: Store) -> None:
    """Ten keys enqueueing their neighbours and waiting, six workers on two pools, webhook
    batches for the same keys ending their waits: every settle and batch succeeds."""
    rounds: dict[str, int] = {}

    def neighbours(key: str) -> tuple[str, ...]:
        n = int(key.partition(":")[2])
        rounds[key] = rounds.get(key, 0) + 1
        return (f"probe:{(n + 1) % 10}", f"probe:{(n - 1) % 10}") if rounds[key] <= 4 else ()

    probe = Probe(owns=frozenset({"probe"}), follow_ups=neighbours, requeue_after=0.2)
    stores = [await Store.connect(dsn, min_size=1, max_size=4) for _ in range(2)]
    workers = [worker_for(s, probe, name=f"p{i}-w{j}") for i, s in enumerate(stores)
               for j in range(3)]
    writer = IngestWriter(store, writers=3, max_batch=16)
    await writer.start()
    await WorkQueue(store, QueueSettings()).enqueue_now([f"probe:{n}" for n in range(10)])
    stopping = asyncio.Event()

    async def deliveries(seed: int) -> None:
        for i in range(40):
            keys = tuple(f"probe:{(seed + i * j) % 10}" for j in (1, 3, 7))
            await writer.submit(Delivery("test", "", str(uuid.uuid4()), "probe", None, {},
                                         "{}", tuple(dict.fromkeys(keys))))

    with capture_logs() as logs:
        tasks = [asyncio.create_task(w.run(stopping)) for w in workers]
        try:
            await asyncio.gather(*[deliveries(seed) for seed in range(4)])

            async def settled() -> bool:
                return not await store.fetch("deliveries_list", None, None, "pending", None, 1)

            await wait_until(settled, timeout=60, what="every delivery settled", store=store)
        finally:
            stopping.set()
            await asyncio.gather(*tasks)
            await writer.stop()
            for s in stores:
                await s.close()
    failures = {"reconcile_not_settled", "settle_refused", "ingest_batch_failed"}
    assert [e for e in logs if e["event"] in failures] == []
    outcomes = {r["outcome"] for r in await store.fetch("audit_list", None, None, None, 1000)}
    assert outcomes <= {"done", "requeue"}
    assert len(rounds) == 10
