"""One background task for the duration of a block: started on entry, cancelled and awaited on
exit. Shared by the LISTEN connection and the app's periodic tasks. No I/O of its own."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any


@contextlib.asynccontextmanager
async def running(work: Callable[[], Coroutine[Any, Any, None]],
                  name: str) -> AsyncIterator[None]:
    task: asyncio.Task[None] = asyncio.create_task(work(), name=name)
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
