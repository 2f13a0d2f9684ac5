"""The requests being handled now, and the shutdown's deadline, so a stop lets them end.

aiohttp's own shutdown stops reading from every connection at once, so a webhook whose body is
still arriving would never be answered; `serving` first stops listening and tells the workers
to stop claiming, then waits here for the requests in flight, then shuts aiohttp down; the
reconciles still running get what is left of the same grace period. Single event loop: no
lock. No I/O.
"""

from __future__ import annotations

import asyncio


class InFlight:
    def __init__(self) -> None:
        self.count = 0
        self._idle = asyncio.Event()
        self._idle.set()

    def enter(self) -> None:
        """A request began (pair with `leave`, in a `finally`)."""
        self.count += 1
        if self.count == 1:
            self._idle.clear()

    def leave(self) -> None:
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


class Shutdown:
    """When the process was told to stop, and by when everything in flight (requests and
    reconciles alike) must be done: one grace period for both, not one each."""

    def __init__(self) -> None:
        self.requested = asyncio.Event()
        self._deadline: float | None = None

    def begin(self, grace: float) -> None:
        self._deadline = asyncio.get_running_loop().time() + grace
        self.requested.set()

    def remaining(self, grace: float) -> float:
        """Seconds left of the grace period (all of it when no signal started the stop)."""
        if self._deadline is None:
            return grace
        return max(0.0, self._deadline - asyncio.get_running_loop().time())
