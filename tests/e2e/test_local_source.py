"""The local source: a folder reconciled with no GitHub at all, re-read when its files change,
listed by /api/objects."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from controller.app import create_app
from controller.config import ManifestSettings
from controller.store import Store
from tests.helpers import make_settings, wait_until

OWN = Path(__file__).parents[2] / "manifests"


async def _objects(client: Any) -> dict[str, Any]:
    response = await client.get("/api/objects")
    assert response.status == 200
    body: dict[str, Any] = await response.json()
    return body


async def test_local_folder_is_applied_and_followed(aiohttp_client, store: Store, dsn: str,  # type: ignore[no-untyped-def]
                                                    tmp_path: Path) -> None:
    folder = tmp_path / "manifests"
    shutil.copytree(OWN, folder)
    settings = make_settings(dsn, workers=1).model_copy(update={"manifests": ManifestSettings(
        P38_MANIFESTS_DIR=folder, P38_MANIFESTS_POLL_SECONDS=0.05)})
    client = await aiohttp_client(create_app(settings))

    async def applied(count: int) -> dict[str, Any] | None:
        body = await _objects(client)
        states = [o["state"] for o in body["items"]]
        return body if states.count("Applied") == count and len(states) == count else None

    body = await wait_until(lambda: applied(6), what="six objects applied")
    assert body["sources"][0]["source"] == "local"
    assert body["sources"][0]["state"] == "Ready"
    assert {o["kind"] for o in body["items"]} == {"Agent", "Schedule", "Policy", "Service"}
    assert all(o["last_reconcile"]["outcome"] == "done" for o in body["items"])

    # Remove the Service file: the watcher notices, the object is pruned.
    (folder / "services" / "controller.yaml").unlink()
    await wait_until(lambda: applied(5), what="the service pruned")
    # Break a file: nothing is pruned or changed, the source says why.
    agent = folder / "agents" / "tesla-watch.yaml"
    agent.write_text(agent.read_text().replace("catchUp: latest", "catchUp: latest\n  crontab: x"))

    async def invalid() -> dict[str, Any] | None:
        body = await _objects(client)
        return body if body["sources"][0]["state"] == "Invalid" else None

    body = await wait_until(invalid, what="the source invalid")
    problems = body["sources"][0]["problems"]
    assert any("tesla-watch.yaml" in p and "spec.crontab: unknown field" in p for p in problems)
    assert [o["state"] for o in body["items"]].count("Applied") == 5


async def test_dry_run_records_what_would_be_applied(aiohttp_client, store: Store, dsn: str,  # type: ignore[no-untyped-def]
                                                     tmp_path: Path) -> None:
    """P38_DRY_RUN: every action recorded as dry-run with what it would do; nothing applied."""
    folder = tmp_path / "manifests"
    shutil.copytree(OWN, folder)
    settings = make_settings(dsn, workers=1, dry_run=True).model_copy(update={
        "manifests": ManifestSettings(P38_MANIFESTS_DIR=folder)})
    client = await aiohttp_client(create_app(settings))

    async def pending() -> dict[str, Any] | None:
        body = await _objects(client)
        return body if len(body["items"]) == 6 else None

    body = await wait_until(pending, what="objects listed")
    assert {o["state"] for o in body["items"]} == {"Pending"}
    actions = await (await client.get("/api/actions")).json()
    assert {a["status"] for a in actions["items"]} == {"dry_run"}
    assert "+ Agent/tesla-watch" in {a["description"] for a in actions["items"]}
    assert await store.fetch("applied_objects_of", "local") == []
