"""The controller's periodic background tasks: the local manifests watcher, the resync, the
Secret Manager refresh and retention.

Each is an async context manager that runs one task for the duration of its block (the app
enters them from `cleanup_ctx`, so they start before it serves and are cancelled and awaited at
shutdown). A failed tick is logged and retried at the next one; none of them ever stops the
app. They take their dependencies as arguments and know nothing of aiohttp.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any

import structlog

from controller.clients.secrets import SecretSource, refresh_forever
from controller.config import ManifestSettings, RetentionSettings
from controller.engine import retention
from controller.engine.queue import WorkQueue
from controller.providers.local import code_signature, local_signature
from controller.reconcile.reconciler import object_key
from controller.store import Store
from controller.store.outage import Outage
from controller.tasks import running

log = structlog.get_logger("p38.background")

LOCAL_KEY = "manifests:local"


@contextlib.asynccontextmanager
async def refresh_secrets(source: SecretSource | None, *, ttl: float) -> AsyncIterator[None]:
    """Re-read Secret Manager every `ttl` seconds (when it is used)."""
    if source is None:
        yield
        return
    async with running(lambda: refresh_forever(source.secrets, source.manager, ttl=ttl),
                       "secrets-refresh"):
        yield


@contextlib.asynccontextmanager
async def local_manifests(settings: ManifestSettings, queue: WorkQueue,
                          store: Store | None = None) -> AsyncIterator[None]:
    """With a local manifests folder: reconcile it now and whenever its files change; with
    `store`, also each local agent whose hand-written module or test changes."""
    folder = settings.directory
    if folder is None:
        yield
        return
    log.info("local_manifests", folder=str(folder.resolve()))
    code = AgentFiles(folder.parent, store)

    async def watch() -> None:
        seen = await asyncio.to_thread(local_signature, folder)
        await queue.hint([LOCAL_KEY])
        while True:
            await asyncio.sleep(settings.poll_seconds)
            try:
                now = await asyncio.to_thread(local_signature, folder)
                if now != seen:
                    await queue.hint([LOCAL_KEY])
                    seen = now
                    log.info("local_manifests_changed", folder=str(folder))
                first, changed = await code.changed()
                if first:  # (a first look is no change: not logged, its hint says why)
                    await queue.hint(first, event="agent_code_first_look")
                if changed:
                    await queue.hint(changed, event="agent_code_changed")
                    log.info("agent_code_changed", agents=changed)
            except Exception as exc:  # the database away for a moment: try at the next tick
                if not queue.outage.failed(exc, where="local manifests watch"):
                    log.warning("local_manifests_watch_failed", error=str(exc))

    async with running(watch, "local-manifests"):
        yield


class AgentFiles:
    """The files local agents are made of, and which agents' files changed. A change counts
    once it has held for two looks (an editor's save can pass through a truncated file); an
    agent whose files are seen for the first time is looked at once, quietly (its files may
    have changed between its apply and this first look; usually nothing did).
    Which files those are is re-read from the applied agents every `REFRESH` looks."""

    REFRESH = 10

    def __init__(self, root: Path, store: Store | None) -> None:
        self._root, self._store = root, store
        self._paths: dict[str, list[str]] = {}
        self._seen: dict[str, tuple[tuple[str, int, int], ...]] = {}
        self._told: dict[str, tuple[tuple[str, int, int], ...]] = {}
        self._looks = 0

    async def changed(self) -> tuple[list[str], list[str]]:
        """(agents seen for the first time, agents whose files changed since the last look)"""
        if self._store is None:
            return [], []
        if self._looks % self.REFRESH == 0:
            self._paths = {
                object_key("Agent", "local", r["name"]): [
                    p for p in (spec.get("code"), spec.get("test")) if isinstance(p, str)]
                for r in await self._store.fetch("applied_of_kind", "Agent")
                if r["source"] == "local"
                and isinstance(spec := (r["document"] or {}).get("spec") or {}, dict)}
        self._looks += 1
        first, changed = [], []
        for key, paths in self._paths.items():
            if not paths:
                continue
            now = await asyncio.to_thread(code_signature, self._root, paths)
            before = self._seen.get(key)
            self._seen[key] = now
            if before is None:  # first seen: look once, a change may have come before
                self._told[key] = now
                first.append(key)
            elif before == now and self._told.get(key) != now:
                self._told[key] = now
                changed.append(key)
        return first, changed


def every(seconds: float, step: Callable[[], Awaitable[None]], failure: str,
          outage: Outage | None = None) -> Callable[[], Coroutine[Any, Any, None]]:
    """A task body running `step` every `seconds`; a failed step is logged as `failure` (the
    database away: said by `outage`, once) and tried again at the next tick."""
    async def loop() -> None:
        while True:
            await asyncio.sleep(seconds)
            try:
                await step()
            except Exception as exc:
                if outage is None or not outage.failed(exc, where=failure):
                    log.warning(failure, error=str(exc))

    return loop


@contextlib.asynccontextmanager
async def resync(queue: WorkQueue, periods: dict[str, float]) -> AsyncIterator[None]:
    """Re-enqueue the keys of every kind that has something to re-read (`periods`: kind ->
    seconds) when they were not reconciled for that long, dead keys included (revived with a
    fresh count): GitHub does not redeliver a webhook that failed, and a key that gave up while
    a provider was down must try again once it is back."""
    if not periods:
        yield
        return
    tick = min(60.0, max(1.0, min(periods.values()) / 4))

    async def step() -> None:
        keys = await queue.resync(periods)
        if keys:
            log.info("resync", keys=keys[:20], count=len(keys))

    async with running(every(tick, step, "resync_failed", queue.outage), "resync"):
        yield


@contextlib.asynccontextmanager
async def prune(store: Store, settings: RetentionSettings) -> AsyncIterator[None]:
    """Delete settled deliveries and audit rows older than P38_RETENTION_DAYS, every
    P38_PRUNE_SECONDS (the first time one period after start). Safe from every replica."""
    if settings.days == 0:
        yield
        return

    async def step() -> None:
        pruned = await retention.prune(store, days=settings.days)
        if pruned:
            log.info("pruned", days=settings.days, deliveries=pruned.deliveries,
                     audit=pruned.audit, statuses=pruned.statuses, runs=pruned.runs,
                     ticks=pruned.ticks, blobs=pruned.blobs)

    async with running(every(settings.every_seconds, step, "prune_failed", store.outage),
                       "prune"):
        yield
