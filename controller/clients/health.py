"""The Service health probe: one GET of a `healthCheck.url`, following redirects and verifying
TLS as a browser would, with a short per-try timeout; 2xx is healthy. What it answers is only
healthy or not, the status code or the error's kind (never the body), so a URL pointed at
something private tells its author nothing more. Must not decide anything."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping
from typing import Any

import httpx

TRY_SECONDS = 5.0


class HealthProbe:
    def __init__(self, client: httpx.AsyncClient) -> None:
        self._client = client

    @classmethod
    @contextlib.asynccontextmanager
    async def open(cls, *, transport: httpx.AsyncBaseTransport | None = None
                   ) -> AsyncIterator[HealthProbe]:
        async with httpx.AsyncClient(timeout=TRY_SECONDS, follow_redirects=True,
                                     max_redirects=5, transport=transport,
                                     headers={"User-Agent": "project38 health check"}
                                     ) as client:
            yield cls(client)

    async def probe(self, url: str) -> Mapping[str, Any]:
        try:
            response = await self._client.get(url)
        except httpx.HTTPError as exc:
            return {"healthy": False, "error": type(exc).__name__}
        return {"healthy": 200 <= response.status_code < 300, "status": response.status_code}
