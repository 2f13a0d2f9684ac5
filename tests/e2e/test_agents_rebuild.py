"""A generated version that FAILED because the Messages API refused the key is built again once
the controller runs with another key (not with the same one), and `p38 agents rebuild` and
`POST /api/agents/{name}/rebuild` build a new version on demand."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from controller.store import Store
from tests.agents.test_agents_e2e import app_on
from tests.fakes.anthropic import FakeAnthropic
from tests.helpers import env_for, p38, wait_until

AGENT = """apiVersion: p38/v1
kind: Agent
metadata: {name: digest}
spec:
  description: Summarise what the input says.
"""
KEY = "agent:local/digest"


async def versions(store: Store) -> list[dict[str, Any]]:
    return [dict(r) for r in await store.fetch("agent_versions_of", KEY, 20)]


async def newest_is(store: Store, number: int, state: str) -> bool:
    found = await versions(store)
    return bool(found) and (found[0]["number"], found[0]["state"]) == (number, state)


async def reconciled(store: Store) -> int:
    return len(await store.fetch("audit_list", KEY, None, None, 1000))


@pytest.fixture
async def claude(aiohttp_server: Any, monkeypatch: pytest.MonkeyPatch,
                 tmp_path: Path) -> FakeAnthropic:
    fake = FakeAnthropic()
    server = await aiohttp_server(fake.app())
    monkeypatch.setenv("ANTHROPIC_BASE_URL", str(server.make_url("")).rstrip("/"))
    (tmp_path / "manifests").mkdir()
    (tmp_path / "manifests" / "digest.yaml").write_text(AGENT)
    return fake


async def test_a_version_failed_on_a_refused_key_is_built_again_with_a_new_key(
        aiohttp_client: Any, store: Store, dsn: str, tmp_path: Path, claude: FakeAnthropic,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """401 from the API: v1 FAILED, blamed on the provider (not the code). A restart with the
    same key builds nothing; a restart with the fixed key builds v2 at start, READY."""
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-wrong-key")
    first = await app_on(aiohttp_client, dsn, tmp_path)
    await wait_until(lambda: newest_is(store, 1, "FAILED"), what="v1 FAILED", store=store)
    [v1] = await versions(store)
    assert v1["failure"] == "provider" and v1["failed_credential"]
    assert "sk-ant-wrong-key" not in str(v1)  # a fingerprint, never the key
    assert "refused the key" in v1["error"] and "401" in v1["error"]
    async def stalled() -> dict[str, Any] | None:
        body = await (await first.get("/api/agents/digest")).json()
        return body if body["status"] == "Stalled" else None

    agent = await wait_until(stalled, what="the agent Stalled", store=store)
    assert agent["reason"] == "VersionFailed" and "ANTHROPIC_API_KEY" in agent["message"]
    await first.close()

    looks = await reconciled(store)
    same = await app_on(aiohttp_client, dsn, tmp_path)  # the same wrong key: no new version

    async def looked_again() -> bool:
        return await reconciled(store) > looks

    await wait_until(looked_again, what="the agent looked at after the restart", store=store)
    assert [v["number"] for v in await versions(store)] == [1]
    await same.close()

    monkeypatch.setenv("ANTHROPIC_API_KEY", claude.api_key)
    fixed = await app_on(aiohttp_client, dsn, tmp_path)
    await wait_until(lambda: newest_is(store, 2, "READY"), what="v2 READY with the fixed key",
                     store=store)

    async def ready() -> dict[str, Any] | None:
        body = await (await fixed.get("/api/agents/digest")).json()
        return body if body["status"] == "Ready" else None

    agent = await wait_until(ready, what="the agent Ready", store=store)
    assert agent["running_version"] == 2


async def test_rebuild_on_demand_from_the_cli_and_the_api(
        aiohttp_client: Any, store: Store, dsn: str, tmp_path: Path, claude: FakeAnthropic,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """`p38 agents rebuild NAME` and the API each build one new version after the newest, even
    a READY one; the API needs the write token; an unknown agent is named."""
    monkeypatch.setenv("ANTHROPIC_API_KEY", claude.api_key)
    client = await app_on(aiohttp_client, dsn, tmp_path)
    await wait_until(lambda: newest_is(store, 1, "READY"), what="v1 READY", store=store)
    asked = len(claude.requests)

    result = await asyncio.to_thread(p38, "agents", "rebuild", "digest", env=env_for(dsn))
    assert result.returncode == 0, result.stderr
    assert "a new version of agent:local/digest after v1 is asked for" in result.stdout
    await wait_until(lambda: newest_is(store, 2, "READY"), what="v2 READY", store=store)
    assert len(claude.requests) == asked + 1

    unauthorised = await client.post("/api/agents/digest/rebuild", headers={
        "Authorization": "Bearer nope"})
    assert unauthorised.status == 401
    response = await client.post("/api/agents/digest/rebuild")  # (app_on sends the token)
    assert response.status == 202, await response.text()
    assert (await response.json())["after_version"] == 2
    await wait_until(lambda: newest_is(store, 3, "READY"), what="v3 READY", store=store)
    assert [v["number"] for v in await versions(store)] == [3, 2, 1]

    unknown = await asyncio.to_thread(p38, "agents", "rebuild", "nobody", env=env_for(dsn))
    assert unknown.returncode == 1 and "no applied agent named nobody" in unknown.stderr
    assert (await client.post("/api/agents/nobody/rebuild")).status == 404
