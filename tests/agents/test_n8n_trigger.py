"""n8n starts agent runs: `{"event": "agent.run", "agent": "<source>/<name>", "input": ...}` on
/webhooks/n8n is stored, then becomes one run (trigger n8n), however often it is delivered."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from controller.store import Store
from tests.agents.test_agents_e2e import COUNTER, app_on, write_agent
from tests.helpers import N8N_SECRET, wait_until


async def test_an_n8n_delivery_starts_one_run(aiohttp_client: Any, store: Store, dsn: str,
                                              tmp_path: Path) -> None:
    write_agent(tmp_path, "counter", COUNTER)
    client = await app_on(aiohttp_client, dsn, tmp_path)

    async def ready() -> bool:
        return await store.fetchrow("agent_version_current", "agent:local/counter") is not None

    await wait_until(ready, what="counter READY", store=store)
    headers = {"Authorization": f"Bearer {N8N_SECRET}", "Content-Type": "application/json"}
    body = orjson.dumps({"event": "agent.run", "agent": "local/counter", "input": {"a": 1},
                         "workflow": "nightly-report", "execution": "77"})
    first = await client.post("/webhooks/n8n", data=body, headers=headers)
    assert first.status == 202, await first.text()
    again = await client.post("/webhooks/n8n", data=body, headers=headers)
    assert again.status == 200  # the same execution: a duplicate, stored once

    async def finished() -> list[Any] | None:
        runs = await store.fetch("agent_runs_of", "agent:local/counter", None, 10)
        return runs if runs and all(r["state"] == "finished" for r in runs) else None

    [run] = await wait_until(finished, what="the run", store=store)
    assert (run["trigger"], run["requested_by"], run["outcome"]) == \
        ("n8n", "n8n:nightly-report/77", "succeeded")
    assert (await store.fetchrow("agent_run_get", run["id"]))["input"] == {"a": 1}
    # A later reconcile of the agent (a resync) queues nothing more for it.
    before = len(await _reconciles(store))
    await store.execute("queue_enqueue", ["agent:local/counter"])
    await wait_until(lambda: _more(store, before), what="the agent again", store=store)
    assert len(await store.fetch("agent_runs_of", "agent:local/counter", None, 10)) == 1

    for body, status, reason in [
            ({"agent": "counter", "execution": "78"}, 400,
             "agent.run needs 'agent': '<source>/<name>'"),
            ({"agent": "local/counter", "execution": "79", "input": "a\u0000b"}, 400,
             "the agent.run's input cannot be stored: a string holds a NUL character"),
            ({"agent": "local/counter", "execution": "80", "input": {"k\u0000": 1}}, 400,
             "a key holds a NUL character"),
            ({"agent": "local/counter", "execution": "e\u0000x"}, 400, "holds a NUL"),
            ({"agent": "local/counter", "execution": "81", "input": "x" * 66_000}, 413,
             "an agent.run's input is at most 65536 bytes"),
            ({"agent": "local/counter", "execution": {"x": 1}}, 400,
             "an agent.run's 'execution' is a string or a number")]:
        bad = await client.post("/webhooks/n8n", headers=headers,
                                data=orjson.dumps({"event": "agent.run", **body}))
        assert bad.status == status, (body, await bad.text())
        assert reason in (await bad.json())["reason"], body
    nested = await client.post("/webhooks/n8n", headers=headers, data=(
        b'{"event": "agent.run", "agent": "local/counter", "execution": "82", "input": '
        + b"[" * 300 + b"]" * 300 + b"}"))
    assert nested.status == 400 and "nested deeper than 32" in (await nested.json())["reason"]


async def test_one_execution_may_start_several_agents_and_a_missing_one_says_so(
        aiohttp_client: Any, store: Store, dsn: str, tmp_path: Path) -> None:
    """The same n8n execution naming two agents is two deliveries; an agent that is not
    applied gets a run that ends failed with the reason, so the caller can see it."""
    write_agent(tmp_path, "counter", COUNTER)
    write_agent(tmp_path, "other", COUNTER)
    client = await app_on(aiohttp_client, dsn, tmp_path)

    async def ready() -> bool:
        found = [await store.fetchrow("agent_version_current", f"agent:local/{n}")
                 for n in ("counter", "other")]
        return all(found)

    await wait_until(ready, what="both READY", store=store)
    headers = {"Authorization": f"Bearer {N8N_SECRET}", "Content-Type": "application/json"}
    for agent in ("local/counter", "local/other", "local/nosuch"):
        sent = await client.post("/webhooks/n8n", headers=headers, data=orjson.dumps(
            {"event": "agent.run", "agent": agent, "workflow": "fan-out", "execution": "9"}))
        assert sent.status == 202, await sent.text()

    async def ended() -> list[Any] | None:
        runs = await store.pool.fetch("SELECT agent, state, outcome, error FROM agent_runs "
                                      "ORDER BY agent")
        return runs if len(runs) == 3 and all(r["state"] == "finished" for r in runs) \
            else None

    runs = await wait_until(ended, what="three runs ended", store=store)
    assert [(r["agent"], r["outcome"]) for r in runs] == [
        ("agent:local/counter", "succeeded"), ("agent:local/nosuch", "failed"),
        ("agent:local/other", "succeeded")]
    assert "agent:local/nosuch is not applied" in runs[1]["error"]


async def _reconciles(store: Store) -> list[Any]:
    return await store.fetch("audit_list", "agent:local/counter", None, None, 100)


async def _more(store: Store, before: int) -> bool:
    return len(await _reconciles(store)) > before
