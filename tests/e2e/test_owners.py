"""A key whose owner needs a lookup: a Railway deployment webhook is keyed by the deployment;
its reconcile finds the applied Service that deploys that Railway service and enqueues the
Service's own key, in the same transaction."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from controller.app import create_app
from controller.config import ManifestSettings
from controller.store import Store
from tests.helpers import RAILWAY_SECRET, make_settings, sample, wait_until
from tests.manifest_samples import MANIFESTS as SAMPLE_MANIFESTS

OWN = SAMPLE_MANIFESTS  # a copy of the shipped manifests; never the working tree's
SERVICE_ID = "c9b8a7d6-e5f4-4321-9abc-def012345678"  # the service in the Railway sample
DEPLOYMENT = "deployment:7a3c1e2b-5d4f-4a6b-9c8d-0e1f2a3b4c5d"


async def test_a_deployment_reaches_the_service_that_owns_it(
        aiohttp_client, store: Store, dsn: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A Railway deployment's reconcile enqueues the applied Service that deploys its Railway
    service."""
    folder = tmp_path / "manifests"
    shutil.copytree(OWN, folder)
    service = folder / "services" / "controller.yaml"
    service.write_text(service.read_text().replace("2a3b4c5d-6e7f-4081-92a3-b4c5d6e7f803",
                                                   SERVICE_ID))
    settings = make_settings(dsn, workers=2).model_copy(update={"manifests": ManifestSettings(
        P38_MANIFESTS_DIR=folder)})
    client = await aiohttp_client(create_app(settings))

    async def audited(key: str, count: int) -> list[dict[str, Any]] | None:
        rows = [dict(r) for r in await store.fetch("audit_list", key, None, None, 20)]
        return rows if len(rows) >= count else None

    await wait_until(lambda: audited("service:local/controller", 1),
                     what="the Service applied and reconciled", store=store)

    _, body = sample("railway", "deployment-failed")
    response = await client.post("/webhooks/railway", data=body, headers={
        "Content-Type": "application/json", "Authorization": f"Bearer {RAILWAY_SECRET}"})
    assert response.status == 202, await response.text()
    assert (await response.json())["keys"] == [DEPLOYMENT]

    [deployed] = await wait_until(lambda: audited(DEPLOYMENT, 1), what="the deployment",
                                  store=store)
    assert deployed["decision"] == "Transition"
    assert deployed["phases"]["decide"]["enqueue"] == ["service:local/controller"]
    rows = await wait_until(lambda: audited("service:local/controller", 2),
                            what="the owning Service reconciled again", store=store)
    assert rows[0]["started_at"] > deployed["started_at"]
    state = await store.fetchrow("resource_get", "deployment", DEPLOYMENT.partition(":")[2])
    assert (state["state"], state["data"]["service"]) == ("failed", SERVICE_ID)
