"""/api/revisions through the real app and a local folder: every revision acted on is listed,
a return to a tree seen before (a revert) included, so the newest entry is what is applied."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from controller.app import create_app
from controller.config import ManifestSettings
from controller.store import Store
from tests.helpers import make_settings, wait_until

POLICY = """\
apiVersion: p38/v1
kind: Policy
metadata: {name: default}
spec: {approvalRequired: [railway.rollback]}
"""
SERVICE = """\
apiVersion: p38/v1
kind: Service
metadata: {name: api}
spec:
  railway: {project: p, environment: e, service: s}
"""


async def test_a_revert_is_a_revision_of_its_own(aiohttp_client, store: Store, dsn: str,  # type: ignore[no-untyped-def]
                                                 tmp_path: Path) -> None:
    """Folder A (a Policy and a Service), then B (the Service deleted), then A again: three
    entries, the newest A with its two objects and the Service created again; what is applied
    has the Service."""
    folder = tmp_path / "manifests"
    folder.mkdir()
    (folder / "policy.yaml").write_text(POLICY)
    (folder / "service.yaml").write_text(SERVICE)
    settings = make_settings(dsn, workers=1).model_copy(update={"manifests": ManifestSettings(
        P38_MANIFESTS_DIR=folder, P38_MANIFESTS_POLL_SECONDS=0.05)})
    client = await aiohttp_client(create_app(settings))

    async def revisions(count: int) -> list[dict[str, Any]] | None:
        response = await client.get("/api/revisions", params={"source": "local"})
        assert response.status == 200, await response.text()
        items: list[dict[str, Any]] = (await response.json())["items"]
        return items if len(items) >= count else None

    [a] = await wait_until(lambda: revisions(1), what="A recorded", store=store)
    (folder / "service.yaml").unlink()
    b, _ = await wait_until(lambda: revisions(2), what="B recorded", store=store)
    (folder / "service.yaml").write_text(SERVICE)
    items = await wait_until(lambda: revisions(3), what="A again recorded", store=store)

    assert [(r["revision"], r["status"], r["objects"], r["changes"]) for r in items] == [
        (a["revision"], "applied", 2, ["+ Service/api"]),
        (b["revision"], "applied", 1, ["- Service/api"]),
        (a["revision"], "applied", 2, ["+ Policy/default", "+ Service/api"])]
    assert a["revision"] != b["revision"] and items[0]["tree"] == a["tree"]
    assert items[0]["id"] > items[1]["id"] > items[2]["id"]
    applied = {(r["kind"], r["name"]) for r in await store.fetch("applied_objects_of", "local")}
    assert applied == {("Policy", "default"), ("Service", "api")}
