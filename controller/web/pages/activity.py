"""The overview chart's counts, kept fresh in the background: counting an hour of deliveries
and reconciles on a busy store takes tens of milliseconds (60 ms with 170,000 rows in the
hour, bench/pages.py), too much for every page view. Each serving process recounts every
`EVERY_SECONDS` and the page draws what was counted last, saying when; the first view after a
start counts once itself. Reads only.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import structlog
from aiohttp import web

from controller.store import Store
from controller.tasks import running
from controller.web.keys import STORE

log = structlog.get_logger("p38.pages")
EVERY_SECONDS = 20.0


@dataclass
class Activity:
    rows: Sequence[Mapping[str, Any]] = ()
    counted_at: datetime | None = None
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def count(self, store: Store) -> None:
        async with self._lock:
            now = await store.fetchval("clock_now")
            self.rows = [dict(r) for r in await store.fetch("page_activity")]
            self.counted_at = now

    async def current(self, store: Store) -> tuple[Sequence[Mapping[str, Any]], datetime | None]:
        if self.counted_at is None:
            await self.count(store)
        return self.rows, self.counted_at


ACTIVITY = web.AppKey("activity", Activity)


async def keep_counting(app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx: the background recount while the app serves."""
    activity = app[ACTIVITY]

    async def recount() -> None:
        while True:
            await asyncio.sleep(EVERY_SECONDS)
            with contextlib.suppress(Exception):  # the database away: the next round tries
                await activity.count(app[STORE])

    async with running(recount, "page-activity"):
        yield
