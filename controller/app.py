"""The aiohttp Application factory: routes, typed app state, and every resource's lifetime.

`create_app(settings)` builds the application; `cleanup_ctx` opens, in order, the Secret
Manager refresh, the database (embedded server when DATABASE_URL is unset, migrations when
enabled), the providers (each bundle: client, runners, reads) with the executor, the policy
source and the reconcilers' read context, the ingest writer, the workers with their LISTEN
connection, the heartbeat (this process's row in `controllers`), and the periodic tasks
(local manifests watcher, resync, retention); and closes them in reverse order. No globals.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence

import structlog
from aiohttp import web

from controller.clients.sandbox import Sandbox, verdict
from controller.clients.sandbox import probe as probe_sandbox
from controller.clients.secrets import SecretSource
from controller.clients.warm_pool import WarmPool
from controller.config import JOB_KINDS, Settings
from controller.config.role import Role
from controller.engine import background
from controller.engine.context import StoreContext
from controller.engine.desk import ActionDesk
from controller.engine.executor import Executor
from controller.engine.heartbeat import Identity, heartbeat
from controller.engine.ingest import IngestWriter
from controller.engine.metrics import Metrics
from controller.engine.ooda import Worker
from controller.engine.policies import PolicySource
from controller.engine.queue import WAKE_CHANNEL, Kinds, WorkQueue
from controller.providers import (
    Bundle,
    Env,
    Provider,
    agents,
    anthropic,
    github,
    local,
    notify,
    railway,
    services,
    tasks,
)
from controller.reconcile.ids import key_kind
from controller.reconcile.plan import ActionRunner
from controller.reconcile.policy import Policy
from controller.reconcile.reconciler import Reconciler, Router
from controller.store import Store
from controller.store.embedded import resolve_dsn
from controller.store.migrations import latest_version
from controller.web import agents as agent_routes
from controller.web import api, health, middleware, objects, overview, pages, pulls, webhooks
from controller.web import describe as describe_routes
from controller.web import operator as operator_routes
from controller.web import services as service_routes
from controller.web import tasks as task_routes
from controller.web.budget import BodyBudget
from controller.web.inflight import InFlight, Shutdown
from controller.web.keys import (
    BODIES,
    CONTEXT,
    DELIVERY_LOG,
    EXECUTOR,
    IN_FLIGHT,
    INGEST,
    METRICS,
    POLICIES,
    POLICY,
    PROVIDERS,
    QUEUE,
    REGISTRY,
    ROLE,
    ROUTER,
    SANDBOX,
    SETTINGS,
    SHUTDOWN,
    STORE,
    WAKE,
    WORKERS,
    WRITE_TOKEN,
)
from reconcilers import default_registry

log = structlog.get_logger("p38.app")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def default_providers() -> list[Bundle]:
    """The external providers, each configured from the environment (or unavailable)."""
    return [github.bundle(), anthropic.bundle(), railway.bundle()]


def create_app(settings: Settings, *, registry: Mapping[str, Reconciler] | None = None,
               providers: Sequence[Bundle] | None = None,
               secrets: SecretSource | None = None,
               write_token: str | None = None,
               worker: Sequence[str] | None = None) -> web.Application:
    """`providers`: the external providers' bundles (default: `default_providers()`; tests
    pass ones opened on fakes). `secrets`: Secret Manager values, refreshed every
    P38_SECRETS_TTL_SECONDS while the app runs. `write_token`: what writes to the API need
    when P38_API_TOKEN is not set (`p38 up` keeps one in $P38_HOME); with neither, the API
    takes no writes. `worker`: the job kinds of a `p38 worker` process, which runs only their
    job workers (no webhooks, no API, no reconciles) and answers only the health routes."""
    app = web.Application(client_max_size=settings.server.max_body_bytes,
                          middlewares=[middleware.requests],  # webhooks: see its doc
                          # bodies are read as sent: a compressed one is refused, never decoded
                          handler_args={"auto_decompress": False})
    app[SETTINGS] = settings
    app[WRITE_TOKEN] = write_token
    app[METRICS] = Metrics()
    app[REGISTRY] = registry if registry is not None else default_registry(
        manifests_folder=settings.manifests.repo_path)
    check_registry(app[REGISTRY])
    app[ROUTER] = Router.of(app[REGISTRY].values())
    app[WAKE] = asyncio.Event()
    app[BODIES] = BodyBudget(settings.server.reading_bodies_bytes)
    app[IN_FLIGHT] = InFlight()
    app[DELIVERY_LOG] = webhooks.delivery_log()
    app[SHUTDOWN] = Shutdown()
    app[ROLE] = Role.of(settings, worker)
    health.add_routes(app)
    if worker is None:
        _serving_routes(app)
    bundles = [local.bundle, agents.bundle, tasks.bundle, notify.bundle, services.bundle(),
               *(default_providers() if providers is None else providers)]

    async def refresh_secrets(app: web.Application) -> AsyncIterator[None]:
        async with background.refresh_secrets(
                secrets, ttl=app[SETTINGS].providers.secrets_ttl_seconds):
            yield

    async def open_providers(app: web.Application) -> AsyncIterator[None]:
        async with _providers(app, bundles, secrets):
            yield

    if worker is not None:
        app.cleanup_ctx.extend([refresh_secrets, _database, open_providers, _workers,
                                _heartbeat])
        return app
    app.cleanup_ctx.extend([refresh_secrets, _database, open_providers, _ingest, _workers,
                            _heartbeat, _at_start, _local_manifests, _resync, _prune,
                            pages.keep_counting])
    return app


def _serving_routes(app: web.Application) -> None:
    app.router.add_post("/webhooks/{source}", webhooks.receive, expect_handler=webhooks.expect)
    api.add_routes(app)
    objects.add_routes(app)
    describe_routes.add_routes(app)
    overview.add_routes(app)
    agent_routes.add_routes(app)
    task_routes.add_routes(app)
    pulls.add_routes(app)
    service_routes.add_routes(app)
    operator_routes.add_routes(app)
    pages.add_routes(app)


def _source_of(registry: Mapping[str, Reconciler], key: str) -> str | None:
    """The source whose Policy governs `key` (its reconciler says), None for none."""
    reconciler = registry.get(key_kind(key))
    return reconciler.source(key) if reconciler is not None else None


def check_registry(registry: Mapping[str, Reconciler]) -> None:
    """Every kind a reconciler may enqueue has a reconciler (else its keys would die)."""
    for reconciler in registry.values():
        missing = sorted(reconciler.owns - set(registry) - {"*"})
        if missing:
            raise ValueError(f"reconciler {reconciler.kind!r} owns {missing}, which no "
                             "reconciler in the registry handles")


async def _database(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    dsn = await asyncio.to_thread(resolve_dsn, settings.store.database_url, settings.store.home)
    role = app[ROLE]
    pool_size = (role.reconcile_workers + sum(role.jobs.values())
                 + (settings.ingest.writers if role.name == "serve" else 0) + 4)
    store = await Store.connect(dsn, min_size=2, max_size=pool_size)
    if settings.store.migrate_on_start:
        applied = await store.migrate()
        if applied:
            log.info("migrations_applied", versions=applied)
    app[STORE] = store
    app[QUEUE] = WorkQueue(store, settings.queue)
    yield
    await store.close()


@contextlib.asynccontextmanager
async def _providers(app: web.Application, bundles: Sequence[Bundle],
                     secrets: SecretSource | None) -> AsyncIterator[None]:
    """Open every provider; the executor gets their runners, the context their reads, the
    gate the names of those that can be used."""
    settings, store = app[SETTINGS], app[STORE]
    executor = Executor(store)
    desk = ActionDesk(executor)
    app[SANDBOX] = sandbox = Sandbox(required=not settings.policy.agents_unsandboxed,
                                     found=await probe_sandbox())
    if sandbox.found.get("sandbox") == "complete":
        log.info("agents_sandbox", verdict=verdict(sandbox.found, sandbox))
    else:
        log.warning("agents_sandbox", verdict=verdict(sandbox.found, sandbox),
                    **{k: v for k, v in sandbox.found.items() if k != "sandbox"})
    async with contextlib.AsyncExitStack() as stack:
        runs = app[ROLE].jobs.get("run", 0)  # agent runs this process carries out at once
        pool = await stack.enter_async_context(WarmPool.open(runs, sandbox=sandbox)) \
            if runs and sandbox.refusal() is None else None
        env = Env(settings, store, secrets.secrets if secrets is not None else None,
                  desk=desk, sandbox=sandbox, pool=pool)
        opened: dict[str, Provider] = {}
        for open_bundle in bundles:
            provider = await stack.enter_async_context(open_bundle(env))
            if provider.name in opened:
                raise ValueError(f"two providers are named {provider.name!r}")
            opened[provider.name] = provider
        runners: dict[str, ActionRunner] = {}
        for provider in opened.values():
            runners.update(provider.runners)
        usable = frozenset(name for name, p in opened.items()
                           if p.unavailable is None and name != local.NAME)
        unavailable = {name: p.unavailable for name, p in opened.items()
                       if p.unavailable is not None and name != local.NAME}
        app[PROVIDERS] = opened
        app[POLICY] = Policy.from_settings(settings, providers=usable, unavailable=unavailable)
        app[POLICIES] = PolicySource(store, app[POLICY])
        executor.runners.update(runners)
        desk.policies = app[POLICIES]
        app[EXECUTOR] = executor
        registry = app[REGISTRY]
        app[CONTEXT] = StoreContext(store, opened, lambda key: _source_of(registry, key))
        if settings.policy.dry_run or unavailable:
            log.warning("dry_run", providers=sorted(unavailable) if not settings.policy.dry_run
                        else "all", reason="P38_DRY_RUN is set" if settings.policy.dry_run
                        else unavailable,
                        meaning="their actions are recorded with what they would do, not "
                                "executed")
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
    settings, role = app[SETTINGS], app[ROLE]
    store, wake = app[STORE], app[WAKE]
    prefix = f"{socket.gethostname()}:{os.getpid()}"
    # Long work has pools of its own (reconcilers/jobs.py): a reconcile worker never waits
    # on it, and each kind's concurrency is its own. The reconcile workers leave every job
    # kind alone, whether this process or a `p38 worker` carries it out.
    job_kinds = tuple(kind for kind in JOB_KINDS if kind in app[REGISTRY])
    pools = [(Kinds(never=job_kinds), role.reconcile_workers, "")]
    pools += [(Kinds(only=(kind,)), count, kind) for kind, count in role.jobs.items()
              if kind in job_kinds]
    workers = [
        Worker(f"{prefix}:{label}{n}", store=store, queue=app[QUEUE], registry=app[REGISTRY],
               executor=app[EXECUTOR], policies=app[POLICIES], metrics=app[METRICS],
               wake=wake, context=app[CONTEXT], kinds=kinds)
        for kinds, count, label in pools for n in range(count)
    ]
    app[WORKERS] = workers
    shutdown = app[SHUTDOWN]
    stopping = shutdown.requested  # set by a signal (serving), or below when the app ends
    async with contextlib.AsyncExitStack() as stack:
        if workers:
            await stack.enter_async_context(store.listening(WAKE_CHANNEL, wake.set))
        tasks = [asyncio.create_task(w.run(stopping), name=w.name) for w in workers]
        yield
        stopping.set()
        if tasks:
            _, still_running = await asyncio.wait(
                tasks, timeout=shutdown.remaining(settings.server.shutdown_grace_seconds))
            for task in still_running:  # their leases are released as they cancel
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


async def _heartbeat(app: web.Application) -> AsyncIterator[None]:
    """This process's row in `controllers` while it runs (`controller.engine.heartbeat`)."""
    role = app[ROLE]
    jobs = {kind: count for kind, count in role.jobs.items() if kind in app[REGISTRY]}
    async with heartbeat(app[STORE], Identity(workers=role.reconcile_workers, jobs=jobs,
                                              role=role.name)):
        yield


async def _at_start(app: web.Application) -> AsyncIterator[None]:
    """Hint the keys reconcilers ask for at start (objects no webhook names, every key of the
    kinds that say `every_key_at_start`), and those whose actions were only recorded for lack
    of credentials or under dry-run, or whose newest version failed on a key the provider
    refused: this process may have what they lacked (an ANTHROPIC_API_KEY set or fixed before a
    restart acts at once)."""
    if app[SETTINGS].queue.workers:
        keys = [key for r in app[REGISTRY].values() for key in r.at_start]
        if await app[STORE].schema_version() >= latest_version():  # (else /readyz says so)
            keys += [r["key"] for r in await app[STORE].fetch("statuses_recorded_only")]
            keys += [r["agent"] for r in await app[STORE].fetch("agents_failed_by_provider")]
            kinds = [r.kind for r in app[REGISTRY].values() if r.every_key_at_start]
            keys += [r["key"] for r in await app[STORE].fetch("queue_keys_of_kinds", kinds)]
        if keys:
            await app[QUEUE].hint(keys, event="start")
    yield


async def _local_manifests(app: web.Application) -> AsyncIterator[None]:
    async with background.local_manifests(app[SETTINGS].manifests, app[QUEUE], app[STORE]):
        yield


async def _resync(app: web.Application) -> AsyncIterator[None]:
    every = app[SETTINGS].manifests.resync_seconds
    periods = {kind: every for kind, r in app[REGISTRY].items() if r.resync}
    async with background.resync(app[QUEUE], periods):
        yield


async def _prune(app: web.Application) -> AsyncIterator[None]:
    async with background.prune(app[STORE], app[SETTINGS].retention):
        yield
