"""Data for the page tests, written as the controller writes it: a delivery through the real
ingest path, then a reconcile of its key claimed and settled through the real work queue
(status, audit row with the deliveries it consumed), actions recorded by the executor's own
queries, and a signed-in client for the operator's words."""

from __future__ import annotations

import html
import re
import uuid
from datetime import UTC, datetime
from typing import Any

from controller.config import QueueSettings
from controller.engine.queue import AuditEntry, Kinds, StatusEntry, WorkQueue
from controller.store import Store
from tests.helpers import WRITE_TOKEN, store_delivery


def queue_of(store: Store) -> WorkQueue:
    return WorkQueue(store, QueueSettings(P38_LEASE_SECONDS=30.0, P38_MAX_ATTEMPTS=3))


async def reconcile(store: Store, key: str, *, outcome: str = "done",
                    status: tuple[str, str, str] | None = None, decision: str | None = None,
                    reason: str | None = None, error: str | None = None,
                    actions: list[dict[str, Any]] | None = None,
                    event: str = "probe") -> tuple[int, str]:
    """One delivery naming `key`, and one reconcile of it that ends with `outcome`: returns
    the delivery's id and the reconcile's id."""
    delivery = await store_delivery(store, key, event=event)
    queue = queue_of(store)
    lease = await queue.claim("page-test", Kinds(only=(key.partition(":")[0],)))
    assert lease is not None and lease.key == key, lease
    reconcile_id = str(uuid.uuid4())
    await queue.settle(
        lease, outcome, error=error, delay=3600.0 if outcome == "retry" else 0.0,
        status=StatusEntry(status[0], status[1], status[2], source="local")  # type: ignore[arg-type]
        if status else None,
        audit=AuditEntry(reconcile_id=reconcile_id, started=datetime.now(UTC), duration_ms=12.0,
                         decision=decision, reason=reason, actions=actions or []))
    return delivery, reconcile_id


async def action(store: Store, key: str, idempotency_key: str, *, status: str,
                 reason: str = "", description: str = "", error: str | None = None,
                 reconcile_id: str | None = None) -> int:
    """An action recorded as the executor records it (then finished, when it failed)."""
    row = await store.fetchrow("action_record", idempotency_key, idempotency_key.split(":")[0],
                               {}, "failed" if status == "failed" else status, reason, key,
                               reconcile_id, description, None)
    assert row is not None
    if status == "failed":
        await store.execute("action_finish", row["id"], "failed", None, error)
    return int(row["id"])


async def sign_in(client: Any, name: str = "dana") -> None:
    """Sign in with the write token (the client keeps the cookie)."""
    done = await client.post("/login", data={"name": name, "token": WRITE_TOKEN, "next": "/"},
                             allow_redirects=False)
    assert done.status == 303, await done.text()


def form_of(page: str, action: str) -> dict[str, str]:
    """The hidden fields of the page's first form posting to `action`, as a browser sends
    them."""
    found = re.search(rf'<form method="post" action="{re.escape(action)}"[^>]*>(.*?)</form>',
                      page, re.S)
    assert found is not None, f"no form posting to {action}"
    return {html.unescape(n): html.unescape(v) for n, v in
            re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', found.group(1))}
