"""The periodic resync enqueues manifest sources idle for P38_RESYNC_SECONDS, once."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from controller.store import Store


async def test_idle_sources_are_enqueued_once(store: Store) -> None:
    await store.execute("resource_insert", "manifests", "octo/infra", "Ready", {})
    await store.execute("resource_insert", "manifests", "local", "Ready", {})
    await store.execute("resource_insert", "repo", "octo/infra", "active", {})  # not a source
    await store.execute(  # `local` was reconciled a moment ago
        "audit_record", uuid.uuid4(), "manifests:local", "manifests", "w", [], 1, "done", {},
        "UpToDate", "", [], None, datetime.now(UTC), 1.0)
    assert await store.fetchval("resync_due", 300.0) == ["manifests:octo/infra"]
    assert await store.fetchval("resync_due", 300.0) is None  # already queued: left alone
    queued = [r["key"] for r in await store.fetch("queue_list", None, None, 10)]
    assert queued == ["manifests:octo/infra"]
    assert await store.fetchval("resync_due", 0.0) == ["manifests:local"]
