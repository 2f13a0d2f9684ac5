"""The requests being handled now, so a shutdown can let them end before it closes connections.

aiohttp's own shutdown stops reading from every connection at once, so a webhook whose body is
still arriving would never be answered; `serving` first stops listening, then waits here (up to
the grace period) for the requests in flight, then shuts aiohttp down. Single event loop: no
lock. No I/O.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator


class InFlight:
    def __init__(self) -> None:
        self.count = 0
        self._idle = asyncio.Event()
        self._idle.set()

    @contextlib.contextmanager
    def request(self) -> Iterator[None]:
        self.count += 1
        self._idle.clear()
        try:
            yield
        finally:
            self.count -= 1
            if not self.count:
                self._idle.set()

    async def drained(self, timeout: float) -> bool:
        """Whether every request in flight ended within `timeout` seconds."""
        try:
            async with asyncio.timeout(timeout):
                await self._idle.wait()
        except TimeoutError:
            return False
        return True
