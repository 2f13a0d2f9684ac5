"""The controller's heartbeat: one row per running process in `controllers` (host, pid,
version, role, reconcile workers, job workers by kind, started, last seen), so `p38 status`
and `p38 run --wait` can tell a live controller from one that was killed, and which long work
has a live process to carry it out.

The row is written when the process starts and every `BEAT_SECONDS` while it runs, and removed
when it stops cleanly; a row not seen for `GONE_AFTER_SECONDS` is a process that died (or lost
its database), shown as gone; rows not seen for `PRUNE_AFTER_SECONDS` are deleted by any live
controller. A failed beat (the database away for a moment) is logged once per outage and
tried again at the next one; the heartbeat never stops the app. Knows nothing of aiohttp.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from importlib.metadata import version as package_version

import structlog

from controller.store import Store
from controller.tasks import running

log = structlog.get_logger("p38.heartbeat")

BEAT_SECONDS = 5.0
GONE_AFTER_SECONDS = 30.0  # six beats missed: the process is not running any more
PRUNE_AFTER_SECONDS = 24 * 3600.0  # a killed controller stays visible for a day


@dataclass(frozen=True)
class Identity:
    """What a controller's row says about it."""

    workers: int  # reconcile workers
    jobs: Mapping[str, int] = field(default_factory=dict)  # job workers by job kind
    role: str = "serve"  # or "worker" (`p38 worker`)
    id: uuid.UUID = field(default_factory=uuid.uuid4)
    host: str = field(default_factory=socket.gethostname)
    pid: int = field(default_factory=os.getpid)
    version: str = field(default_factory=lambda: package_version("project38"))


@contextlib.asynccontextmanager
async def heartbeat(store: Store, me: Identity, *,
                    every: float = BEAT_SECONDS) -> AsyncIterator[None]:
    """Beat for the duration of the block; remove the row at its end."""
    failing = False

    async def beat() -> None:
        nonlocal failing
        try:
            await store.execute("controller_beat", me.id, me.host, me.pid, me.version,
                                me.workers, me.role, dict(me.jobs))
            await store.execute("controllers_prune", PRUNE_AFTER_SECONDS)
        except Exception as exc:
            if not failing:
                log.warning("heartbeat_failed", error=str(exc),
                            meaning="p38 status may show this controller as gone until the "
                                    "database answers again")
            failing = True
            return
        if failing:
            log.info("heartbeat_resumed")
        failing = False

    async def beating() -> None:
        while True:
            await asyncio.sleep(every)
            await beat()

    await beat()
    async with running(beating, "heartbeat"):
        yield
    with contextlib.suppress(Exception):  # a database already gone: the row ages out
        await store.execute("controller_gone", me.id)
