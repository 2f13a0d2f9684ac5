"""GitHub App client: App JWT, installation tokens, REST calls with retries and rate limits.

Outbound I/O only. Every call is a real GitHub REST operation with `Accept:
application/vnd.github+json` and `X-GitHub-Api-Version`. Transient failures (5xx, connection
errors, timeouts) are retried with exponential backoff (tenacity); rate limits are waited out,
never failed: `Retry-After`, `x-ratelimit-remaining: 0` until `x-ratelimit-reset`, and
secondary limits (a minute when GitHub gives no hint). The clock and the sleep are injectable
so tests run instantly and check the waits.
"""

from __future__ import annotations

import asyncio
import base64
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

from controller.errors import P38Error

log = structlog.get_logger("p38.github")

API_VERSION = "2022-11-28"
ACCEPT = "application/vnd.github+json"
JWT_BACKDATE_SECONDS = 60   # GitHub's advice against clock drift
JWT_LIFETIME_SECONDS = 540  # under GitHub's 10-minute maximum, counting the backdating
TOKEN_REFRESH_MARGIN = 300  # installation tokens are replaced 5 minutes before they expire
SECONDARY_LIMIT_WAIT = 60.0  # GitHub: wait at least a minute when no header says how long


class GitHubError(P38Error):
    """GitHub answered with an error that retrying will not fix."""

    def __init__(self, status: int, method: str, path: str, message: str) -> None:
        super().__init__(f"GitHub {method} {path}: {status} {message}")
        self.status = status


class _Transient(Exception):
    def __init__(self, reason: str, wait: float | None = None) -> None:
        super().__init__(reason)
        self.wait = wait  # seconds GitHub asked for (rate limits), else backoff decides


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


class GitHubApp:
    def __init__(self, *, app_id: str, private_key: str | Callable[[], str],
                 http: httpx.AsyncClient,
                 base_url: str = "https://api.github.com",
                 clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                 max_attempts: int = 6, max_wait: float = 900.0) -> None:
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
        self._max_wait = max_wait
        self._tokens: dict[int, _Token] = {}
        self._token_locks: dict[int, asyncio.Lock] = {}

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
        token = await self.installation_token(installation_id)
        return await self._send(method, path, auth=f"token {token}", json=json, params=params)

    async def _send(self, method: str, path: str, *, auth: str,
                    json: Mapping[str, Any] | None = None,
                    params: Mapping[str, Any] | None = None) -> Any:
        headers = {"Accept": ACCEPT, "X-GitHub-Api-Version": API_VERSION,
                   "Authorization": auth, "User-Agent": "project38"}
        waited = 0.0

        def wait(state: RetryCallState) -> float:
            nonlocal waited
            exc = state.outcome.exception() if state.outcome else None
            asked = exc.wait if isinstance(exc, _Transient) else None
            delay = asked if asked is not None else min(30.0, 0.5 * 2 ** state.attempt_number)
            if waited + delay > self._max_wait:
                raise GitHubError(0, method, path, f"gave up after waiting {waited:.0f}s "
                                                   f"({exc})")
            waited += delay
            log.warning("github_retry", method=method, path=path, wait=delay, reason=str(exc))
            return delay

        retrying = AsyncRetrying(
            retry=retry_if_exception(lambda e: isinstance(e, _Transient)),
            stop=stop_after_attempt(self._max_attempts), wait=wait, sleep=self._sleep,
            reraise=True)
        try:
            async for attempt in retrying:
                with attempt:
                    return await self._once(method, path, headers, json, params)
        except _Transient as exc:
            raise GitHubError(0, method, path, f"still failing after {self._max_attempts} "
                                               f"attempts: {exc}") from exc
        raise AssertionError("unreachable")  # pragma: no cover

    async def _once(self, method: str, path: str, headers: Mapping[str, str],
                    json: Mapping[str, Any] | None, params: Mapping[str, Any] | None) -> Any:
        try:
            response = await self._http.request(method, self.base_url + path, headers=headers,
                                                json=json, params=params, timeout=30.0)
        except (httpx.TransportError, httpx.TimeoutException) as exc:
            raise _Transient(f"{type(exc).__name__}: {exc}") from exc
        if response.status_code >= 500:
            raise _Transient(f"{response.status_code} from GitHub")
        if response.status_code in (403, 429):
            limited = self._rate_limit_wait(response)
            if limited is not None:
                raise _Transient(f"rate limited ({response.status_code})", wait=limited)
        if response.status_code >= 400:
            try:
                message = response.json().get("message", response.text)
            except ValueError:
                message = response.text
            raise GitHubError(response.status_code, response.request.method, path, message)
        if response.status_code == 204 or not response.content:
            return None
        return response.json()

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

    # --- operations (GitHub REST, api.github.com 2022-11-28) -------------------------------

    async def repository(self, repo: str, *, installation_id: int) -> dict[str, Any]:
        """GET /repos/{owner}/{repo}"""
        result: dict[str, Any] = await self.call("GET", f"/repos/{repo}",
                                                 installation_id=installation_id)
        return result

    async def branch_head(self, repo: str, branch: str, *, installation_id: int) -> str:
        """GET /repos/{owner}/{repo}/branches/{branch} -> the head commit's SHA."""
        body = await self.call("GET", f"/repos/{repo}/branches/{branch}",
                               installation_id=installation_id)
        return str(body["commit"]["sha"])

    async def branch_revision(self, repo: str, branch: str, *,
                              installation_id: int) -> tuple[str, str]:
        """GET /repos/{owner}/{repo}/branches/{branch} -> (head commit SHA, its tree SHA)."""
        body = await self.call("GET", f"/repos/{repo}/branches/{branch}",
                               installation_id=installation_id)
        return str(body["commit"]["sha"]), str(body["commit"]["commit"]["tree"]["sha"])

    async def commit_tree(self, repo: str, commit_sha: str, *, installation_id: int) -> str:
        """GET /repos/{owner}/{repo}/git/commits/{commit_sha} -> the commit's tree SHA."""
        body = await self.call("GET", f"/repos/{repo}/git/commits/{commit_sha}",
                               installation_id=installation_id)
        return str(body["tree"]["sha"])

    async def pull_files(self, repo: str, pull_number: int, *,
                         installation_id: int) -> list[dict[str, Any]]:
        """GET /repos/{owner}/{repo}/pulls/{pull_number}/files, every page (GitHub lists at
        most 3,000 files)."""
        files: list[dict[str, Any]] = []
        for page in range(1, 31):
            batch = await self.call("GET", f"/repos/{repo}/pulls/{pull_number}/files",
                                    installation_id=installation_id,
                                    params={"per_page": "100", "page": str(page)})
            files.extend(batch)
            if len(batch) < 100:
                break
        return files

    async def tree(self, repo: str, tree_sha: str, *, installation_id: int,
                   recursive: bool = True) -> dict[str, Any]:
        """GET /repos/{owner}/{repo}/git/trees/{tree_sha}[?recursive=1]"""
        result: dict[str, Any] = await self.call(
            "GET", f"/repos/{repo}/git/trees/{tree_sha}", installation_id=installation_id,
            params={"recursive": "1"} if recursive else None)
        return result

    async def blob(self, repo: str, file_sha: str, *, installation_id: int) -> bytes:
        """GET /repos/{owner}/{repo}/git/blobs/{file_sha} -> the decoded content."""
        body = await self.call("GET", f"/repos/{repo}/git/blobs/{file_sha}",
                               installation_id=installation_id)
        if body.get("encoding") == "base64":
            return base64.b64decode(body["content"])
        return str(body["content"]).encode()

    async def create_check_run(self, repo: str, *, installation_id: int, name: str,
                               head_sha: str, **fields: Any) -> dict[str, Any]:
        """POST /repos/{owner}/{repo}/check-runs (required: name, head_sha)"""
        result: dict[str, Any] = await self.call(
            "POST", f"/repos/{repo}/check-runs", installation_id=installation_id,
            json={"name": name, "head_sha": head_sha, **fields})
        return result

    async def update_check_run(self, repo: str, check_run_id: int, *, installation_id: int,
                               **fields: Any) -> dict[str, Any]:
        """PATCH /repos/{owner}/{repo}/check-runs/{check_run_id}"""
        result: dict[str, Any] = await self.call(
            "PATCH", f"/repos/{repo}/check-runs/{check_run_id}",
            installation_id=installation_id, json=fields)
        return result

    async def open_issues(self, repo: str, *, installation_id: int,
                          labels: str | None = None,
                          max_pages: int = 10) -> list[dict[str, Any]]:
        """GET /repos/{owner}/{repo}/issues?state=open[&labels=...], up to `max_pages` pages
        of 100 (pull requests are listed too, as GitHub does)."""
        found: list[dict[str, Any]] = []
        for page in range(1, max_pages + 1):
            params = {"state": "open", "per_page": "100", "page": str(page),
                      **({"labels": labels} if labels else {})}
            batch = await self.call("GET", f"/repos/{repo}/issues",
                                    installation_id=installation_id, params=params)
            found.extend(batch)
            if len(batch) < 100:
                break
        return found

    async def create_issue(self, repo: str, *, installation_id: int, title: str,
                           **fields: Any) -> dict[str, Any]:
        """POST /repos/{owner}/{repo}/issues (required: title)"""
        result: dict[str, Any] = await self.call(
            "POST", f"/repos/{repo}/issues", installation_id=installation_id,
            json={"title": title, **fields})
        return result

    async def update_issue(self, repo: str, issue_number: int, *, installation_id: int,
                           **fields: Any) -> dict[str, Any]:
        """PATCH /repos/{owner}/{repo}/issues/{issue_number}"""
        result: dict[str, Any] = await self.call(
            "PATCH", f"/repos/{repo}/issues/{issue_number}", installation_id=installation_id,
            json=fields)
        return result

    async def create_issue_comment(self, repo: str, issue_number: int, *, installation_id: int,
                                   body: str) -> dict[str, Any]:
        """POST /repos/{owner}/{repo}/issues/{issue_number}/comments (required: body)"""
        result: dict[str, Any] = await self.call(
            "POST", f"/repos/{repo}/issues/{issue_number}/comments",
            installation_id=installation_id, json={"body": body})
        return result
