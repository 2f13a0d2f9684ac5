"""The Railway client: GraphQL documents to Railway's public API (`RAILWAY_API_URL`, Bearer
`RAILWAY_TOKEN`) over httpx, and the check that a document only reads.

`read_only(document)` parses it (graphql-core) and accepts exactly one `query` operation whose
root fields are on an allow-list (projects, services, environments, deployments, their status,
logs and metrics) and which selects, anywhere (fragments included), no field that returns
variables, tokens, secrets or credentials (`Environment.variables` holds a service's environment
in plain text, the controller's own secrets among them): an agent's `railway` tool can look at
what runs, never at what it is configured with. Mutations and subscriptions are refused: deploys
and rollbacks go through `Service` manifests. A response's
`errors` become `RailwayError` with Railway's messages; 5xx and dropped connections are
retried once for a query, never for a mutation whose answer was lost; a 429 is a firm wait
until Railway's reset. The operations the Service reconciler needs (a deployment, a service's
deployments, deploy a commit, roll back, redeploy) are in `railway_ops.py`. Must not decide
anything about agents or services.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any, ClassVar

import httpx
from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    parse,
)

from controller.reconcile.errors import RateLimited
from controller.reconcile.plan import Params

MAX_DOCUMENT_BYTES = 16 * 1024
ATTEMPTS = 2
READABLE_ROOTS = frozenset({
    "project", "projects", "service", "serviceInstance", "environment", "environments",
    "deployment", "deployments", "deploymentEvents", "deploymentLogs", "buildLogs",
    "environmentLogs", "httpLogs", "metrics", "domains", "regions", "platformStatus"})
SECRET_FIELD = re.compile(r"variable|token|secret|credential|password|sshkey|privatekey|apikey"
                          r"|decrypt", re.IGNORECASE)
# Fields below the allowed roots that carry configuration or people, not what runs: an
# environment's `config` (with `decryptVariables`, every service's variables), a deployment's
# `meta`, build and edge configuration, members and billing.
CONFIG_FIELDS = frozenset({"config", "meta", "nixpacksPlan", "railwayConfigFile", "edgeConfig",
                           "members", "email", "customer", "invoices", "billingEmail",
                           "sourceRepoConfig", "environmentPatch", "environmentPatches"})


class RailwayQuery(Params):
    """The `railway` tool: one read-only GraphQL query."""

    action_kind: ClassVar[str] = "tool.railway"
    needs: ClassVar[str | None] = "railway"
    query: str
    variables: dict[str, Any] = {}


class RailwayError(RuntimeError):
    """Railway answered with `errors` (or a 4xx): its messages."""


def read_only(document: str) -> str:
    """`document` when it is one GraphQL query, else ValueError with the reason."""
    if len(document.encode()) > MAX_DOCUMENT_BYTES:
        raise ValueError(f"a query is at most {MAX_DOCUMENT_BYTES} bytes")
    try:
        parsed = parse(document)
    except GraphQLError as exc:
        raise ValueError(f"not a GraphQL document: {exc.message}") from None
    operations = [d for d in parsed.definitions if isinstance(d, OperationDefinitionNode)]
    if len(operations) != 1:
        raise ValueError("send exactly one operation")
    if operations[0].operation is not OperationType.QUERY:
        raise ValueError(f"the railway tool only reads: a {operations[0].operation.value} is "
                         "refused (deploys and rollbacks go through Service manifests)")
    for name, arguments in _all_fields(parsed):
        if SECRET_FIELD.search(name) or name in CONFIG_FIELDS:
            raise ValueError(f"the railway tool does not read {name!r}: variables, tokens, "
                             "credentials and configuration stay with Railway")
        for argument in arguments:
            if SECRET_FIELD.search(argument):
                raise ValueError(f"the railway tool does not pass {argument!r} (to {name!r}): "
                                 "variables, tokens and credentials stay with Railway")
        if name.startswith("__") and name != "__typename":
            raise ValueError(f"the railway tool does not read {name!r} (introspection)")
    fragments = {d.name.value: d for d in parsed.definitions
                 if isinstance(d, FragmentDefinitionNode)}
    for root in _fields(operations[0].selection_set, fragments):
        if root not in READABLE_ROOTS | {"__typename"}:
            raise ValueError(f"the railway tool reads {', '.join(sorted(READABLE_ROOTS))}; "
                             f"{root!r} is not one of them")
    return document


def _fields(selections: SelectionSetNode, fragments: Mapping[str, FragmentDefinitionNode],
            seen: frozenset[str] = frozenset()) -> list[str]:
    """The field names selected at this level, through fragments."""
    names: list[str] = []
    for selection in selections.selections:
        if isinstance(selection, FieldNode):
            names.append(selection.name.value)
        elif isinstance(selection, InlineFragmentNode):
            names += _fields(selection.selection_set, fragments, seen)
        elif isinstance(selection, FragmentSpreadNode):
            name = selection.name.value
            if name in fragments and name not in seen:
                names += _fields(fragments[name].selection_set, fragments, seen | {name})
    return names


def _all_fields(document: DocumentNode) -> list[tuple[str, list[str]]]:
    """Every field the document selects, in every definition, with its arguments' names."""
    names: list[tuple[str, list[str]]] = []
    pending: list[SelectionSetNode] = [d.selection_set for d in document.definitions
                                       if isinstance(d, OperationDefinitionNode
                                                     | FragmentDefinitionNode)]
    while pending:
        for selection in pending.pop().selections:
            if isinstance(selection, FieldNode):
                names.append((selection.name.value,
                              [a.name.value for a in selection.arguments or ()]))
            if isinstance(selection, FieldNode | InlineFragmentNode) \
                    and selection.selection_set is not None:
                pending.append(selection.selection_set)
    return names


class RailwayClient:
    def __init__(self, client: httpx.AsyncClient, url: str, *,
                 clock: Callable[[], float] = time.time) -> None:
        self._client, self._url, self._clock = client, url, clock
        self._limited_until = 0.0

    @classmethod
    @contextlib.asynccontextmanager
    async def open(cls, *, token: str, url: str, kind: str = "account",
                   transport: httpx.AsyncBaseTransport | None = None
                   ) -> AsyncIterator[RailwayClient]:
        """`kind`: an account or team token goes as `Authorization: Bearer`, a project token as
        `Project-Access-Token` (RAILWAY_TOKEN_KIND)."""
        auth = {"Project-Access-Token": token} if kind == "project" else \
            {"Authorization": f"Bearer {token}"}
        headers = {**auth, "User-Agent": "project38"}
        async with httpx.AsyncClient(headers=headers, transport=transport,
                                     timeout=httpx.Timeout(20.0, connect=5.0)) as client:
            yield cls(client, url)

    async def execute(self, document: str, variables: Mapping[str, Any] | None = None, *,
                      changes: bool = False) -> Any:
        """The `data` of one document; `RailwayError` with the messages of its `errors`.
        A query is sent again after a 5xx or a dropped connection; a document that `changes`
        something (a mutation) only when it certainly did not arrive (no connection): its
        action is tried again from the top and looks first. A 429 is `RateLimited` until
        Railway's reset (no request is made meanwhile), never slept out here."""
        if self._limited_until > self._clock():
            raise RateLimited(self._limited_until - self._clock(),
                              "Railway's rate limit is in force (not called)")
        body = {"query": document, "variables": dict(variables or {})}
        for attempt in range(1, ATTEMPTS + 1):
            try:
                response = await self._client.post(self._url, json=body)
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
                if attempt == ATTEMPTS:
                    raise RailwayError(f"Railway unreachable: {type(exc).__name__}") from exc
            except httpx.TransportError as exc:
                if changes or attempt == ATTEMPTS:
                    raise RailwayError(f"Railway unreachable: {type(exc).__name__}") from exc
            else:
                if response.status_code == 429:
                    wait = _reset_in(response, self._clock())
                    self._limited_until = self._clock() + wait
                    raise RateLimited(wait, f"Railway rate limit: resets in {wait:.0f}s")
                if response.status_code < 500:
                    return _data(response)
                if changes or attempt == ATTEMPTS:
                    raise RailwayError(f"Railway answered {response.status_code}"
                                       + ("; not sent again (the action looks first)"
                                          if changes else ""))
            await asyncio.sleep(0.5)
        raise AssertionError("unreachable")  # pragma: no cover


def _reset_in(response: httpx.Response, now: float) -> float:
    """Seconds until Railway's limit resets: `Retry-After` (seconds), else
    `X-RateLimit-Reset` (epoch seconds), else a minute."""
    for header, absolute in (("retry-after", False), ("x-ratelimit-reset", True)):
        raw = response.headers.get(header)
        try:
            value = float(raw) if raw is not None else None
        except ValueError:
            value = None
        if value is not None:
            return max(1.0, min(3600.0, value - now if absolute else value))
    return 60.0


def _data(response: httpx.Response) -> Any:
    try:
        answer = response.json()
    except ValueError:
        raise RailwayError(f"Railway answered {response.status_code} without JSON") from None
    errors = answer.get("errors") if isinstance(answer, dict) else None
    if errors or response.status_code >= 400:
        messages = "; ".join(str(e.get("message", e)) for e in errors or [] if e) or \
            f"status {response.status_code}"
        raise RailwayError(f"Railway: {messages[:1000]}")
    return answer.get("data")
