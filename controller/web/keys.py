"""`web.AppKey` constants: the typed state an application carries (no module globals)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from aiohttp import web
from structlog.typing import FilteringBoundLogger

from controller.clients.sandbox import Sandbox
from controller.config import Settings
from controller.config.role import Role
from controller.engine.context import StoreContext
from controller.engine.executor import Executor
from controller.engine.ingest import IngestWriter
from controller.engine.metrics import Metrics
from controller.engine.ooda import Worker
from controller.engine.policies import PolicySource
from controller.engine.queue import WorkQueue
from controller.providers import Provider
from controller.reconcile.policy import Policy
from controller.reconcile.reconciler import Reconciler, Router
from controller.store import Store
from controller.web.budget import BodyBudget
from controller.web.inflight import InFlight, Shutdown

SETTINGS = web.AppKey("settings", Settings)
POLICY = web.AppKey("policy", Policy)  # the environment's part; see POLICIES
POLICIES = web.AppKey("policies", PolicySource)
METRICS = web.AppKey("metrics", Metrics)
REGISTRY = web.AppKey("registry", Mapping[str, Reconciler])
ROUTER = web.AppKey("router", Router)
STORE = web.AppKey("store", Store)
QUEUE = web.AppKey("queue", WorkQueue)
EXECUTOR = web.AppKey("executor", Executor)
PROVIDERS = web.AppKey("providers", dict[str, Provider])
INGEST = web.AppKey("ingest", IngestWriter)
WORKERS = web.AppKey("workers", list[Worker])
WAKE = web.AppKey("wake", asyncio.Event)
CONTEXT = web.AppKey("context", StoreContext)
BODIES = web.AppKey("bodies", BodyBudget)
IN_FLIGHT = web.AppKey("in_flight", InFlight)
SHUTDOWN = web.AppKey("shutdown", Shutdown)
WRITE_TOKEN: web.AppKey[str | None] = web.AppKey("write_token")  # without P38_API_TOKEN
ROLE = web.AppKey("role", Role)  # serve, or a `p38 worker` of some job kinds
DELIVERY_LOG = web.AppKey("delivery_log", FilteringBoundLogger)  # bound once: webhooks.py
SANDBOX = web.AppKey("sandbox", Sandbox)  # how agent processes are fenced in, probed at start
