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

    bad = await client.post("/webhooks/n8n", headers=headers, data=orjson.dumps(
        {"event": "agent.run", "agent": "counter", "execution": "78"}))
    assert bad.status == 400
    assert "agent.run needs 'agent': '<source>/<name>'" in (await bad.json())["reason"]


async def _reconciles(store: Store) -> list[Any]:
    return await store.fetch("audit_list", "agent:local/counter", None, None, 100)


async def _more(store: Store, before: int) -> bool:
    return len(await _reconciles(store)) > before
