"""What a short restart lost comes back within about a minute: a delivery GitHub failed to hand
over a moment before the controller started is still settling at start; the controller looks
again when its minute ends (not at the next resync) and asks GitHub for it, through the real
app and the fake GitHub."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from controller.app import create_app
from controller.config import ManifestSettings, ProviderSettings
from controller.providers import github
from controller.store import Store
from tests.fakes.github import FakeGitHub, make_key_pair
from tests.helpers import env_for, github_payload, make_settings, p38, wait_until

PRIVATE, PUBLIC = make_key_pair()


async def test_a_delivery_lost_in_a_restart_is_asked_for_when_its_minute_ends(
        aiohttp_client, store: Store, dsn: str) -> None:  # type: ignore[no-untyped-def]
    """A failed attempt 57 s old at start is not asked at once (it may still arrive): the
    status says Settling; a few seconds later, with the resync an hour away and nothing else
    waking the key, it is asked once, arrives, and `p38 status` counts it."""
    fake = FakeGitHub(public_key=PUBLIC)
    headers, body = github_payload("ping", {"zen": "Design for failure."},
                                   guid="lost-in-a-restart")
    a_moment_ago = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 57))
    fake.record_delivery("ping", body, headers, status_code=0, delivered_at=a_moment_ago)
    ready = asyncio.Event()
    holder: dict[str, Any] = {}

    async def send(again_headers: dict[str, str], again_body: bytes) -> int:
        await ready.wait()
        response = await holder["client"].post("/webhooks/github", data=again_body,
                                               headers=again_headers)
        return int(response.status)

    fake.redeliver_to = send
    settings = make_settings(dsn, workers=1).model_copy(update={
        "providers": ProviderSettings(GITHUB_APP_ID=fake.app_id, GITHUB_APP_PRIVATE_KEY=PRIVATE),
        "manifests": ManifestSettings(P38_RESYNC_SECONDS=3600)})
    client = await aiohttp_client(create_app(settings, providers=[github.bundle(
        transport=fake.transport())]))
    holder["client"] = client
    ready.set()

    async def status() -> dict[str, Any] | None:
        found = await store.fetch("statuses_of", ["webhooks:github"])
        return dict(found[0]) if found else None

    settling = await wait_until(status, what="the deliveries looked at", store=store)
    if fake.redelivered == []:  # (a slow start may already be past the minute)
        assert (settling["status"], settling["reason"]) == ("Waiting", "Settling"), settling
        assert "looked at again in" in settling["message"]

    async def arrived() -> bool:
        row = await store.fetchrow("delivery_by_guid", "lost-in-a-restart")
        return row is not None

    await wait_until(arrived, what="the lost delivery asked again and arrived", store=store)
    assert fake.redelivered == ["lost-in-a-restart"]  # asked once
    result = await asyncio.to_thread(p38, "status", env=env_for(dsn))
    assert "recovered from GitHub: 1 failed delivery(ies) asked again, 1 arrived" in \
        result.stdout, result.stdout + result.stderr
