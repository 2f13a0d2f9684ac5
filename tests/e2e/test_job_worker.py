"""`p38 worker` (issue 24): job workers in a process of their own. A `p38 serve` with
P38_JOBS=none reconciles and queues a generation it does not carry out; `p38 status` says no
live process carries out generations; a worker of that kind, started on the same database,
claims it and its end wakes the agent in the serving process. The worker answers only its
health routes. Real app, real database, the fake Messages API over HTTP."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from controller.app import create_app
from controller.config import ManifestSettings, ProviderSettings, QueueSettings
from controller.config.role import Role
from controller.providers import anthropic
from controller.store import Store
from tests.e2e.test_jobs import AGENT, status
from tests.fakes.anthropic import FakeAnthropic
from tests.helpers import WRITE, WRITE_TOKEN, make_settings, wait_until


async def test_a_worker_process_carries_out_the_jobs_serve_leaves_to_it(
        aiohttp_client: Any, aiohttp_server: Any, store: Store, dsn: str, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "manifests"
    folder.mkdir()
    (folder / "digest.yaml").write_text(AGENT)
    claude = FakeAnthropic()
    server = await aiohttp_server(claude.app())
    monkeypatch.setenv("ANTHROPIC_BASE_URL", str(server.make_url("")).rstrip("/"))
    base = make_settings(dsn, workers=1)
    settings = base.model_copy(update={
        "providers": ProviderSettings(ANTHROPIC_API_KEY=claude.api_key),
        "manifests": ManifestSettings(P38_MANIFESTS_DIR=folder, P38_MANIFESTS_POLL_SECONDS=0.05),
        "queue": base.queue.model_copy(update={"jobs": "none"})})
    serving = await aiohttp_client(create_app(settings, write_token=WRITE_TOKEN,
                                              providers=[anthropic.bundle()]), headers=WRITE)

    async def orphaned() -> dict[str, Any] | None:
        shown: dict[str, Any] = await (await serving.get("/api/status")).json()
        return shown if shown["jobs_without_workers"] == ["generation"] else None

    shown = await wait_until(orphaned, what="a generation queued with no worker for it",
                             store=store)
    assert shown["job_workers"] == {"run": 0, "generation": 0, "session": 0}
    [me] = shown["controllers"]["running"]
    assert (me["role"], me["workers"], me["jobs"]) == ("serve", 1, {})
    assert claude.requests == []  # nobody asked Claude: serve leaves generations alone
    building = await status(store, "agent:local/digest")
    assert building is not None and building["reason"] == "Building"

    worker = await aiohttp_client(create_app(settings, providers=[anthropic.bundle()],
                                             worker=["generation"]))

    async def ready() -> dict[str, Any] | None:
        found = await status(store, "agent:local/digest")
        return found if found and found["reason"] == "VersionReady" else None

    await wait_until(ready, what="the agent woken by the worker's generation", store=store)
    [version] = await store.fetch("agent_versions_of", "agent:local/digest", 10)
    assert (version["number"], version["state"]) == (1, "READY")
    shown = await (await serving.get("/api/status")).json()
    roles = sorted((c["role"], c["workers"], c["jobs"]) for c in shown["controllers"]["running"])
    assert roles == [("serve", 1, {}), ("worker", 0, {"generation": 2})]
    assert shown["job_workers"]["generation"] == 2 and shown["jobs_without_workers"] == []

    assert (await worker.get("/healthz")).status == 200
    ready = await (await worker.get("/readyz")).json()
    assert (ready["role"], ready["jobs"], ready["routes"]) == ("worker", {"generation": 2}, [])
    assert (await worker.post("/webhooks/github", data=b"{}")).status == 404
    assert (await worker.get("/api/status")).status == 404


def test_what_each_role_runs() -> None:
    settings = make_settings("postgresql://unused/x", workers=3)
    assert Role.of(settings, None).jobs == {"run": 4, "generation": 2, "session": 2}
    some = settings.model_copy(update={"queue": settings.queue.model_copy(
        update={"jobs": "session"})})
    assert Role.of(some, None) == Role("serve", 3, {"session": 2})
    assert Role.of(some, ["run", "generation"]) == Role("worker", 0, {"run": 4, "generation": 2})
    ingest_only = make_settings("postgresql://unused/x", workers=0)
    assert Role.of(ingest_only, None) == Role("serve", 0, {})
    with pytest.raises(ValueError, match="unknown job kind build"):
        Role.of(settings, ["build"])


@pytest.mark.parametrize(("given", "kinds"), [
    ("all", ("run", "generation", "session")), ("none", ()), ("Session, run", ("run", "session"))])
def test_p38_jobs_names_job_kinds(given: str, kinds: tuple[str, ...],
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("P38_JOBS", given)
    assert QueueSettings().job_kinds() == kinds


def test_p38_jobs_refuses_an_unknown_kind(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("P38_JOBS", "run,deploys")
    with pytest.raises(ValueError, match="unknown job kind deploys"):
        QueueSettings()
