"""`web.AppKey` constants: the typed state an application carries (no module globals)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from aiohttp import web

from controller.clients.github import GitHubApp
from controller.config import Settings
from controller.context import StoreContext
from controller.executor import ActionRunner, Executor
from controller.ingest import IngestWriter
from controller.metrics import Metrics
from controller.ooda import Worker
from controller.policy import Policy
from controller.queue import WorkQueue
from controller.store import Store
from reconcilers.base import Reconciler

SETTINGS = web.AppKey("settings", Settings)
POLICY = web.AppKey("policy", Policy)
METRICS = web.AppKey("metrics", Metrics)
REGISTRY = web.AppKey("registry", Mapping[str, Reconciler])
STORE = web.AppKey("store", Store)
QUEUE = web.AppKey("queue", WorkQueue)
EXECUTOR = web.AppKey("executor", Executor)
RUNNERS = web.AppKey("runners", dict[str, ActionRunner])
INGEST = web.AppKey("ingest", IngestWriter)
WORKERS = web.AppKey("workers", list[Worker])
WAKE = web.AppKey("wake", asyncio.Event)
GITHUB: web.AppKey[GitHubApp | None] = web.AppKey("github")
CONTEXT = web.AppKey("context", StoreContext)
