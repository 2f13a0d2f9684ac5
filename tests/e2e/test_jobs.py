"""Long work as jobs (issue 24), end to end: the real app, the real database, the fake Messages
API over HTTP. A generation runs on its own job worker: while Claude takes its time, the one
reconcile worker goes on reconciling other keys; the generation's end wakes its agent at once;
a controller stopped in the middle of a generation leaves it to the next one, which finishes
the same version (one version, one READY)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from controller.app import create_app
from controller.config import ManifestSettings, ProviderSettings
from controller.providers import anthropic
from controller.store import Store
from tests.fakes.anthropic import FakeAnthropic
from tests.helpers import WRITE, WRITE_TOKEN, make_settings, wait_until

AGENT = """apiVersion: p38/v1
kind: Agent
metadata: {name: digest}
spec:
  description: Summarise what the input says.
"""
SCHEDULE = """apiVersion: p38/v1
kind: Schedule
metadata: {name: nightly}
spec:
  agent: digest
  cron: "0 3 * * *"
"""


async def start(aiohttp_client: Any, aiohttp_server: Any, dsn: str, folder: Path,
                claude: FakeAnthropic, monkeypatch: pytest.MonkeyPatch) -> Any:
    server = await aiohttp_server(claude.app())
    monkeypatch.setenv("ANTHROPIC_BASE_URL", str(server.make_url("")).rstrip("/"))
    settings = make_settings(dsn, workers=1).model_copy(update={  # ONE reconcile worker
        "providers": ProviderSettings(ANTHROPIC_API_KEY=claude.api_key),
        "manifests": ManifestSettings(P38_MANIFESTS_DIR=folder,
                                      P38_MANIFESTS_POLL_SECONDS=0.05)})
    app = create_app(settings, write_token=WRITE_TOKEN, providers=[anthropic.bundle()])
    return await aiohttp_client(app, headers=WRITE)


def held(claude: FakeAnthropic) -> tuple[asyncio.Event, asyncio.Event]:
    """Claude's first answer waits for `release`; `asked` is set once it was asked."""
    asked, release = asyncio.Event(), asyncio.Event()

    async def before(index: int) -> None:
        if index == 0:
            asked.set()
            await release.wait()

    claude.before = before
    return asked, release


async def status(store: Store, key: str) -> dict[str, Any] | None:
    rows = await store.fetch("statuses_of", [key])
    return dict(rows[0]) if rows else None


async def test_a_slow_generation_holds_no_reconcile_worker_and_wakes_its_agent(
        aiohttp_client: Any, aiohttp_server: Any, store: Store, dsn: str, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "manifests"
    folder.mkdir()
    (folder / "digest.yaml").write_text(AGENT)
    claude = FakeAnthropic()
    asked, release = held(claude)
    client = await start(aiohttp_client, aiohttp_server, dsn, folder, claude, monkeypatch)
    await asyncio.wait_for(asked.wait(), timeout=60)

    # Claude has not answered; the one reconcile worker is free: a new object is applied.
    (folder / "nightly.yaml").write_text(SCHEDULE)

    async def applied() -> dict[str, Any] | None:
        return await status(store, "schedule:local/nightly")

    await wait_until(applied, what="the schedule applied while Claude writes", store=store)
    building = await status(store, "agent:local/digest")
    assert building is not None and building["reason"] == "Building", building
    [job] = [r for r in await store.fetch("queue_list", None, None, 100)
             if r["key"].startswith("generation:local#")]
    assert job["kind"] == "generation"
    shown = await (await client.get("/api/status")).json()  # what p38 status says
    assert shown["jobs"]["generation"] == {"running": 1}, shown["jobs"]

    release.set()

    async def ready() -> dict[str, Any] | None:
        found = await status(store, "agent:local/digest")
        return found if found and found["reason"] == "VersionReady" else None

    await wait_until(ready, what="the agent woken by its generation's end", store=store)
    [version] = await store.fetch("agent_versions_of", "agent:local/digest", 10)
    assert (version["number"], version["state"]) == (1, "READY")
    [generate] = [a for a in await store.fetch("actions_list", "agent:local/digest", None, 20,
                                               None) if a["kind"] == "agent.generate"]
    assert generate["status"] == "succeeded"


async def test_a_generation_interrupted_by_a_stop_is_finished_by_the_next_controller(
        aiohttp_client: Any, aiohttp_server: Any, store: Store, dsn: str, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "manifests"
    folder.mkdir()
    (folder / "digest.yaml").write_text(AGENT)
    first = FakeAnthropic()
    asked, _never = held(first)
    client = await start(aiohttp_client, aiohttp_server, dsn, folder, first, monkeypatch)
    await asyncio.wait_for(asked.wait(), timeout=60)
    await client.close()  # a deploy: SIGTERM in the middle of the generation

    second = FakeAnthropic()
    await start(aiohttp_client, aiohttp_server, dsn, folder, second, monkeypatch)

    async def ready() -> dict[str, Any] | None:
        found = await status(store, "agent:local/digest")
        return found if found and found["reason"] == "VersionReady" else None

    await wait_until(ready, what="the generation finished by the next controller", store=store)
    versions = await store.fetch("agent_versions_of", "agent:local/digest", 10)
    assert [(v["number"], v["state"]) for v in versions] == [(1, "READY")]  # one, not two
    assert len(second.requests) == 1  # the version written once more, from its start
