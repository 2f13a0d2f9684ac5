"""A lean HTTP/1.1 keep-alive load generator (asyncio streams), cheap enough per request that
the server, not the client, is what a benchmark on a 2-core machine measures."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Result:
    latencies: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    errors: int = 0

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies)
        if not ordered:
            return float("nan")
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    if length:
        await reader.readexactly(length)
    return status


async def run(host: str, port: int, make_request: Callable[[int], bytes], *, connections: int,
              warmup: float, duration: float,
              on_window: Callable[[str], None] | None = None) -> Result:
    """Closed loop: each connection sends a request as soon as the previous one is answered.
    Only requests started after `warmup` and answered before the end are counted."""
    result = Result()
    counter = iter(range(10**9))
    loop = asyncio.get_running_loop()
    start = loop.time() + warmup
    stop = start + duration

    async def connection() -> None:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while loop.time() < stop:
                request = make_request(next(counter))
                t0 = time.perf_counter()
                started = loop.time()
                writer.write(request)
                try:
                    status = await _read_response(reader)
                except (asyncio.IncompleteReadError, ConnectionError):
                    result.errors += 1
                    return
                if start <= started and loop.time() <= stop:
                    result.latencies.append(time.perf_counter() - t0)
                    result.statuses[status] = result.statuses.get(status, 0) + 1
        finally:
            writer.close()

    async def mark_window() -> None:
        if on_window is None:
            return
        await asyncio.sleep(max(0.0, start - loop.time()))
        on_window("start")
        await asyncio.sleep(max(0.0, stop - loop.time()))
        on_window("stop")

    await asyncio.gather(mark_window(), *[connection() for _ in range(connections)])
    return result
