"""The app's periodic background tasks, each a `cleanup_ctx` entry: the local manifests
watcher, the resync of manifest sources, the Secret Manager refresh and retention.

Each runs in one task started before the app serves and cancelled (and awaited) at shutdown.
A failed tick is logged and retried at the next one; none of them ever stops the app.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any

import structlog
from aiohttp import web

from controller import retention
from controller.clients.secrets import SecretSource, refresh_forever
from controller.sources import local_signature
from controller.tasks import running
from controller.web.keys import QUEUE, SETTINGS, STORE

log = structlog.get_logger("p38.background")

LOCAL_KEY = "manifests:local"


async def refresh_secrets(app: web.Application, *,
                          source: SecretSource | None) -> AsyncIterator[None]:
    """Re-read Secret Manager every P38_SECRETS_TTL_SECONDS (when it is used)."""
    if source is None:
        yield
        return
    ttl = app[SETTINGS].providers.secrets_ttl_seconds
    async with running(lambda: refresh_forever(source.secrets, source.manager, ttl=ttl),
                       "secrets-refresh"):
        yield


async def local_manifests(app: web.Application) -> AsyncIterator[None]:
    """With a local manifests folder: reconcile it now and whenever its files change."""
    settings = app[SETTINGS].manifests
    folder = settings.directory
    if folder is None:
        yield
        return
    queue = app[QUEUE]
    log.info("local_manifests", folder=str(folder.resolve()))

    async def watch() -> None:
        seen = await asyncio.to_thread(local_signature, folder)
        await queue.enqueue([LOCAL_KEY])
        while True:
            await asyncio.sleep(settings.poll_seconds)
            try:
                now = await asyncio.to_thread(local_signature, folder)
                if now != seen:
                    await queue.enqueue([LOCAL_KEY])
                    seen = now
                    log.info("local_manifests_changed", folder=str(folder))
            except Exception as exc:  # the database away for a moment: try at the next tick
                log.warning("local_manifests_watch_failed", error=str(exc))

    async with running(watch, "local-manifests"):
        yield


def _every(seconds: float, step: Callable[[], Awaitable[None]],
           failure: str) -> Callable[[], Coroutine[Any, Any, None]]:
    """A task body running `step` every `seconds`; a failed step (the database away for a
    moment) is logged as `failure` and tried again at the next tick."""
    async def loop() -> None:
        while True:
            await asyncio.sleep(seconds)
            try:
                await step()
            except Exception as exc:
                log.warning(failure, error=str(exc))

    return loop


async def resync(app: web.Application) -> AsyncIterator[None]:
    """Re-enqueue manifest sources not reconciled for P38_RESYNC_SECONDS (GitHub does not
    redeliver a webhook that failed, so a missed push is caught here)."""
    every = app[SETTINGS].manifests.resync_seconds
    store = app[STORE]

    async def step() -> None:
        keys = await store.fetchval("resync_due", every)
        if keys:
            log.info("resync", keys=keys)

    async with running(_every(min(60.0, max(1.0, every / 4)), step, "resync_failed"),
                       "resync"):
        yield


async def prune(app: web.Application) -> AsyncIterator[None]:
    """Delete settled deliveries and audit rows older than P38_RETENTION_DAYS, every
    P38_PRUNE_SECONDS (the first time one period after start). Safe from every replica."""
    settings = app[SETTINGS].retention
    if settings.days == 0:
        yield
        return
    store = app[STORE]

    async def step() -> None:
        pruned = await retention.prune(store, days=settings.days)
        if pruned.deliveries or pruned.audit:
            log.info("pruned", days=settings.days, deliveries=pruned.deliveries,
                     audit=pruned.audit)

    async with running(_every(settings.every_seconds, step, "prune_failed"), "prune"):
        yield
