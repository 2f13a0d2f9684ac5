"""Hand-written agents end to end through the real app: a local folder with an Agent naming its
code is validated into a READY version, manual runs succeed and hand their state over, and code
that fails its test (or the static check) is a FAILED version with the reason, never run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from controller.app import create_app
from controller.config import ManifestSettings
from controller.store import Store
from tests.helpers import WRITE, WRITE_TOKEN, make_settings, wait_until

AGENT = """apiVersion: p38/v1
kind: Agent
metadata: {{name: {name}}}
spec:
  description: Counts its runs for the end-to-end test.
  code: agents/{name}.py
{test}  limits: {{timeout: 20s, memory: 256Mi}}
"""
COUNTER = """def run(task):
    task.state["n"] = task.state.get("n", 0) + 1
    return {"n": task.state["n"], "input": task.input}
"""
COUNTER_TEST = """from agent import run
from p38_agent import FakeTools, Task


def test_counts():
    assert run(Task(input=1, state={"n": 1}, tools=FakeTools()))["n"] == 2
"""


def write_agent(root: Path, name: str, code: str, test: str | None = None, *,
                manifest: str = AGENT) -> None:
    (root / "manifests").mkdir(exist_ok=True)
    (root / "agents").mkdir(exist_ok=True)
    (root / "agents" / f"{name}.py").write_text(code)
    line = ""
    if test is not None:
        (root / "agents" / f"test_{name}.py").write_text(test)
        line = f"  test: agents/test_{name}.py\n"
    (root / "manifests" / f"{name}.yaml").write_text(manifest.format(name=name, test=line))


async def app_on(aiohttp_client: Any, dsn: str, root: Path) -> Any:
    settings = make_settings(dsn, workers=2)
    settings = settings.model_copy(update={"manifests": ManifestSettings(
        P38_MANIFESTS_DIR=root / "manifests", P38_MANIFESTS_POLL_SECONDS=0.05)})
    return await aiohttp_client(create_app(settings, write_token=WRITE_TOKEN), headers=WRITE)


async def ready_then_run(client: Any, name: str, store: Store,
                         given: Any = None) -> dict[str, Any]:
    """Wait for agent `name` to be Ready, start one run through the API, wait for its end."""
    async def ready() -> bool:
        body = await (await client.get(f"/api/agents/{name}")).json()
        return bool(body.get("status") == "Ready")

    await wait_until(ready, what=f"{name} READY", store=store)
    started = await client.post(f"/api/agents/{name}/runs", json={"input": given})
    url = (await started.json())["url"]

    async def finished() -> dict[str, Any] | None:
        run = await (await client.get(url)).json()
        return run if run["state"] == "finished" else None

    return await wait_until(finished, what=f"{name}'s run", store=store)


async def test_a_hand_written_agent_is_ready_and_runs_hand_over_state(
        aiohttp_client: Any, store: Store, dsn: str, tmp_path: Path) -> None:
    """READY after its test passes in the harness; two manual runs: the second sees the state
    the first left; the run records its outcome, result and the isolation it had."""
    write_agent(tmp_path, "counter", COUNTER, COUNTER_TEST)
    client = await app_on(aiohttp_client, dsn, tmp_path)

    async def ready() -> dict[str, Any] | None:
        response = await client.get("/api/agents/counter")
        body = await response.json() if response.status == 200 else {}
        return body if body.get("running_version") == 1 and body.get("status") == "Ready" \
            else None

    agent = await wait_until(ready, what="counter READY", store=store)
    version = agent["versions"][0]
    assert (version["state"], version["origin"]) == ("READY", "code")
    report = await (await client.get("/api/agents/counter/versions/1")).json()
    assert report["report"]["steps"]["test"]["passed"] == ["test_counts"]
    assert report["code"] == COUNTER

    results = []
    for given in ({"input": "first"}, {"input": "second"}):
        started = await client.post("/api/agents/counter/runs", json=given)
        assert started.status == 202, await started.text()
        url = (await started.json())["url"]

        async def finished(url: str = url) -> dict[str, Any] | None:
            run = await (await client.get(url)).json()
            return run if run["state"] == "finished" else None

        results.append(await wait_until(finished, what="the run finished", store=store))
    first, second = results
    assert first["outcome"] == "succeeded", first
    assert first["result"] == {"output": {"n": 1, "input": "first"}}
    assert second["result"] == {"output": {"n": 2, "input": "second"}}
    assert (second["trigger"], second["version"]) == ("manual", 1)
    assert second["isolation"]["memory"].startswith("RLIMIT_AS")
    listed = await (await client.get("/api/runs", params={"agent": "counter"})).json()
    assert [r["id"] for r in listed["items"]] == [second["id"], first["id"]]


async def test_code_that_fails_its_test_or_the_check_is_a_failed_version(
        aiohttp_client: Any, store: Store, dsn: str, tmp_path: Path) -> None:
    """The test's failure and the static check's refusal are the versions' errors; the agents
    are Stalled and a manual run of one ends failed without running."""
    write_agent(tmp_path, "wrong", COUNTER.replace("+ 1", "+ 2"), COUNTER_TEST)
    write_agent(tmp_path, "sneaky", "import os\n\n\ndef run(task):\n"
                                    "    return os.environ.get('DATABASE_URL')\n")
    client = await app_on(aiohttp_client, dsn, tmp_path)

    async def stalled(name: str) -> dict[str, Any] | None:
        body = await (await client.get(f"/api/agents/{name}")).json()
        return body if body.get("status") == "Stalled" else None

    wrong = await wait_until(lambda: stalled("wrong"), what="wrong FAILED", store=store)
    assert wrong["reason"] == "VersionFailed"
    # Validation names the files as the repository knows them, not as the harness does.
    error = wrong["versions"][0]["error"]
    assert error.startswith("agents/test_wrong.py:6: test_counts: AssertionError"), error
    assert "test_agent.py" not in error and "bootstrap" not in error and "\n" not in error
    number = wrong["versions"][0]["number"]
    version = await (await client.get(f"/api/agents/wrong/versions/{number}")).json()
    [failure] = version["report"]["steps"]["test"]["failed"]  # the whole trace is kept here
    assert "bootstrap" not in failure["trace"] and "line 6, in test_counts" in failure["trace"]
    sneaky = await wait_until(lambda: stalled("sneaky"), what="sneaky FAILED", store=store)
    assert sneaky["versions"][0]["error"].startswith(
        "agents/sneaky.py:1: import os is not allowed")
    started = await client.post("/api/agents/sneaky/runs", json={})
    url = (await started.json())["url"]

    async def finished() -> dict[str, Any] | None:
        run = await (await client.get(url)).json()
        return run if run["state"] == "finished" else None

    run = await wait_until(finished, what="the run ended", store=store)
    assert (run["outcome"], run["started_at"] is not None) == ("failed", True)
    assert "no READY version" in run["error"]


async def test_a_changed_module_builds_a_new_version_without_a_manifest_change(
        aiohttp_client: Any, store: Store, dsn: str, tmp_path: Path) -> None:
    """The local watcher follows the files agents are made of, not only the manifests: an
    edited module is a new version within moments, not at the next resync."""
    write_agent(tmp_path, "counter", COUNTER)
    client = await app_on(aiohttp_client, dsn, tmp_path)

    async def version(number: int) -> dict[str, Any] | None:
        body = await (await client.get("/api/agents/counter")).json()
        versions = body.get("versions") or []
        return body if body.get("running_version") == number and versions and \
            versions[0]["state"] == "READY" else None

    await wait_until(lambda: version(1), what="v1 READY", store=store)
    (tmp_path / "agents" / "counter.py").write_text(COUNTER.replace("+ 1", "+ 10"))

    async def edited() -> dict[str, Any] | None:
        # (A reconcile requeued by v1's build may read the file while it is being written and
        # build a version of the half-written module first: the edit's is the newest READY.)
        body = await (await client.get("/api/agents/counter")).json()
        running = body.get("running_version")
        if not running or running < 2:
            return None
        found = await (await client.get(f"/api/agents/counter/versions/{running}")).json()
        return found if "+ 10" in (found.get("code") or "") else None

    newest = await wait_until(edited, what="the edit's version READY", store=store)
    assert newest["state"] == "READY" and newest["origin"] == "code"
