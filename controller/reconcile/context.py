"""What `observe` may read: the `ObserveContext` protocol and the shapes it returns.

The engine implements it over the store and the providers; reconcilers only see this protocol.
A provider's reads are reached with a typed `ReadsKey` (as aiohttp's `AppKey`), so a reconciler
names the provider and the interface it expects, and gets `NotConfigured` with the reason when
the provider has no credentials. No I/O here.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, Protocol, TypeVar

from controller.reconcile.plan import Resource, Status

R = TypeVar("R")


class ReadsKey(Generic[R]):
    """Names a provider and the interface of the reads it offers to `observe`."""

    __slots__ = ("provider",)

    def __init__(self, provider: str) -> None:
        self.provider = provider

    def __repr__(self) -> str:
        return f"ReadsKey({self.provider!r})"


@dataclass(frozen=True)
class StoredPayload:
    """A stored delivery that produced the key being reconciled."""

    delivery_id: int
    source: str
    event: str
    action: str | None
    payload: Mapping[str, Any]


@dataclass(frozen=True)
class AppliedObject:
    kind: str
    name: str
    content_hash: str
    document: Mapping[str, Any]
    revision: str | None = None
    source: str = ""
    applied_at: datetime | None = None  # when this content was applied


@dataclass(frozen=True)
class ActionRecord:
    idempotency_key: str
    kind: str
    status: str  # held, succeeded, failed, dry_run, ...
    key: str | None  # the object whose reconcile planned it
    result: Mapping[str, Any] | None = None  # what its runner answered, once it ran
    error: str | None = None  # why it failed, when it did
    source: str | None = None  # the source of `key` (whose Policy governs it)
    id: int | None = None
    params: Mapping[str, Any] | None = None
    description: str = ""


@dataclass(frozen=True)
class ObjectStatus:
    key: str
    status: Status
    reason: str
    message: str
    revision: str | None
    source: str | None
    reconciled_at: datetime


class ObserveContext(Protocol):
    """What `observe` may read. Implemented by the engine over the store and providers."""

    async def resource(self, kind: str, name: str) -> Resource | None:
        """The object's persisted state-machine state."""
        ...

    async def recent_payloads(self, key: str, limit: int, *,
                              events: Collection[str] | None = None,
                              before: int | None = None,
                              pending: bool = False) -> list[StoredPayload]:
        """The newest deliveries that produced `key`, newest first (only `events` if given,
        only ids below `before` if given, only those `key` has not settled yet if
        `pending`)."""
        ...

    async def applied_objects(self, source: str) -> list[AppliedObject]:
        """What the controller last applied from `source`."""
        ...

    async def applied_object(self, source: str, kind: str, name: str) -> AppliedObject | None:
        """One applied manifest object, or None when it is not (or no longer) applied."""
        ...

    async def applied_of_kind(self, kind: str) -> list[AppliedObject]:
        """Every applied object of one manifest kind, from every source."""
        ...

    async def applied_referring(self, source: str, kind: str, field: str,
                                value: str) -> list[AppliedObject]:
        """The applied objects of `kind` in `source` whose `spec.<field>` is `value` (the
        Schedules of an Agent): found by the store, not by reading every object."""
        ...

    async def stored_deliveries(self, source: str, guids: Sequence[str]) -> set[str]:
        """Which of these delivery GUIDs from `source` are stored here."""
        ...

    async def statuses(self, keys: Sequence[str]) -> list[ObjectStatus]:
        """The recorded status of these objects (those that have one)."""
        ...

    async def action(self, idempotency_key: str) -> ActionRecord | None:
        """The outbox's record of an action (what `/claude approve` releases)."""
        ...

    async def action_by_id(self, action_id: int) -> ActionRecord | None:
        """The outbox's record of an action by its id, with its params (a job's work)."""
        ...

    async def held(self, source: str) -> list[ObjectStatus]:
        """The objects of `source` whose actions are held (Blocked by the killswitch or
        waiting for approval)."""
        ...

    async def pulls_with_head(self, repo: str, sha: str) -> list[str]:
        """The names (`owner/repo#N`) of the open pull requests of `repo` whose recorded
        head is commit `sha` (what a commit status maps to)."""
        ...

    def reads(self, key: ReadsKey[R]) -> R:
        """The reads a provider offers; raises `NotConfigured` (with the reason) when the
        provider cannot be used (no credentials)."""
        ...
