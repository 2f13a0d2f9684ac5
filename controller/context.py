"""The read side offered to reconcilers' `observe`: persisted state and stored deliveries.

Implements `reconcilers.base.ObserveContext` over the store. Reads only; writes go through the
executor and the worker's end-of-reconcile transaction.
"""

from __future__ import annotations

from collections.abc import Collection

import orjson

from controller.store import Store
from reconcilers.base import Resource, StoredPayload


class StoreContext:
    def __init__(self, store: Store) -> None:
        self._store = store

    async def resource(self, kind: str, name: str) -> Resource | None:
        row = await self._store.fetchrow("resource_get", kind, name)
        if row is None:
            return None
        return Resource(state=row["state"], version=row["version"], data=row["data"])

    async def recent_payloads(self, key: str, limit: int, *,
                              events: Collection[str] | None = None,
                              before: int | None = None) -> list[StoredPayload]:
        rows = await self._store.fetch("recent_payloads_for_key", key, limit,
                                       sorted(events) if events is not None else None, before)
        return [StoredPayload(delivery_id=r["id"], source=r["source"], event=r["event"],
                              action=r["action"], payload=orjson.loads(r["payload"]))
                for r in rows]
