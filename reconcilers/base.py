"""The contract between the worker loop and a reconciler, as plain frozen data.

A reconciler has `observe(ctx, key) -> snapshot` (reads through `ctx`; the only I/O it does is
what `ctx` offers) and `decide(snapshot, policy) -> Plan` (pure: no I/O, no clock). The worker
gates the plan's actions, runs them through the executor and persists the transition.
This module imports no I/O library.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

if TYPE_CHECKING:
    from controller.fsm import StateMachine
    from controller.policy import Policy


@dataclass(frozen=True)
class Action:
    """One side effect, named by an idempotency key that is stable across retries."""

    kind: str
    params: Mapping[str, Any]
    idempotency_key: str
    description: str = ""
    needs_approval: bool = False
    needs: str | None = None  # the provider whose credentials it uses (None: internal)


@dataclass(frozen=True)
class Resource:
    """An object's persisted state, with the version used for optimistic concurrency."""

    state: str
    version: int
    data: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Transition:
    """Move the object from `from_state` (None: new) to `to_state`, expecting `version`."""

    from_state: str | None
    to_state: str
    data: Mapping[str, Any]
    expected_version: int | None
    reason: str


@dataclass(frozen=True)
class Plan:
    """What a reconcile decided: a CamelCase decision, why, and what to do about it."""

    decision: str
    reason: str
    actions: tuple[Action, ...] = ()
    transition: Transition | None = None
    requeue_after: float | None = None


@dataclass(frozen=True)
class StoredPayload:
    """A stored delivery that produced the key being reconciled."""

    delivery_id: int
    source: str
    event: str
    action: str | None
    payload: Mapping[str, Any]


@dataclass(frozen=True)
class ManifestFiles:
    """The manifest files of a source at one revision.

    `revision` is the commit SHA (a content digest for a local folder) and `tree` the
    manifests folder's tree SHA (the same digest locally). `files` is None when `tree` equals
    the `known_tree` the caller passed (nothing was read); otherwise path -> text, with files
    that could not be read in `unreadable` as `path:1:1: message`.
    """

    revision: str
    tree: str
    files: Mapping[str, str] | None
    unreadable: tuple[str, ...] = ()
    blobs_fetched: int = 0


@dataclass(frozen=True)
class Where:
    """Which revision of a source to read: the default branch head unless `commit` is set."""

    source: str  # `local` or `owner/repo`
    installation_id: int | None = None
    branch: str | None = None  # None: ask GitHub for the default branch
    commit: str | None = None


@dataclass(frozen=True)
class AppliedObject:
    kind: str
    name: str
    content_hash: str
    document: Mapping[str, Any]


class ObserveContext(Protocol):
    """What `observe` may read. Implemented by the controller over the store and clients."""

    async def resource(self, kind: str, name: str) -> Resource | None: ...

    async def applied_objects(self, source: str) -> list[AppliedObject]:
        """What the controller last applied from `source`."""
        ...

    async def manifest_files(self, where: Where, *, known_tree: str | None) -> ManifestFiles:
        """A source's manifest files (GitHub: only blobs not seen before are downloaded)."""
        ...

    async def pull_touches(self, repo: str, number: int, *, installation_id: int) -> bool:
        """Whether the pull request changes a file under the manifests folder."""
        ...

    async def recent_payloads(self, key: str, limit: int, *,
                              events: Collection[str] | None = None,
                              before: int | None = None) -> list[StoredPayload]:
        """The newest deliveries that produced `key`, newest first (only `events` if given,
        only ids below `before` if given)."""
        ...


class Reconciler(Protocol):
    kind: ClassVar[str]
    machine: ClassVar[StateMachine]

    async def observe(self, ctx: ObserveContext, key: str) -> Any: ...

    def decide(self, snapshot: Any, policy: Policy) -> Plan: ...
