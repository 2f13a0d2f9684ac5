"""Description-only agents end to end: a push to a repository (the stateful fake GitHub) applies
them, Claude (the fake Messages API over HTTP, reached by the SDK through ANTHROPIC_BASE_URL)
writes them, validation decides; READY runs, FAILED opens one issue on the repository."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from controller.app import create_app
from controller.config import ManifestSettings, ProviderSettings
from controller.providers import anthropic, github
from controller.store import Store
from tests.e2e.test_gitops import INSTALLATION, PRIVATE, PUBLIC, REPO, GitOps, Sleeps
from tests.fakes.anthropic import FakeAnthropic
from tests.fakes.github import FakeGitHub
from tests.helpers import WRITE, WRITE_TOKEN, make_settings, wait_until

AGENTS = """apiVersion: p38/v1
kind: Agent
metadata: {name: digest}
spec:
  description: Summarise what the input says.
---
apiVersion: p38/v1
kind: Agent
metadata: {name: flaky}
spec:
  description: Count things. [fake:broken]
"""


@pytest.fixture
async def both(aiohttp_client: Any, aiohttp_server: Any, store: Store, dsn: str,
               monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[tuple[GitOps, FakeAnthropic]]:
    yield await open_both(aiohttp_client, aiohttp_server, store, dsn, monkeypatch)


async def open_both(aiohttp_client: Any, aiohttp_server: Any, store: Store, dsn: str,
                    monkeypatch: pytest.MonkeyPatch, *, give_up: float = 3600.0,
                    resync: float = 3600.0) -> tuple[GitOps, FakeAnthropic]:
    """The real app on a fake GitHub and a fake Messages API (`give_up`: seconds a failing
    key is retried; `resync`: how often idle and given-up keys are looked at again)."""
    claude = FakeAnthropic()
    server = await aiohttp_server(claude.app())
    monkeypatch.setenv("ANTHROPIC_BASE_URL", str(server.make_url("")).rstrip("/"))
    fake = FakeGitHub(public_key=PUBLIC)
    fake.install(INSTALLATION, REPO)
    fake.commit(REPO, {"README.md": "infra\n"})
    settings = make_settings(dsn, workers=2, give_up=give_up).model_copy(update={
        "providers": ProviderSettings(GITHUB_APP_ID=fake.app_id, GITHUB_APP_PRIVATE_KEY=PRIVATE,
                                      ANTHROPIC_API_KEY=claude.api_key),
        "manifests": ManifestSettings(P38_RESYNC_SECONDS=resync)})
    sleeps = Sleeps()
    app = create_app(settings, write_token=WRITE_TOKEN, providers=[
        github.bundle(transport=fake.transport(), sleep=sleeps), anthropic.bundle()])
    client = await aiohttp_client(app, headers=WRITE)
    return GitOps(client, fake, store, sleeps, {"README.md": "infra\n"}), claude


async def test_a_description_becomes_a_ready_version_or_a_failed_one_with_an_issue(
        both: tuple[GitOps, FakeAnthropic]) -> None:
    gitops, claude = both
    await gitops.push({"README.md": "infra\n", "manifests/agents.yaml": AGENTS})
    client = gitops.client

    async def agent(name: str, status: str) -> dict[str, Any] | None:
        body = await (await client.get(f"/api/agents/{name}")).json()
        return body if body.get("status") == status else None

    digest = await wait_until(lambda: agent("digest", "Ready"), what="digest READY",
                              store=gitops.store)
    [version] = digest["versions"]
    assert (version["state"], version["origin"], version["rounds"]) == ("READY", "generated", 0)
    assert version["model"] == "claude-sonnet-5-5" and version["usd"] > 0
    assert version["cache_write_tokens"] > 0 or version["cache_read_tokens"] > 0
    code = (await (await client.get("/api/agents/digest/versions/1")).json())["code"]
    assert 'JOB = "Summarise what the input says."' in code

    flaky = await wait_until(lambda: agent("flaky", "Stalled"), what="flaky FAILED",
                             store=gitops.store)
    assert flaky["reason"] == "VersionFailed"
    assert "still refused after 3 fix round(s)" in flaky["versions"][0]["error"]
    assert flaky["versions"][0]["rounds"] == 3

    async def issue() -> dict[str, Any] | None:
        found = [i for i in gitops.fake.issues.get(REPO, [])
                 if "<!-- p38:agent-failed:flaky -->" in i["body"]]
        return found[0] if found else None

    opened = await wait_until(issue, what="the failure issue", store=gitops.store)
    assert opened["title"] == "p38: agent flaky failed to build"
    assert len(gitops.fake.issues[REPO]) == 1

    started = await client.post("/api/agents/digest/runs", json={"input": {"x": 1}})
    url = (await started.json())["url"]

    async def finished() -> dict[str, Any] | None:
        run = await (await client.get(url)).json()
        return run if run["state"] == "finished" else None

    run = await wait_until(finished, what="the run", store=gitops.store)
    assert run["outcome"] == "succeeded", run
    assert run["result"]["output"]["input"] == {"x": 1}
    # 1 call for digest, 4 for flaky (the first and its 3 fix rounds); the system prompt was
    # written to the cache once and read after.
    assert len(claude.requests) == 5


async def test_a_key_set_before_a_restart_acts_at_once(
        aiohttp_client: Any, aiohttp_server: Any, store: Store, dsn: str, tmp_path: Any,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Without ANTHROPIC_API_KEY the generation is recorded as dry-run (Blocked,
    NoCredentials); restarted with the key, the agent is built at start, not at the next
    resync."""
    from tests.agents.test_agents_e2e import app_on

    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    (tmp_path / "manifests").mkdir()
    (tmp_path / "manifests" / "agents.yaml").write_text(AGENTS.split("---")[0])
    first = await app_on(aiohttp_client, dsn, tmp_path)

    async def status(client: Any, wanted: str) -> dict[str, Any] | None:
        body = await (await client.get("/api/agents/digest")).json()
        return body if body.get("status") == wanted else None

    blocked = await wait_until(lambda: status(first, "Blocked"), what="dry-run", store=store)
    assert blocked["reason"] == "NoCredentials"
    await first.close()
    claude = FakeAnthropic()
    server = await aiohttp_server(claude.app())
    monkeypatch.setenv("ANTHROPIC_BASE_URL", str(server.make_url("")).rstrip("/"))
    monkeypatch.setenv("ANTHROPIC_API_KEY", claude.api_key)
    second = await app_on(aiohttp_client, dsn, tmp_path)
    ready = await wait_until(lambda: status(second, "Ready"), what="built at start",
                             store=store)
    assert ready["versions"][0]["origin"] == "generated" and len(claude.requests) == 1
