"""Waiting, retrying and giving up: a hint ends a requeue wait and never error backoff; a key
gives up by elapsed time and a resync revives it; a hung reconcile is cancelled at its
deadline and its lease released, whatever the heartbeat says."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

from controller.app import create_app
from controller.config import ManifestSettings
from controller.engine.ooda import Worker
from controller.engine.outcomes import Retry
from controller.providers import Env, Provider
from controller.reconcile.errors import DeadlineExceeded
from controller.reconcile.plan import Action
from controller.reconcile.reconciler import RetryPolicy, Watch
from controller.store import Store
from controller.web.keys import QUEUE
from reconcilers import default_registry
from tests.helpers import github_request, make_settings, store_delivery, wait_until, worker_for
from tests.probes import Probe


async def audit(store: Store, key: str) -> list[dict[str, Any]]:
    return [dict(r) for r in reversed(await store.fetch("audit_list", key, None, None, 100))]


async def queue_row(store: Store, key: str) -> dict[str, Any]:
    [row] = [r for r in await store.fetch("queue_list", None, None, 100) if r["key"] == key]
    return dict(row)


@asynccontextmanager
async def running(worker: Worker) -> AsyncIterator[None]:
    stopping = asyncio.Event()
    task = asyncio.create_task(worker.run(stopping))
    try:
        yield
    finally:
        stopping.set()
        await task


async def test_a_delivery_ends_a_requeue_wait(store: Store) -> None:
    """A plan that waits an hour (`requeue_after`) is reconciled again as soon as a delivery
    for its key arrives: the wait ends within a poll interval, not in an hour."""
    probe = Probe(requeue_after=3600)
    worker = worker_for(store, probe)
    async with running(worker):
        await store_delivery(store, "probe:waits")
        await wait_until(lambda: audit(store, "probe:waits"), what="first reconcile",
                         store=store)
        row = await queue_row(store, "probe:waits")
        assert row["wait_kind"] == "requeue" and row["lease_holder"] is None
        [status] = await store.fetch("statuses_of", ["probe:waits"])
        assert (status["status"], status["reason"]) == ("Waiting", "Probed")

        second = await store_delivery(store, "probe:waits")

        async def again() -> list[dict[str, Any]] | None:
            rows = await audit(store, "probe:waits")
            return rows if len(rows) == 2 else None

        rows = await wait_until(again, timeout=10, what="the wait ended by the delivery",
                                store=store)
    assert [r["outcome"] for r in rows] == ["requeue", "requeue"]
    assert list(rows[1]["deliveries"]) == [second]


async def test_the_controllers_own_hint_ends_a_requeue_wait_too(store: Store) -> None:
    """A reconcile's follow-up (or a watcher's hint) is a delivery of source p38: it ends the
    wait the same way."""
    probe = Probe(requeue_after=3600)
    worker = worker_for(store, probe)
    async with running(worker):
        await store_delivery(store, "probe:hinted")
        await wait_until(lambda: audit(store, "probe:hinted"), what="first reconcile",
                         store=store)
        await worker._queue.hint(["probe:hinted"], event="test")

        async def again() -> bool:
            return len(await audit(store, "probe:hinted")) == 2

        await wait_until(again, timeout=10, what="the wait ended by the hint", store=store)


async def test_a_delivery_does_not_shorten_error_backoff(store: Store) -> None:
    """A key backing off after an error stays put when a delivery arrives: the backoff
    protects a failing provider from a storm of retries."""
    probe = Probe(fail_with=RuntimeError("provider down"))
    worker = worker_for(store, probe, backoff=3600)
    await store_delivery(store, "probe:failing")
    lease = await worker._queue.claim("w")
    assert isinstance(await worker.process(lease), Retry)
    before = await queue_row(store, "probe:failing")
    assert before["wait_kind"] == "backoff" and before["failing_since"] is not None
    await store_delivery(store, "probe:failing")  # committed when it returns
    after = await queue_row(store, "probe:failing")
    assert (after["not_before"], after["wait_kind"]) == (before["not_before"], "backoff")
    assert after["pending_deliveries"] == 2
    assert await worker._queue.claim("w") is None  # nothing is due


async def test_a_key_gives_up_by_time_and_the_resync_revives_it(aiohttp_client, store: Store,
                                                               dsn: str) -> None:  # type: ignore[no-untyped-def]
    """With no limit on attempts, a key failing for longer than P38_GIVE_UP_SECONDS is
    dead-lettered (Stalled, GaveUp); the app's periodic resync revives it with a fresh count
    and, the provider being back, it is reconciled."""
    probe = Probe(fail_with=RuntimeError("provider down"))
    probe.resync = True  # its objects have something to re-read
    settings = make_settings(dsn, workers=1, max_attempts=0, backoff_base=0.05,
                             give_up=0.5).model_copy(update={
                                 "manifests": ManifestSettings(P38_RESYNC_SECONDS=0.5)})
    await aiohttp_client(create_app(settings, registry={**default_registry(), "probe": probe}))
    await store_delivery(store, "probe:flaky")

    async def dead() -> bool:
        return bool(await store.fetch("queue_list", "dead", None, 5))

    await wait_until(dead, what="dead-lettered by time", store=store)
    rows = await audit(store, "probe:flaky")
    assert len(rows) > 2 and all(r["outcome"] == "retry" for r in rows[:-1])
    assert rows[-1]["outcome"] == "dead" and "gave up after failing for" in rows[-1]["error"]
    [status] = await store.fetch("statuses_of", ["probe:flaky"])
    assert (status["status"], status["reason"]) == ("Stalled", "GaveUp")

    probe.fail_with = None  # the provider is back

    async def done() -> list[dict[str, Any]] | None:
        rows = await audit(store, "probe:flaky")
        return rows if rows[-1]["outcome"] == "done" else None

    rows = await wait_until(done, what="revived by the resync and reconciled", store=store)
    assert rows[-1]["attempt"] == 1  # a fresh count
    [status] = await store.fetch("statuses_of", ["probe:flaky"])
    assert status["status"] == "Ready"
    hints = await store.fetch("deliveries_list", "p38", "resync", None, None, 5)
    assert hints and hints[0]["status"] == "processed"


async def test_a_hung_reconcile_is_cancelled_at_its_deadline(store: Store) -> None:
    """A reconcile stuck on a call that never answers is cancelled at its deadline even though
    its heartbeat keeps renewing the lease; the lease is released, the key backs off, and the
    status says why."""
    probe = Probe(gate=asyncio.Event())  # observe waits for ever
    worker = worker_for(store, probe, lease=0.3, deadline=1.0, backoff=0.05)
    await store_delivery(store, "probe:hung")
    lease = await worker._queue.claim("w")
    outcome = await worker.process(lease)
    assert isinstance(outcome, Retry) and isinstance(outcome.error, DeadlineExceeded)
    row = await queue_row(store, "probe:hung")
    assert (row["lease_holder"], row["wait_kind"]) == (None, "backoff")
    assert "deadline of 1s and was cancelled during observe" in row["last_error"]
    [status] = await store.fetch("statuses_of", ["probe:hung"])
    assert (status["status"], status["reason"]) == ("Reconciling", "DeadlineExceeded")
    [audited] = await audit(store, "probe:hung")
    assert audited["outcome"] == "retry"

    probe.gate.set()  # the call answers now
    again = await wait_until(lambda: worker._queue.claim("w"), what="retry due", store=store)
    assert again.attempt == 2
    assert (await worker.process(again)).__class__.__name__ == "Done"


async def test_a_reconciler_declares_its_own_retry_policy(store: Store) -> None:
    """Settings say: back off an hour, never give up by count. The reconciler says: retry
    at once, give up after two attempts. The reconciler's word wins."""
    probe = Probe(fail_with=RuntimeError("no"))
    probe.retry = RetryPolicy(backoff_base=0.01, backoff_cap=0.01, max_attempts=2)
    worker = worker_for(store, probe, max_attempts=0, backoff=3600)
    await store_delivery(store, "probe:picky")
    first = await worker._queue.claim("w")
    assert isinstance(await worker.process(first), Retry)
    second = await wait_until(lambda: worker._queue.claim("w"), what="retried at once",
                              store=store)
    await worker.process(second)
    [dead] = await store.fetch("queue_list", "dead", None, 5)
    assert dead["key"] == "probe:picky" and "2 attempts" in dead["last_error"]


async def test_through_the_app_a_webhook_ends_a_wait(aiohttp_client, store: Store,
                                                     dsn: str) -> None:  # type: ignore[no-untyped-def]
    """The real app, a reconciler waiting an hour on a key its webhooks name: the next
    webhook delivery for that key ends the wait."""
    probe = Probe(requeue_after=3600, watching=(
        Watch("github", frozenset({"push"}), lambda _event: ["probe:watched"]),))
    client = await aiohttp_client(create_app(make_settings(dsn, workers=1),
                                             registry={**default_registry(), "probe": probe}))

    async def post() -> None:
        headers, body = github_request("push", "default-branch")
        assert (await client.post("/webhooks/github", data=body, headers=headers)).status \
            == 202

    async def reconciles(n: int) -> bool:
        return len(await audit(store, "probe:watched")) >= n

    await post()
    await wait_until(lambda: reconciles(1), what="the first reconcile", store=store)
    assert (await queue_row(store, "probe:watched"))["wait_kind"] == "requeue"
    await post()
    await wait_until(lambda: reconciles(2), timeout=10, what="the wait ended", store=store)


async def test_through_the_app_a_hung_action_is_cancelled_at_the_reconcilers_deadline(
        aiohttp_client, store: Store, dsn: str) -> None:  # type: ignore[no-untyped-def]
    """A reconciler declaring a 1 s deadline plans an action whose call never answers: the
    reconcile is cancelled during act, the action recorded as cancelled, the key retried."""
    hung = asyncio.Event()

    async def never(_action: Action) -> Mapping[str, Any]:
        await hung.wait()
        return {}

    @contextlib.asynccontextmanager
    async def provider(_env: Env) -> AsyncIterator[Provider]:
        yield Provider("slow", runners={"slow.call": never})

    probe = Probe(actions=[Action("slow.call", {}, "slow:1", needs="slow")])
    probe.deadline = 1.0
    settings = make_settings(dsn, workers=1, lease=0.3, backoff_base=3600)
    client = await aiohttp_client(create_app(settings, providers=[provider],
                                             registry={**default_registry(), "probe": probe}))
    await client.app[QUEUE].hint(["probe:stuck"], event="test")
    rows = await wait_until(lambda: audit(store, "probe:stuck"), what="the deadline",
                            store=store)
    assert rows[0]["outcome"] == "retry"
    assert "deadline of 1s and was cancelled during act" in rows[0]["error"]
    [action] = await store.fetch("actions_list", "probe:stuck", None, 5, None)
    assert action["status"] == "failed" and "cancelled before it finished" in action["error"]
    row = await queue_row(store, "probe:stuck")
    assert (row["lease_holder"], row["wait_kind"]) == (None, "backoff")
