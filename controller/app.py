"""The aiohttp application factory: routes, typed app state, and every resource's lifetime.

`create_app(settings)` builds the application; `cleanup_ctx` opens, in order, the database
(embedded server when DATABASE_URL is unset, migrations when enabled), the outbound clients
with the executor's runners and the reconcilers' read context, the ingest writer, the workers
with their LISTEN connection, and the periodic tasks (local manifests watcher, resync,
retention); and closes them in reverse order. No globals.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hmac
import os
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

import structlog
from aiohttp import web

from controller import background
from controller.clients.github import GitHubApp
from controller.clients.secrets import SecretSource
from controller.config import Settings
from controller.context import StoreContext
from controller.executor import ActionRunner, Executor
from controller.ingest import IngestWriter
from controller.metrics import Metrics
from controller.ooda import Worker
from controller.policy import Policy
from controller.queue import WAKE_CHANNEL, WorkQueue
from controller.runners import github_runners, manifest_runners
from controller.sources import GitHubManifests
from controller.store import Store
from controller.store.embedded import resolve_dsn
from controller.web import api, health, objects, webhooks
from controller.web.json import problem
from controller.web.keys import (
    CONTEXT,
    EXECUTOR,
    GITHUB,
    INGEST,
    METRICS,
    POLICY,
    QUEUE,
    REGISTRY,
    RUNNERS,
    SETTINGS,
    STORE,
    WAKE,
    WORKERS,
)
from reconcilers import default_registry
from reconcilers.base import Reconciler

log = structlog.get_logger("p38.app")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def create_app(settings: Settings, *, registry: Mapping[str, Reconciler] | None = None,
               runners: Mapping[str, ActionRunner] | None = None,
               policy: Policy | None = None, github_transport: Any = None,
               github_sleep: Callable[[float], Awaitable[None]] | None = None,
               secrets: SecretSource | None = None) -> web.Application:
    """`secrets`: Secret Manager values, refreshed every P38_SECRETS_TTL_SECONDS while the app
    runs. `github_transport` (an httpx transport) and `github_sleep` replace the network and
    the rate-limit waits in tests."""
    app = web.Application(client_max_size=settings.server.max_body_bytes,
                          middlewares=[_json_errors, _api_auth])
    app[SETTINGS] = settings
    app[POLICY] = policy or Policy.from_settings(settings)
    app[METRICS] = Metrics()
    app[REGISTRY] = registry if registry is not None else default_registry()
    app[WAKE] = asyncio.Event()
    app[RUNNERS] = dict(runners or {})
    app.router.add_post("/webhooks/{source}", webhooks.receive)
    health.add_routes(app)
    api.add_routes(app)
    objects.add_routes(app)
    app.cleanup_ctx.append(functools.partial(background.refresh_secrets, source=secrets))
    app.cleanup_ctx.append(_database)
    app.cleanup_ctx.append(functools.partial(_clients, transport=github_transport,
                                             sleep=github_sleep, secrets=secrets))
    app.cleanup_ctx.append(_ingest)
    app.cleanup_ctx.append(_workers)
    app.cleanup_ctx.append(background.local_manifests)
    app.cleanup_ctx.append(background.resync)
    app.cleanup_ctx.append(background.prune)
    return app


@web.middleware
async def _json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """aiohttp's own 4xx answers (unknown route, wrong method) as JSON with a reason too."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400 or exc.content_type == "application/json":
            raise
        return problem(exc.status, f"{exc.reason}: {request.method} {request.path}")


@web.middleware
async def _api_auth(request: web.Request, handler: Handler) -> web.StreamResponse:
    token = request.app[SETTINGS].server.api_token
    path = request.path
    if token is not None and path.startswith("/api/") and path != "/api/health":
        offered = request.headers.get("Authorization", "")
        expected = f"Bearer {token.get_secret_value()}"
        if not hmac.compare_digest(offered.encode(), expected.encode()):
            return problem(401, "this API needs Authorization: Bearer <P38_API_TOKEN>")
    return await handler(request)


async def _database(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    dsn = await asyncio.to_thread(resolve_dsn, settings.store.database_url, settings.store.home)
    pool_size = settings.queue.workers + settings.ingest.writers + 4
    store = await Store.connect(dsn, min_size=2, max_size=pool_size)
    if settings.store.migrate_on_start:
        applied = await store.migrate()
        if applied:
            log.info("migrations_applied", versions=applied)
    app[STORE] = store
    app[QUEUE] = WorkQueue(store, settings.queue)
    if missing := settings.dry_run_providers():
        log.warning("dry_run", providers=missing,
                    reason="P38_DRY_RUN is set" if settings.policy.dry_run
                    else "no credentials configured",
                    meaning="their actions are recorded with what they would do, not executed")
    yield
    await store.close()


async def _clients(app: web.Application, *, transport: Any,
                   sleep: Callable[[float], Awaitable[None]] | None,
                   secrets: SecretSource | None) -> AsyncIterator[None]:
    """The GitHub App client (when configured), the runners that use it, and the read
    context reconcilers observe through."""
    settings, store = app[SETTINGS], app[STORE]
    providers = settings.providers
    runners: dict[str, ActionRunner] = manifest_runners(store)
    async with contextlib.AsyncExitStack() as stack:
        github: GitHubApp | None = None
        if providers.github_app_id and providers.github_app_private_key:
            configured = providers.github_app_private_key.get_secret_value()
            held = secrets.secrets if secrets is not None else None
            github = await stack.enter_async_context(GitHubApp.open(
                app_id=providers.github_app_id,
                private_key=(lambda: held.get("GITHUB_APP_PRIVATE_KEY") or configured)
                if held is not None else configured,
                base_url=providers.github_api_url, transport=transport, sleep=sleep))
            runners |= github_runners(github, store)
        given: dict[str, ActionRunner] = app[RUNNERS]
        runners.update(given)  # given to create_app: tests and embedders override
        app[GITHUB] = github
        app[EXECUTOR] = Executor(store, runners)
        app[CONTEXT] = StoreContext(
            store, local_dir=settings.manifests.directory,
            github=GitHubManifests(github, store, folder=settings.manifests.repo_path)
            if github is not None else None)
        yield


async def _ingest(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    writer = IngestWriter(app[STORE], writers=settings.ingest.writers,
                          max_batch=settings.ingest.max_batch)
    await writer.start()
    app[INGEST] = writer
    yield
    await writer.stop()


async def _workers(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    store, wake = app[STORE], app[WAKE]
    prefix = f"{socket.gethostname()}:{os.getpid()}"
    workers = [
        Worker(f"{prefix}:{n}", store=store, queue=app[QUEUE], registry=app[REGISTRY],
               executor=app[EXECUTOR], policy=app[POLICY], metrics=app[METRICS], wake=wake,
               context=app[CONTEXT])
        for n in range(settings.queue.workers)
    ]
    app[WORKERS] = workers
    stopping = asyncio.Event()
    async with contextlib.AsyncExitStack() as stack:
        if workers:
            await stack.enter_async_context(store.listening(WAKE_CHANNEL, wake.set))
        tasks = [asyncio.create_task(w.run(stopping), name=w.name) for w in workers]
        yield
        stopping.set()
        if tasks:
            _, still_running = await asyncio.wait(
                tasks, timeout=settings.server.shutdown_grace_seconds)
            for task in still_running:  # their leases are released as they cancel
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
