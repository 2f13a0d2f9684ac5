"""The outbound side of an agent's `http`, `notify` and `n8n` tools: their action parameters and
the httpx client that performs them; also the `github` tool's parameters (the GitHub provider
performs those with the App's client).

`http` reaches public http(s) URLs only, decided when it connects (`public_net`): a host that
is or resolves to a loopback, private, link-local, CGNAT, multicast or otherwise reserved
address (the controller's own API, a cloud metadata service, the database) is refused, no
redirect is followed, no proxy is used; answers are capped. `notify` posts JSON to a target of
the Policy's `notifications`, with `Authorization: Bearer $P38_NOTIFY_<TARGET>_TOKEN` when that
variable is set, sent again only when it certainly did not arrive (no connection, a 429): a
5xx or a timeout after sending may have delivered it, and a notification twice is a duplicate.
`n8n` posts once to a workflow of the Policy's `workflows` (Bearer `$P38_N8N_<WORKFLOW>_TOKEN`
when set). A token is sent only to the URL it was made for (`..._URL`, `bound_token`): a
Policy of another source naming the same target must not collect the operator's token. Those
two URLs are the operator's configuration, not the agent's choice, so they may be private (n8n
beside the controller). Decides nothing about grants or budgets (the caller did).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import AsyncIterator, Mapping
from typing import Any, ClassVar
from urllib.parse import urlsplit

import httpx

from controller.clients.public_net import PublicTransport, Resolver, system_resolver
from controller.reconcile.plan import Params

TIMEOUT = httpx.Timeout(10.0, connect=5.0)
MAX_ANSWER_BYTES = 256 * 1024
NOTIFY_ATTEMPTS = 3


class HttpCall(Params):
    action_kind: ClassVar[str] = "tool.http"
    needs: ClassVar[str | None] = "agents"
    method: str
    url: str
    headers: dict[str, str] = {}
    params: dict[str, str] = {}
    body: Any = None  # sent as JSON


class Notify(Params):
    action_kind: ClassVar[str] = "tool.notify"
    needs: ClassVar[str | None] = "agents"
    target: str
    url: str
    agent: str
    run_id: int
    text: str
    data: Any = None


class StartWorkflow(Params):
    """The `n8n` tool: start a workflow of the Policy's `workflows` (its Webhook node)."""

    action_kind: ClassVar[str] = "tool.n8n"
    needs: ClassVar[str | None] = "agents"
    workflow: str
    url: str
    agent: str
    run_id: int
    data: Any = None


class GitHubGet(Params):
    """The `github` tool: one read-only REST GET under the agent's own repository."""

    action_kind: ClassVar[str] = "tool.github"
    needs: ClassVar[str | None] = "github"
    repo: str
    installation_id: int
    path: str  # below /repos/{owner}/{repo}, checked by `repo_path`
    params: dict[str, str] = {}


SECRET_PATHS = ("/actions/secrets", "/actions/variables", "/actions/runners",
                "/dependabot/secrets", "/codespaces/secrets", "/environments", "/hooks",
                "/keys", "/installation", "/invitations", "/collaborators")


def repo_path(path: str) -> str:
    """`path` when it names something below a repository (`/pulls`, `/issues/3/comments`,
    `""` for the repository itself) that is not its secrets, variables, hooks, keys or
    people, else ValueError with the reason."""
    if path and (not path.startswith("/") or any(
            part in ("", ".", "..") for part in path[1:].split("/"))
            or any(c in path for c in "?#%\\") or not path.isprintable()
            or " " in path or not path.isascii()):
        raise ValueError(f"{path[:100]!r} is not a path below the repository (like "
                         "'/pulls' or '/issues/3/comments', no query: pass params)")
    lowered = path.lower()
    if any(lowered == p or lowered.startswith(p + "/") for p in SECRET_PATHS):
        raise ValueError(f"the github tool does not read {path[:100]!r}: secrets, variables, "
                         "hooks, keys and collaborators stay with GitHub")
    return path


class ToolRefusedUrl(ValueError):
    """The URL is not one an agent may reach."""


def http_url(url: str) -> str:
    """`url` when it is an http(s) URL with a host, else `ToolRefusedUrl` with the reason.
    (Which addresses it may reach is decided when connecting: `public_net`.)"""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ToolRefusedUrl(f"{url[:200]!r} is not an http(s) URL")
    return url


def bound_token(kind: str, name: str, url: str) -> str | None:
    """`P38_<KIND>_<NAME>_TOKEN` for a Policy target, only when the target's URL is the one the
    operator made it for, `P38_<KIND>_<NAME>_URL`; `ToolRefusedUrl` otherwise (never sent)."""
    base = f"P38_{kind}_{name.upper().replace('-', '_')}"
    token = os.environ.get(f"{base}_TOKEN")
    if not token:
        return None
    pinned = os.environ.get(f"{base}_URL")
    if not pinned:
        raise ToolRefusedUrl(f"{base}_TOKEN is set but {base}_URL is not: a token is sent "
                             "only to the URL it was made for")
    if pinned.rstrip("/") != url.rstrip("/"):
        raise ToolRefusedUrl(f"the Policy's {name!r} URL is not {base}_URL: its token is not "
                             "sent to another URL")
    return token


class ToolClient:
    """`public` carries the agents' own URLs (the `http` tool); `configured` the Policy's
    targets (`notify`, `n8n`)."""

    def __init__(self, public: httpx.AsyncClient, configured: httpx.AsyncClient) -> None:
        self._public = public
        self._client = configured

    @classmethod
    @contextlib.asynccontextmanager
    async def open(cls, *, resolver: Resolver = system_resolver) -> AsyncIterator[ToolClient]:
        async with httpx.AsyncClient(timeout=TIMEOUT, follow_redirects=False,
                                     transport=PublicTransport(resolver)) as public, \
                httpx.AsyncClient(timeout=TIMEOUT, follow_redirects=False) as configured:
            yield cls(public, configured)

    async def http(self, p: HttpCall) -> Mapping[str, Any]:
        request = self._public.build_request(
            p.method, http_url(p.url), headers=p.headers, params=p.params or None,
            json=p.body if p.method not in ("GET", "HEAD") else None)
        response = await self._public.send(request, stream=True)
        try:
            body = b""
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > MAX_ANSWER_BYTES:
                    body = body[:MAX_ANSWER_BYTES]
                    break
        finally:
            await response.aclose()
        text = body.decode(response.encoding or "utf-8", "replace")
        answer: dict[str, Any] = {"status": response.status_code, "text": text,
                                  "content_type": response.headers.get("content-type", "")}
        if "json" in answer["content_type"]:  # (read from `body`: the stream is closed)
            with contextlib.suppress(ValueError):
                answer["json"] = json.loads(body) if len(body) < MAX_ANSWER_BYTES else None
        return answer

    async def start_workflow(self, p: StartWorkflow) -> Mapping[str, Any]:
        """One POST (starting a workflow twice is not harmless, so no retry); the answer is
        what the workflow's Webhook node responds, capped."""
        token = bound_token("N8N", p.workflow, p.url)
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        body = {"agent": p.agent, "run": p.run_id, "workflow": p.workflow, "data": p.data}
        response = await self._client.post(http_url(p.url), json=body, headers=headers)
        if response.status_code >= 400:
            raise RuntimeError(f"n8n workflow {p.workflow} answered {response.status_code}")
        text = response.content[:MAX_ANSWER_BYTES].decode(response.encoding or "utf-8",
                                                           "replace")
        answer: dict[str, Any] = {"status": response.status_code, "text": text}
        if "json" in response.headers.get("content-type", "") and \
                len(response.content) < MAX_ANSWER_BYTES:
            with contextlib.suppress(ValueError):
                answer["json"] = response.json()
        return answer

    async def notify(self, p: Notify) -> Mapping[str, Any]:
        body = {"agent": p.agent, "run": p.run_id, "target": p.target, "text": p.text,
                "data": p.data}
        return await send_notification(self._client, p.target, p.url, body)

    async def event(self, target: str, url: str, body: Mapping[str, Any],
                    key: str) -> Mapping[str, Any]:
        """The controller's own notification (an outcome of a Service, say) to a Policy
        target, through the same sender as the agents' `notify`."""
        return await send_notification(self._client, target, url, body, key=key)


async def send_notification(client: httpx.AsyncClient, target: str, url: str,
                            body: Mapping[str, Any], *, key: str | None = None
                            ) -> Mapping[str, Any]:
    """POST `body` to a Policy notification target with its bound bearer token
    (`P38_NOTIFY_<TARGET>_TOKEN`, only to `P38_NOTIFY_<TARGET>_URL`). Sent again only when it
    certainly did not arrive (no connection, 429); a 5xx or a timeout after sending raises, and
    the action is retried from the top. `key` (an idempotency key) goes in the body (`id`) and
    in the `Idempotency-Key` header, so a receiver can drop a second copy."""
    headers = {}
    token = bound_token("NOTIFY", target, url)
    if token:
        headers["Authorization"] = f"Bearer {token}"
    if key is not None:
        headers["Idempotency-Key"] = key
        body = {"id": key, **body}
    error = ""
    for attempt in range(NOTIFY_ATTEMPTS):
        try:
            response = await client.post(http_url(url), json=body, headers=headers)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            error = f"{type(exc).__name__}: {exc}"  # not sent: safe to send again
        except httpx.TransportError as exc:  # may have arrived: never sent twice
            raise RuntimeError(f"notify {target}: {type(exc).__name__} after sending; "
                               "not sent again (it may have arrived)") from exc
        else:
            if response.status_code != 429:
                if response.status_code >= 500:
                    raise RuntimeError(f"notify {target}: {response.status_code}; not "
                                       "sent again (it may have arrived)")
                response.raise_for_status()
                return {"status": response.status_code, "target": target}
            error = f"429 from {target}"  # refused before acting: send again later
        if attempt + 1 < NOTIFY_ATTEMPTS:
            await asyncio.sleep(0.5 * 2 ** attempt)
    raise RuntimeError(f"notify {target} failed after {NOTIFY_ATTEMPTS} attempts: {error}")
