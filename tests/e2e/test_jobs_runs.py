"""Runs across a deploy (issue 24), end to end: the real app, the real harness, the real
database. Two runs are in the middle of their work when the controller stops (SIGTERM past its
grace): the one whose agent allows it (`retryOnInterrupt: true`) is run once more by the next
controller and succeeds; the other (a manual run, which by default is not retried) ends
`interrupted` with the reason, not `failed`, and is not run again."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from controller.store import Store
from tests.agents.test_agents_e2e import app_on, write_agent
from tests.helpers import wait_until

SLOW = """import time


def run(task):
    left = task.input["until"] - time.time()
    if left > 0:
        time.sleep(left)
    return {"slept": True}
"""
MANIFEST = """apiVersion: p38/v1
kind: Agent
metadata: {{name: {name}}}
spec:
  description: Sleeps until the time it is given, for the end-to-end test.
  code: agents/{name}.py
{test}  limits: {{timeout: 60s, memory: 256Mi}}
"""


async def test_an_interrupted_run_is_run_once_more_or_ends_interrupted(
        aiohttp_client: Any, store: Store, dsn: str, tmp_path: Path) -> None:
    write_agent(tmp_path, "patient", SLOW,
                manifest=MANIFEST.replace("  limits:", "  retryOnInterrupt: true\n  limits:"))
    write_agent(tmp_path, "plain", SLOW, manifest=MANIFEST)
    client = await app_on(aiohttp_client, dsn, tmp_path)

    async def ready(name: str) -> bool:
        body = await (await client.get(f"/api/agents/{name}")).json()
        return bool(body.get("status") == "Ready")

    for name in ("patient", "plain"):
        await wait_until(lambda n=name: ready(n), what=f"{name} READY", store=store)
    until = time.time() + 15  # past the first controller's 5 s shutdown grace
    runs = {}
    for name in ("patient", "plain"):
        started = await client.post(f"/api/agents/{name}/runs", json={"input": {"until": until}})
        assert started.status == 202, await started.text()
        runs[name] = int((await started.json())["url"].rpartition("/")[2])

    async def running() -> bool:
        rows = [await store.fetchrow("agent_run_get", n) for n in runs.values()]
        return all(r is not None and r["state"] == "running" for r in rows)

    await wait_until(running, what="both runs running", store=store)
    await client.close()  # a deploy: SIGTERM, the grace passes, the runs are cut off
    await app_on(aiohttp_client, dsn, tmp_path)

    async def finished() -> dict[str, Any] | None:
        rows = {name: await store.fetchrow("agent_run_get", n) for name, n in runs.items()}
        return rows if all(r is not None and r["state"] == "finished"
                           for r in rows.values()) else None

    rows = await wait_until(finished, what="both runs ended", timeout=60, store=store)
    patient, plain = rows["patient"], rows["plain"]
    assert (patient["outcome"], patient["interruptions"]) == ("succeeded", 1), dict(patient)
    assert patient["result"] == {"output": {"slept": True}}
    assert (plain["outcome"], plain["interruptions"]) == ("interrupted", 1), dict(plain)
    assert plain["error"].startswith("interrupted: the controller stopped during the run")
