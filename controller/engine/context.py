"""The read side offered to reconcilers' `observe`: persisted state, stored deliveries, applied
objects, statuses, and each provider's reads.

Implements `controller.reconcile.context.ObserveContext` over the store and the opened
providers. Its store reads go through `store.gathered`: reads an `observe` awaits together
(`asyncio.gather`) reach PostgreSQL as one statement. Reads only (a provider's read may fill
a cache of immutable content, as GitHub's manifest blobs); writes go through the executor
and the worker's end-of-reconcile transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any, TypeVar, cast

import orjson

from controller.providers import Provider
from controller.reconcile.context import (
    ActionRecord,
    AppliedObject,
    ObjectStatus,
    ReadsKey,
    StoredPayload,
)
from controller.reconcile.errors import NotConfigured
from controller.reconcile.plan import Resource
from controller.store import Record, Store

R = TypeVar("R")


class StoreContext:
    def __init__(self, store: Store, providers: Mapping[str, Provider],
                 sources: Callable[[str], str | None] = lambda _key: None) -> None:
        """`sources`: the source of a key (its reconciler's `source`)."""
        self._store = store
        self._providers = providers
        self._sources = sources

    async def resource(self, kind: str, name: str) -> Resource | None:
        row = await self._store.gathered.fetchrow("resource_get", kind, name)
        if row is None:
            return None
        return Resource(state=row["state"], version=row["version"], data=row["data"])

    async def recent_payloads(self, key: str, limit: int, *,
                              events: Collection[str] | None = None,
                              before: int | None = None,
                              pending: bool = False) -> list[StoredPayload]:
        rows = await self._store.gathered.fetch("recent_payloads_for_key", key, limit,
                                       sorted(events) if events is not None else None, before,
                                       pending)
        return [StoredPayload(delivery_id=r["id"], source=r["source"], event=r["event"],
                              action=r["action"], payload=orjson.loads(r["payload"]))
                for r in rows]

    async def applied_objects(self, source: str) -> list[AppliedObject]:
        return [_applied(r, source) for r in await self._store.gathered.fetch("applied_objects_of",
                                                                     source)]

    async def applied_object(self, source: str, kind: str, name: str) -> AppliedObject | None:
        row = await self._store.gathered.fetchrow("applied_object_get", source, kind, name)
        return None if row is None else _applied(row, source)

    async def applied_of_kind(self, kind: str) -> list[AppliedObject]:
        rows = await self._store.gathered.fetch("applied_of_kind", kind)
        return [_applied(r, r["source"]) for r in rows]

    async def applied_referring(self, source: str, kind: str, field: str,
                                value: str) -> list[AppliedObject]:
        rows = await self._store.gathered.fetch("applied_referring", source, kind, field, value)
        return [_applied(r, source) for r in rows]

    async def stored_deliveries(self, source: str, guids: Sequence[str]) -> set[str]:
        rows = await self._store.gathered.fetch("deliveries_stored", source, list(guids))
        return {r["guid"] for r in rows}

    async def statuses(self, keys: Sequence[str]) -> list[ObjectStatus]:
        return [_status(r) for r in await self._store.gathered.fetch("statuses_of", list(keys))]

    async def action(self, idempotency_key: str) -> ActionRecord | None:
        row = await self._store.gathered.fetchrow("action_by_key", idempotency_key)
        if row is None:
            return None
        key = row["key"]
        return ActionRecord(idempotency_key, row["kind"], row["status"], key, row["result"],
                            row["error"], self._sources(key) if key else None)

    async def action_by_id(self, action_id: int) -> ActionRecord | None:
        row = await self._store.gathered.fetchrow("action_by_id", action_id)
        if row is None:
            return None
        key = row["key"]
        return ActionRecord(row["idempotency_key"], row["kind"], row["status"], key,
                            row["result"], row["error"], self._sources(key) if key else None,
                            id=action_id, params=row["params"],
                            description=row["description"] or "")

    async def held(self, source: str) -> list[ObjectStatus]:
        return [_status(r) for r in await self._store.gathered.fetch("statuses_held", source)]

    async def pulls_with_head(self, repo: str, sha: str) -> list[str]:
        return [r["name"] for r in await self._store.gathered.fetch("pulls_with_head", repo, sha)]

    def reads(self, key: ReadsKey[R]) -> R:
        provider = self._providers.get(key.provider)
        if provider is None:
            raise NotConfigured(f"no {key.provider} provider in this controller")
        if provider.reads is None:
            raise NotConfigured(provider.unavailable or f"{key.provider} cannot be read")
        return cast(R, provider.reads)


def _applied(row: Record, source: str) -> AppliedObject:
    document: Any = row["document"]
    return AppliedObject(row["kind"], row["name"], row["content_hash"], document,
                         revision=row["revision"], source=source,
                         applied_at=row.get("applied_at"))


def _status(row: Record) -> ObjectStatus:
    return ObjectStatus(key=row["key"], status=row["status"], reason=row["reason"],
                        message=row["message"], revision=row["revision"], source=row["source"],
                        reconciled_at=row["reconciled_at"])
