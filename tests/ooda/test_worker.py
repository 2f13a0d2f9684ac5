"""The OODA worker loop against the real database: outcomes, crashes, exclusivity, audit."""

from __future__ import annotations

import asyncio
import json

import asyncpg

from controller.app import create_app
from controller.config import QueueSettings
from controller.engine.queue import WorkQueue
from controller.reconcile.reconciler import Watch
from controller.store import Store
from reconcilers import default_registry
from tests.helpers import (
    github_payload,
    github_request,
    make_settings,
    store_delivery,
    wait_until,
    worker_for,
)
from tests.probes import Probe


async def audit(store: Store, key: str | None = None) -> list[dict]:  # type: ignore[type-arg]
    return [dict(r) for r in reversed(await store.fetch("audit_list", key, None, None, 100))]


async def test_github_deliveries_are_reconciled_end_to_end(aiohttp_client, store: Store,
                                                           dsn: str) -> None:  # type: ignore[no-untyped-def]
    """Signed deliveries flow to workers: state tracked, deliveries processed, audit written."""
    client = await aiohttp_client(create_app(make_settings(dsn, workers=2)))
    for event, case in [("pull_request", "opened"), ("push", "default-branch"),
                        ("installation", "created"), ("pull_request", "merged")]:
        headers, body = github_request(event, case)
        assert (await client.post("/webhooks/github", data=body, headers=headers)).status == 202

    async def all_processed() -> bool:
        rows = await store.fetch("deliveries_list", None, None, None, None, 10)
        return all(r["status"] == "processed" for r in rows)

    await wait_until(all_processed, what="deliveries processed", store=store)
    await wait_until(lambda: _empty_queue(store), what="queue drained", store=store)
    resources = await (await client.get("/api/resources")).json()
    states = {(r["kind"], r["name"]): r["state"] for r in resources["items"]}
    assert states[("pull", "octo-org/infra#12")] == "merged"
    assert states[("repo", "octo-org/infra")] == "active"
    assert states[("installation", "51234567")] == "active"
    repo = next(r for r in resources["items"] if r["kind"] == "repo")
    assert repo["data"]["head_sha"] == "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c"
    rows = await audit(store)
    assert {r["outcome"] for r in rows} == {"done"}
    assert all(r["phases"]["decide"]["decision"] for r in rows)
    # Without GitHub App credentials the manifest source and the plan cannot be read: they
    # say so, and the source is recorded as Blocked (the resync retries it).
    blocked = [r for r in rows if r["kind"] in ("manifests", "plan")]
    assert blocked and all("no GitHub App credentials" in r["reason"] for r in blocked)
    assert states[("manifests", "octo-org/infra")] == "Blocked"
    metrics = await (await client.get("/metrics")).text()
    assert 'p38_reconciles_total{kind="pull",outcome="done"}' in metrics
    assert 'p38_deliveries_total{event="push",outcome="stored",source="github"} 1.0' in metrics


async def _empty_queue(store: Store) -> bool:
    return await store.fetch("queue_list", None, None, 1) == []


async def test_crashed_worker_key_is_processed_after_lease_expiry(store: Store) -> None:
    """A key claimed by a worker that died is reconciled by another once the lease expires."""
    probe = Probe()
    worker = worker_for(store, probe, lease=0.3)
    await worker._queue.enqueue_now(["probe:k"])
    dead_lease = await worker._queue.claim("crashed")  # claimed, then the process vanished
    assert dead_lease is not None
    stopping = asyncio.Event()
    task = asyncio.create_task(worker.run(stopping))
    try:
        await wait_until(lambda: audit(store, "probe:k"), what="reconcile after lease expiry",
                         store=store)
    finally:
        stopping.set()
        await task
    [row] = await audit(store, "probe:k")
    assert (row["outcome"], row["attempt"], row["worker"]) == ("done", 2, "w")
    assert probe.observed == ["probe:k"]


async def test_two_workers_never_reconcile_one_key_at_once(dsn: str, store: Store) -> None:
    """Workers on separate pools, hints arriving mid-reconcile: no key is ever observed twice
    concurrently, and every hint is followed by a reconcile."""
    probe = Probe()

    async def hint_again(key: str) -> None:  # a new hint lands while the key is being worked
        if probe.observed.count(key) == 1:
            await WorkQueue(store, QueueSettings()).hint([key])
        await asyncio.sleep(0)

    probe.on_observe = hint_again
    stores = [await Store.connect(dsn, min_size=1, max_size=4) for _ in range(2)]
    workers = [worker_for(s, probe, name=f"p{i}-w{j}") for i, s in enumerate(stores)
               for j in range(3)]
    keys = [f"probe:{n}" for n in range(12)]
    await WorkQueue(store, QueueSettings()).enqueue_now(keys)
    stopping = asyncio.Event()
    tasks = [asyncio.create_task(w.run(stopping)) for w in workers]
    try:
        await wait_until(lambda: _empty_queue(store), what="queue drained", store=store)
    finally:
        stopping.set()
        await asyncio.gather(*tasks)
        for s in stores:
            await s.close()
    assert probe.overlaps == []
    assert sorted(probe.observed) == sorted(keys * 2)
    holders = {r["worker"] for r in await audit(store)}
    assert len(holders) > 1


async def test_failures_back_off_then_dead_letter_then_redelivery(aiohttp_client, store: Store,
                                                                  dsn: str) -> None:  # type: ignore[no-untyped-def]
    """A failing key is retried with backoff, dead-lettered with its last error, its delivery
    marked failed; a redelivery of that GUID is then accepted and processed."""
    probe = Probe(fail_with=RuntimeError("provider said no"), watching=(
        Watch("github", frozenset({"pull_request"}), lambda _event: ["probe:doomed"]),))
    settings = make_settings(dsn, workers=1, max_attempts=3, backoff_base=0.01)
    registry = {**default_registry(), "probe": probe}
    client = await aiohttp_client(create_app(settings, registry=registry))
    headers, body = github_request("pull_request", "opened", guid="guid-doomed")
    assert (await client.post("/webhooks/github", data=body, headers=headers)).status == 202

    async def failed() -> bool:
        row = await store.fetchrow("delivery_by_guid", "guid-doomed")
        return row["status"] == "failed"

    await wait_until(failed, what="delivery failed", store=store)
    rows = await audit(store, "probe:doomed")
    assert [r["outcome"] for r in rows] == ["retry", "retry", "dead"]
    assert [r["attempt"] for r in rows] == [1, 2, 3]
    assert "provider said no" in rows[-1]["error"]
    [dead] = await store.fetch("queue_list", "dead", None, 5)
    assert "3 attempts" in dead["last_error"]
    delivery = await store.fetchrow("delivery_by_guid", "guid-doomed")
    assert "provider said no" in delivery["error"]

    probe.fail_with = None
    again = await client.post("/webhooks/github", data=body, headers=headers)
    assert again.status == 202
    await wait_until(lambda: _status_is(store, "guid-doomed", "processed"), what="reprocessed",
                     store=store)
    assert (await audit(store, "probe:doomed"))[-1]["outcome"] == "done"


async def _status_is(store: Store, guid: str, status: str) -> bool:
    row = await store.fetchrow("delivery_by_guid", guid)
    return row is not None and row["status"] == status


async def test_a_stale_delivery_is_not_dead_lettered(aiohttp_client, store: Store,
                                                     dsn: str) -> None:  # type: ignore[no-untyped-def]
    """A merged pull request reported open by a late delivery cannot be re-read without GitHub
    credentials: the recorded state stays, the key is done (not dead), and the status says
    why."""
    client = await aiohttp_client(create_app(make_settings(dsn, workers=1)))
    merged = {"action": "closed", "number": 5, "repository": {"full_name": "o/r"},
              "pull_request": {"number": 5, "state": "closed", "merged": True}}
    reopened = {**merged, "action": "reopened",
                "pull_request": {"number": 5, "state": "open", "merged": False}}
    for payload in (merged, reopened):
        headers, body = github_payload("pull_request", payload)
        assert (await client.post("/webhooks/github", data=body, headers=headers)).status == 202
        await wait_until(lambda: _settled(store), what="deliveries settled", store=store)
    rows = await audit(store, "pull:o/r#5")
    assert [(r["outcome"], r["decision"]) for r in rows] == [("done", "Transition"),
                                                             ("done", "StaleDelivery")]
    state = await store.fetchrow("resource_get", "pull", "o/r#5")
    assert (state["state"], state["version"]) == ("merged", 1)
    assert await store.fetch("queue_list", "dead", None, 5) == []
    [status] = await store.fetch("statuses_of", ["pull:o/r#5"])
    assert (status["status"], status["reason"]) == ("Ready", "StaleDelivery")
    assert "cannot follow merged" in status["message"]


async def _settled(store: Store) -> bool:
    rows = await store.fetch("deliveries_list", None, None, "pending", None, 1)
    return not rows


async def test_lost_lease_discards_the_result(store: Store) -> None:
    """A worker whose lease was taken over stops, records `lost`, and writes no state."""
    probe = Probe(gate=asyncio.Event())
    worker = worker_for(store, probe, lease=0.3)
    await worker._queue.enqueue_now(["probe:slow"])
    lease = await worker._queue.claim("w")
    assert lease is not None
    processing = asyncio.create_task(worker.process(lease))
    await probe.entered.wait()
    async with store.transaction() as tx:  # another process takes the key over
        await tx.execute("queue_release", lease.key, lease.token)
    await processing
    [row] = await audit(store, "probe:slow")
    assert row["outcome"] == "lost"
    assert await store.fetchrow("resource_get", "probe", "slow") is None


async def test_cancelled_reconcile_releases_its_lease(store: Store) -> None:
    """Shutdown mid-reconcile gives the key back at once, its attempt not counted."""
    probe = Probe(gate=asyncio.Event())
    worker = worker_for(store, probe)
    await store_delivery(store, "probe:interrupted")
    stopping = asyncio.Event()
    task = asyncio.create_task(worker.run(stopping))
    await probe.entered.wait()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    [row] = await store.fetch("queue_list", None, None, 5)
    assert (row["lease_holder"], row["pending_deliveries"], row["attempts"]) == (None, 1, 0)


async def test_concurrent_update_is_retried_not_lost(store: Store) -> None:
    """If the object changes between observe and record, nothing is written and it is retried."""
    probe = Probe()
    worker = worker_for(store, probe)
    await worker._queue.enqueue_now(["probe:raced"])

    async def someone_else_writes(key: str) -> None:
        if probe.observed.count(key) == 1:
            await store.fetchval("resource_insert", "probe", "raced", "seen", {"count": 100})

    probe.on_observe = someone_else_writes
    lease = await worker._queue.claim("w")
    assert lease is not None
    # First attempt observed "no object" and plans an insert, which conflicts.
    probe_gate_free = await worker.process(lease)
    assert probe_gate_free is not None
    rows = await audit(store, "probe:raced")
    assert rows[-1]["outcome"] == "retry" and "ConcurrentUpdate" in rows[-1]["error"]
    second = await wait_until(lambda: worker._queue.claim("w"), what="retry due", store=store)
    await worker.process(second)
    state = await store.fetchrow("resource_get", "probe", "raced")
    assert (state["version"], json.loads(json.dumps(state["data"]))) == (2, {"count": 101})


async def test_nul_in_observed_data_does_not_wedge_the_key(aiohttp_client, store: Store,
                                                           dsn: str) -> None:  # type: ignore[no-untyped-def]
    """A pull request title holding \\u0000 (which PostgreSQL cannot store in jsonb) is
    recorded with a replacement character instead of failing the key forever."""
    client = await aiohttp_client(create_app(make_settings(dsn, workers=1)))
    payload = {"action": "opened", "number": 9, "repository": {"full_name": "o/r"},
               "pull_request": {"number": 9, "state": "open", "title": "bad \u0000 title"}}
    headers, body = github_payload("pull_request", payload)
    assert (await client.post("/webhooks/github", data=body, headers=headers)).status == 202
    await wait_until(lambda: _settled(store), what="delivery settled", store=store)
    state = await store.fetchrow("resource_get", "pull", "o/r#9")
    assert state["data"]["title"] == "bad \ufffd title"


async def test_worker_survives_settles_that_fail(store: Store, dsn: str) -> None:
    """The database refuses the end of a reconcile twice (injected): the first time it is
    written as a failure without its plan, the second time nothing can be written and the
    lease expires; the worker keeps running and the key is reconciled in the end."""
    admin = await asyncpg.connect(dsn)
    await admin.execute("""
        CREATE SEQUENCE failures_left;
        CREATE FUNCTION fail_audits() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF nextval('failures_left') IN (1, 3, 4) THEN  -- sequences ignore the rollback
                RAISE EXCEPTION 'injected failure';
            END IF;
            RETURN NEW;
        END $$;
        CREATE TRIGGER fail_audits BEFORE INSERT ON audit
            FOR EACH ROW EXECUTE FUNCTION fail_audits();""")
    probe = Probe()
    worker = worker_for(store, probe, lease=0.5)
    stopping = asyncio.Event()
    task = asyncio.create_task(worker.run(stopping))

    async def done() -> list[dict] | None:  # type: ignore[type-arg]
        rows = await audit(store, "probe:injected")
        return rows if rows and rows[-1]["outcome"] == "done" else None

    try:
        await worker._queue.enqueue_now(["probe:injected"])
        rows = await wait_until(done, what="reconciled after the failed settles", store=store)
        assert not task.done()  # the worker is still running
    finally:
        stopping.set()
        await task
        await admin.execute("DROP TRIGGER fail_audits ON audit;"
                            " DROP FUNCTION fail_audits(); DROP SEQUENCE failures_left;")
        await admin.close()
    # 1: refused, then written as a retry; 2: refused twice, lease expired; 3: done.
    assert [(r["outcome"], r["attempt"]) for r in rows] == [("retry", 1), ("done", 3)]
    assert "SettleFailed" in rows[0]["error"] and "injected failure" in rows[0]["error"]
    assert probe.observed == ["probe:injected"] * 3
