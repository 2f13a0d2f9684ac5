"""Providers: one bundle per external API (its client, the runners of its actions, the reads it
offers `observe`), plus the controller's own (`local`: the records it keeps, a local folder).

A bundle is an async context manager factory: given the settings, the store and the secrets it
opens what it needs and yields a `Provider`, or one that says why it is unavailable (no
credentials), and closes everything on exit. The app iterates over bundles; tests pass fakes
with `create_app(providers=[github.bundle(transport=fake.transport())])`. Adding a provider is
one module here with a `bundle()`; see docs/extending.md.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field

from controller.clients.sandbox import REQUIRED, Sandbox
from controller.clients.secrets import Secrets
from controller.clients.warm_pool import WarmPool
from controller.config import Settings
from controller.reconcile.desk import Desk
from controller.reconcile.plan import ActionRunner
from controller.store import Store


@dataclass(frozen=True)
class Env:
    """What a bundle may use to open its provider."""

    settings: Settings
    store: Store
    secrets: Secrets | None = None  # Secret Manager values, refreshed while the app runs
    desk: Desk | None = None  # has actions gated and run on a runner's behalf (tool calls)
    sandbox: Sandbox = REQUIRED  # how agent processes are fenced in (probed at start)
    pool: WarmPool | None = None  # agent processes started ahead for runs (None: cold starts)


@dataclass(frozen=True)
class Provider:
    """An opened provider: `runners` by action kind, `reads` for `observe` (None when
    unavailable), and `unavailable`: why it cannot be used, None when it can."""

    name: str
    runners: Mapping[str, ActionRunner] = field(default_factory=dict)
    reads: object | None = None
    unavailable: str | None = None


Bundle = Callable[[Env], AbstractAsyncContextManager[Provider]]
