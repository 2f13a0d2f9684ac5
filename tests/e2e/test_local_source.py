"""The local source: a folder reconciled with no GitHub at all, re-read when its files change;
every object it applies gets its own key and status, listed by /api/objects."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from controller.app import create_app
from controller.config import ManifestSettings
from controller.store import Store
from tests.helpers import make_settings, wait_until

OWN = Path(__file__).parents[2] / "manifests"
OBJECT_KEYS = {"agent:local/pr-digest", "agent:local/tesla-watch", "policy:local/default",
               "schedule:local/pr-digest-weekdays", "schedule:local/tesla-watch-market-hours",
               "service:local/controller"}


async def objects(client: Any, **query: str) -> dict[str, dict[str, Any]]:
    response = await client.get("/api/objects", params=query)
    assert response.status == 200, await response.text()
    return {item["key"]: item for item in (await response.json())["items"]}


async def test_local_folder_is_applied_and_followed(aiohttp_client, store: Store, dsn: str,  # type: ignore[no-untyped-def]
                                                    tmp_path: Path) -> None:
    folder = tmp_path / "manifests"
    shutil.copytree(OWN, folder)
    settings = make_settings(dsn, workers=1).model_copy(update={"manifests": ManifestSettings(
        P38_MANIFESTS_DIR=folder, P38_MANIFESTS_POLL_SECONDS=0.05)})
    client = await aiohttp_client(create_app(settings))

    async def applied(keys: set[str]) -> dict[str, dict[str, Any]] | None:
        found = await objects(client)
        manifest = {k: v for k, v in found.items() if "manifest" in v}
        done = set(manifest) == keys and all(
            v["manifest"]["applied"] == "Applied" for v in manifest.values())
        return found if done and found["manifests:local"]["status"] == "Ready" else None

    found = await wait_until(lambda: applied(OBJECT_KEYS), what="six objects applied",
                             store=store)
    source = found["manifests:local"]
    assert (source["reason"], source["objects"], source["problems"]) == ("Applied", 6, [])
    agent = found["agent:local/tesla-watch"]
    assert (agent["status"], agent["reason"], agent["source"]) == ("Blocked", "NoController",
                                                                   "local")
    assert agent["manifest"]["kind"] == "Agent" and agent["revision"]
    policy = found["policy:local/default"]
    assert (policy["status"], policy["reason"]) == ("Ready", "Active")
    assert "approval required for railway.rollback" in policy["message"]
    assert set(await objects(client, status="Blocked")) == OBJECT_KEYS - {
        "policy:local/default"}

    # Remove the Service file: the watcher notices, the object is pruned and forgotten.
    (folder / "services" / "controller.yaml").unlink()
    await wait_until(lambda: applied(OBJECT_KEYS - {"service:local/controller"}),
                     what="the service pruned", store=store)
    # Break a file: nothing is pruned or changed, the source is Stalled and says why.
    agent_file = folder / "agents" / "tesla-watch.yaml"
    agent_file.write_text(agent_file.read_text().replace("catchUp: latest",
                                                         "catchUp: latest\n  crontab: x"))

    async def invalid() -> dict[str, Any] | None:
        source = (await objects(client))["manifests:local"]
        return source if source["status"] == "Stalled" else None

    source = await wait_until(invalid, what="the source invalid", store=store)
    assert source["reason"] == "Invalid"
    assert any("tesla-watch.yaml" in p and "spec.crontab: unknown field" in p
               for p in source["problems"])
    assert await applied(OBJECT_KEYS - {"service:local/controller"}) is None  # still Stalled
    assert len(await store.fetch("applied_objects_of", "local")) == 5


async def test_dry_run_records_what_would_be_applied(aiohttp_client, store: Store, dsn: str,  # type: ignore[no-untyped-def]
                                                     tmp_path: Path) -> None:
    """P38_DRY_RUN: every action recorded as dry-run with what it would do; nothing applied;
    the objects are desired and say they are not applied, the source that it is dry-run."""
    folder = tmp_path / "manifests"
    shutil.copytree(OWN, folder)
    settings = make_settings(dsn, workers=1, dry_run=True).model_copy(update={
        "manifests": ManifestSettings(P38_MANIFESTS_DIR=folder)})
    client = await aiohttp_client(create_app(settings))

    async def pending() -> dict[str, dict[str, Any]] | None:
        found = await objects(client)
        return found if OBJECT_KEYS <= set(found) else None

    found = await wait_until(pending, what="objects listed", store=store)
    assert {found[k]["manifest"]["applied"] for k in OBJECT_KEYS} == {"Pending"}
    assert {(found[k]["status"], found[k]["reason"]) for k in OBJECT_KEYS} == {
        ("Blocked", "NotApplied")}
    assert (found["manifests:local"]["status"], found["manifests:local"]["reason"]) == (
        "Blocked", "DryRun")
    actions = await (await client.get("/api/actions")).json()
    assert {a["status"] for a in actions["items"]} == {"dry_run"}
    assert "+ Agent/tesla-watch" in {a["description"] for a in actions["items"]}
    assert await store.fetch("applied_objects_of", "local") == []
