"""An HTTP client for a project38 controller's own API and webhook routes, for the `p38`
commands that work against a remote controller (`--server URL` / `P38_SERVER`).

`get(path, params)` reads `/api/...` with `P38_API_TOKEN` as `Authorization: Bearer` when one
is given, retrying a read briefly when the connection fails; `post(path, body, headers)` sends
one request once (a webhook: never repeated here). Errors are `ApiError` (the server's answer:
status and its reason) or `Unreachable` (no answer), whose text never holds the token. No
command logic, no printing.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlsplit

import httpx

TIMEOUT = httpx.Timeout(15.0, connect=5.0)
READ_TRIES = 3


class ApiError(Exception):
    """The controller answered with an error: its status and reason."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"{status}: {reason}")
        self.status = status
        self.reason = reason


class Unreachable(Exception):
    """The controller could not be reached (refused, timed out, not HTTP)."""


def check_server_url(url: str) -> str | None:
    """Why `url` cannot be a controller's base URL, or None when it can."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "must be an http:// or https:// URL with a host, e.g. http://127.0.0.1:8080"
    if parts.query or parts.fragment or parts.username or parts.password:
        return "must be a base URL without a query, a fragment or credentials " \
               "(the token goes in P38_API_TOKEN)"
    try:
        parts.port  # noqa: B018 (raises on a port out of range)
    except ValueError:
        return "has a port that is not a number from 0 to 65535"
    return None


def key_path(key: str) -> str:
    """A key as one path segment below /api/objects/ (its `#`, `?` and `%` encoded)."""
    return quote(key, safe=":/@")


class ControllerApi:
    """One controller at `base_url`; use as `async with ControllerApi(url, token) as api`."""

    def __init__(self, base_url: str, token: str | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        headers = {"Accept": "application/json", "User-Agent": "p38-cli"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._client = httpx.AsyncClient(base_url=self.base_url, headers=headers,
                                         timeout=TIMEOUT, follow_redirects=False)

    async def __aenter__(self) -> ControllerApi:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._client.aclose()

    async def get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        """The JSON answer of a GET; ApiError for an error status."""
        wanted = {k: str(v) for k, v in (params or {}).items() if v is not None}
        last: Exception | None = None
        for _ in range(READ_TRIES):
            try:
                response = await self._client.get(path, params=wanted)
                break
            except httpx.TransportError as exc:  # a read may be asked again
                last = exc
        else:
            raise Unreachable(self._why(last)) from None
        return self._json(response)

    async def post(self, path: str, body: bytes,
                   headers: dict[str, str]) -> tuple[int, Any]:
        """Send once; (status, the answer as JSON, or its text when it is not JSON)."""
        try:
            response = await self._client.post(path, content=body, headers=headers)
        except httpx.TransportError as exc:
            raise Unreachable(self._why(exc)) from None
        try:
            return response.status_code, response.json()
        except ValueError:
            return response.status_code, response.text

    def _json(self, response: httpx.Response) -> Any:
        try:
            answer = response.json()
        except ValueError:
            answer = None
        if response.status_code >= 400:
            reason = answer.get("reason") if isinstance(answer, dict) else None
            raise ApiError(response.status_code,
                           str(reason or response.reason_phrase or "no reason given"))
        if answer is None:
            raise Unreachable(f"{self.base_url} answered {response.status_code} without JSON "
                              "(is it a project38 controller?)")
        return answer

    def _why(self, exc: Exception | None) -> str:
        kind = type(exc).__name__ if exc is not None else "no answer"
        detail = str(exc) if exc is not None and str(exc) else ""
        return f"cannot reach the controller at {self.base_url}: {kind}" + \
            (f" ({detail})" if detail else "")
