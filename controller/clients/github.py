"""GitHub App client: App JWT, installation tokens, REST calls with retries and rate limits.

Outbound I/O only. Every call is a real GitHub REST operation with `Accept:
application/vnd.github+json` and `X-GitHub-Api-Version`. The client never holds a reconcile for
long: transient failures (5xx, 408, connection errors, timeouts) are retried a few times within
seconds (tenacity), then raised as `GitHubUnavailable` for the queue's backoff; a rate limit
(`Retry-After`, `x-ratelimit-remaining: 0` until `x-ratelimit-reset`, a secondary limit: a
minute when GitHub gives no hint) is slept out only when it ends within `max_sleep` seconds,
else raised as `RateLimited` (a `Waiting`: the key comes back when the limit resets). Any other
4xx is `GitHubError`, terminal, with GitHub's message; a 401 on an installation token gets a
new token once. The clock and the sleep are injectable so tests run instantly.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jwt
import structlog
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt

from controller.clients.github_errors import GitHubError, GitHubUnavailable
from controller.clients.github_pulls import PullOperations
from controller.reconcile.errors import RateLimited

log = structlog.get_logger("p38.github")

API_VERSION = "2022-11-28"
ACCEPT = "application/vnd.github+json"
JWT_BACKDATE_SECONDS = 60   # GitHub's advice against clock drift
JWT_LIFETIME_SECONDS = 540  # under GitHub's 10-minute maximum, counting the backdating
TOKEN_REFRESH_MARGIN = 300  # installation tokens are replaced 5 minutes before they expire
SECONDARY_LIMIT_WAIT = 60.0  # GitHub: wait at least a minute when no header says how long
MAX_SLEEP = 10.0  # longer rate-limit waits become a Waiting requeue, never a held worker
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Failures that certainly happened before the request reached GitHub: safe to send again.
NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


class _Transient(Exception):
    def __init__(self, reason: str, wait: float | None = None) -> None:
        super().__init__(reason)
        self.wait = wait  # seconds GitHub asked for (rate limits), else backoff decides


class _StaleToken(Exception):
    """401 on an installation token: GitHub revoked or expired it before we thought."""


def load_private_key(value: str) -> str:
    """A PEM, a PEM with escaped newlines (as env vars often carry it), or a path to one."""
    text = value.strip()
    if "-----BEGIN" not in text:
        text = Path(text).expanduser().read_text()
    return text.replace("\\n", "\n").strip() + "\n"


@dataclass
class _Token:
    value: str
    expires_at: float


def _expiry(iso: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


class GitHubApp(PullOperations):
    def __init__(self, *, app_id: str, private_key: str | Callable[[], str],
                 http: httpx.AsyncClient,
                 base_url: str = "https://api.github.com",
                 clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                 max_attempts: int = 4, max_sleep: float = MAX_SLEEP) -> None:
        self.app_id = app_id
        # A callable is asked at every signature: a key rotated in Secret Manager is used as
        # soon as it is refreshed.
        self._key_source = private_key if callable(private_key) else (lambda: private_key)
        self._key_raw = ""
        self._key = ""
        self._signing_key()
        self._http = http
        self.base_url = base_url.rstrip("/")
        self._clock = clock
        self._sleep = sleep
        self._max_attempts = max_attempts
        self._max_sleep = max_sleep
        self._tokens: dict[int, _Token] = {}
        self._token_locks: dict[int, asyncio.Lock] = {}
        self._limited_until: dict[int, float] = {}  # installation -> when its limit resets

    @classmethod
    @contextlib.asynccontextmanager
    async def open(cls, *, app_id: str, private_key: str | Callable[[], str], base_url: str,
                   transport: Any = None,
                   sleep: Callable[[float], Awaitable[None]] | None = None
                   ) -> AsyncIterator[GitHubApp]:
        """A client with its own connection pool, closed on exit. `transport` (an
        httpx.AsyncBaseTransport) and `sleep` are for tests."""
        async with httpx.AsyncClient(transport=transport) as http:
            yield cls(app_id=app_id, private_key=private_key, http=http, base_url=base_url,
                      sleep=sleep or asyncio.sleep)

    # --- authentication -------------------------------------------------------------------

    def app_jwt(self) -> str:
        now = int(self._clock())
        claims = {"iat": now - JWT_BACKDATE_SECONDS, "exp": now + JWT_LIFETIME_SECONDS,
                  "iss": self.app_id}
        return jwt.encode(claims, self._signing_key(), algorithm="RS256")

    def _signing_key(self) -> str:
        raw = self._key_source()
        if raw != self._key_raw:
            self._key, self._key_raw = load_private_key(raw), raw
        return self._key

    async def installation_token(self, installation_id: int) -> str:
        """A token for the installation, reused until 5 minutes before it expires."""
        lock = self._token_locks.setdefault(installation_id, asyncio.Lock())
        async with lock:
            token = self._tokens.get(installation_id)
            if token is None or token.expires_at - TOKEN_REFRESH_MARGIN <= self._clock():
                body = await self._send("POST", f"/app/installations/{installation_id}"
                                                "/access_tokens", auth=f"Bearer {self.app_jwt()}")
                token = _Token(body["token"], _expiry(body["expires_at"]))
                self._tokens[installation_id] = token
                log.info("installation_token", installation=installation_id,
                         expires_at=body["expires_at"])
            return token.value

    # --- transport ------------------------------------------------------------------------

    async def call(self, method: str, path: str, *, installation_id: int,
                   json: Mapping[str, Any] | None = None,
                   params: Mapping[str, Any] | None = None) -> Any:
        """One REST call as the installation. While a rate limit of the installation is in
        force (GitHub said so earlier), no call is made: `RateLimited` at once, so no key of
        that installation spends requests GitHub would refuse."""
        until = self._limited_until.get(installation_id, 0.0)
        if until > self._clock():
            raise RateLimited(until - self._clock(), f"GitHub rate limit of installation "
                                                     f"{installation_id} until it resets "
                                                     f"(not called: {method} {path})")
        token = await self.installation_token(installation_id)
        try:
            return await self._send(method, path, auth=f"token {token}", json=json,
                                    params=params)
        except RateLimited as exc:
            self._limited_until[installation_id] = self._clock() + exc.requeue_after
            raise
        except _StaleToken:
            self._tokens.pop(installation_id, None)
            token = await self.installation_token(installation_id)
            log.info("installation_token_renewed", installation=installation_id,
                     reason="401 on the cached token")
            return await self._send(method, path, auth=f"token {token}", json=json,
                                    params=params, stale_ok=False)

    async def _send(self, method: str, path: str, *, auth: str,
                    json: Mapping[str, Any] | None = None,
                    params: Mapping[str, Any] | None = None, stale_ok: bool = True,
                    with_next: bool = False) -> Any:
        """The answer's JSON; with `with_next`, (JSON, the `next` link's URL or None)."""
        headers = {"Accept": ACCEPT, "X-GitHub-Api-Version": API_VERSION,
                   "Authorization": auth, "User-Agent": "project38"}

        def wait(state: RetryCallState) -> float:
            exc = state.outcome.exception() if state.outcome else None
            asked = exc.wait if isinstance(exc, _Transient) else None
            if asked is not None and asked > self._max_sleep:
                raise RateLimited(asked, f"GitHub rate limit on {method} {path}: "
                                         f"{exc}; resets in {asked:.0f}s")
            delay = asked if asked is not None else min(4.0, 0.5 * 2 ** (state.attempt_number
                                                                          - 1))
            log.warning("github_retry", method=method, path=path, wait=delay, reason=str(exc))
            return delay

        retrying = AsyncRetrying(
            retry=retry_if_exception(lambda e: isinstance(e, _Transient)),
            stop=stop_after_attempt(self._max_attempts), wait=wait, sleep=self._sleep,
            reraise=True)
        try:
            async for attempt in retrying:
                with attempt:
                    return await self._once(method, path, headers, json, params,
                                            stale_ok=stale_ok and auth.startswith("token "),
                                            with_next=with_next)
        except _Transient as exc:
            if exc.wait is not None:  # still limited after the waits we could afford
                raise RateLimited(max(exc.wait, 1.0), f"GitHub rate limit on {method} "
                                                      f"{path}: {exc}") from exc
            raise GitHubUnavailable(f"GitHub {method} {path}: still failing after "
                                    f"{self._max_attempts} attempts: {exc}") from exc
        raise AssertionError("unreachable")  # pragma: no cover

    async def _once(self, method: str, path: str, headers: Mapping[str, str],
                    json: Mapping[str, Any] | None, params: Mapping[str, Any] | None, *,
                    stale_ok: bool, with_next: bool = False) -> Any:
        """One request. A write (POST, PATCH, PUT, DELETE) whose answer was lost after it may
        have reached GitHub (a 5xx, a timeout or a dropped connection after sending) is never
        sent again here: `GitHubUnavailable` goes back to the action, whose next attempt finds
        before it creates. Only what certainly did not arrive is retried (no connection, a
        rate limit); reads retry freely. The installation token is the exception: asking for
        a second one is harmless."""
        resend = method in SAFE_METHODS or path.endswith("/access_tokens")
        try:
            response = await self._http.request(method, self.base_url + path, headers=headers,
                                                json=json, params=params, timeout=30.0)
        except NOT_SENT as exc:
            raise _Transient(f"{type(exc).__name__}: {exc}") from exc
        except (httpx.TransportError, httpx.TimeoutException) as exc:
            if not resend:
                raise GitHubUnavailable(f"GitHub {method} {path}: {type(exc).__name__} after "
                                        "sending; not sent again (the action looks first)"
                                        ) from exc
            raise _Transient(f"{type(exc).__name__}: {exc}") from exc
        if response.status_code >= 500 or response.status_code == 408:
            if not resend:
                raise GitHubUnavailable(f"GitHub {method} {path}: {response.status_code}; "
                                        "not sent again (the action looks first)")
            raise _Transient(f"{response.status_code} from GitHub")
        if response.status_code in (403, 429):
            limited = self._rate_limit_wait(response)
            if limited is not None:
                raise _Transient(f"rate limited ({response.status_code})", wait=limited)
        if response.status_code == 401 and stale_ok:
            raise _StaleToken()
        if response.status_code >= 400:
            try:
                message = response.json().get("message", response.text)
            except ValueError:
                message = response.text
            raise GitHubError(response.status_code, response.request.method, path, message)
        body = None if response.status_code == 204 or not response.content else response.json()
        if with_next:
            link = response.links.get("next", {}).get("url")
            return body, link
        return body

    def _rate_limit_wait(self, response: httpx.Response) -> float | None:
        """Seconds to wait when the response is a rate limit, else None (a real 403)."""
        retry_after = response.headers.get("retry-after")
        if retry_after is not None:
            try:
                return max(0.0, float(retry_after))
            except ValueError:
                return SECONDARY_LIMIT_WAIT
        if response.headers.get("x-ratelimit-remaining") == "0":
            reset = float(response.headers.get("x-ratelimit-reset", "0"))
            return max(1.0, reset - self._clock() + 1)
        try:
            message = str(response.json().get("message", ""))
        except ValueError:
            message = ""
        if response.status_code == 429 or "rate limit" in message.lower():
            return SECONDARY_LIMIT_WAIT
        return None

    # --- the App's own operations (as the App: JWT); the installation's are inherited ----

    async def app_hook_deliveries(self, *, max_pages: int = 10) -> list[dict[str, Any]]:
        """GET /app/hook/deliveries (as the App: JWT), newest first, following the `next`
        link's cursor for at most `max_pages` pages of 100 (hook-delivery-item objects)."""
        found: list[dict[str, Any]] = []
        params: dict[str, str] = {"per_page": "100"}
        for _ in range(max_pages):
            page, next_url = await self._send("GET", "/app/hook/deliveries",
                                              auth=f"Bearer {self.app_jwt()}", params=params,
                                              with_next=True)
            found.extend(page or [])
            cursor = dict(httpx.URL(next_url).params).get("cursor") if next_url else None
            if not cursor or not page:
                break
            params = {"per_page": "100", "cursor": cursor}
        return found

    async def redeliver(self, delivery_id: int) -> None:
        """POST /app/hook/deliveries/{delivery_id}/attempts (as the App: JWT): GitHub sends
        that delivery again (202)."""
        await self._send("POST", f"/app/hook/deliveries/{delivery_id}/attempts",
                         auth=f"Bearer {self.app_jwt()}")
