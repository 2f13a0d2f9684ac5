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
from tests.helpers import env_for, p38, wait_until

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


async def test_an_operator_cancels_a_run_from_the_cli_and_the_api(
        aiohttp_client: Any, store: Store, dsn: str, tmp_path: Path) -> None:
    """`p38 runs cancel ID --by NAME` stops a running run within a second or so (its process
    group killed), recorded with who asked; the API does the same behind the write token, and
    says 409 for a run that has ended, 404 for none."""
    write_agent(tmp_path, "plain", SLOW, manifest=MANIFEST)
    client = await app_on(aiohttp_client, dsn, tmp_path)

    async def ready() -> bool:
        body = await (await client.get("/api/agents/plain")).json()
        return bool(body.get("status") == "Ready")

    await wait_until(ready, what="plain READY", store=store)
    started = await client.post("/api/agents/plain/runs",
                                json={"input": {"until": time.time() + 50}})
    run_id = int((await started.json())["url"].rpartition("/")[2])

    async def state(wanted: str) -> dict[str, Any] | None:
        row = await store.fetchrow("agent_run_get", run_id)
        return dict(row) if row is not None and row["state"] == wanted else None

    await wait_until(lambda: state("running"), what="the run running", store=store)
    cancelled = p38("runs", "cancel", str(run_id), "--by", "dana", env=env_for(store.dsn))
    assert cancelled.returncode == 0, cancelled.stderr
    assert f"run {run_id} (running) is asked to stop (by dana)" in cancelled.stdout
    ended = await wait_until(lambda: state("finished"), what="the run stopped", store=store)
    assert (ended["outcome"], ended["error"]) == ("cancelled", "stopped: cancelled by dana")

    again = await client.post(f"/api/runs/{run_id}/cancel", json={"by": "erin"})
    assert again.status == 409 and "has ended (cancelled)" in (await again.json())["reason"]
    assert (await client.post("/api/runs/999999/cancel", json={})).status == 404
    bare = await client.post(f"/api/runs/{run_id}/cancel", json={},
                             headers={"Authorization": ""})
    assert bare.status == 401
    late = p38("runs", "cancel", str(run_id), "--by", "dana", env=env_for(store.dsn))
    assert late.returncode == 1 and "has already ended (cancelled)" in late.stderr
