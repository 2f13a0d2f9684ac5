"""A stateful fake of Railway's public GraphQL API, for httpx tests.

Every document is validated against Railway's real schema (the introspection result the
railwayapp/cli publishes, kept gzipped beside this file) and executed by graphql-core over the
fake's data, so a field Railway does not have is an error as Railway would return it
(`{"errors": [{"message": ...}]}`), and what is selected is exactly what comes back. A token
is required (`Authorization: Bearer`, or `Project-Access-Token` for a project token). Use
`httpx.AsyncClient(transport=fake.transport())`.
"""

from __future__ import annotations

import gzip
import itertools
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import httpx
from graphql import GraphQLSchema, build_client_schema, graphql_sync, parse, validate

SCHEMA = Path(__file__).with_name("railway_schema.json.gz")
EPOCH = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)  # the fake's deployments are made after it


@cache
def schema() -> GraphQLSchema:
    data = json.loads(gzip.decompress(SCHEMA.read_bytes()))["data"]
    for kind in data["__schema"]["types"]:  # graphql-core 3.3 refuses a deprecated id
        for f in kind.get("fields") or []:
            if kind["name"] == "Team" and f["name"] == "id":
                f["isDeprecated"], f["deprecationReason"] = False, None
    return build_client_schema(data)


def validation_errors(document: str) -> list[str]:
    return [e.message for e in validate(schema(), parse(document))]


@dataclass
class FakeRailway:
    """Deployments (newest first) are dicts with Railway's Deployment fields (`id`,
    `status`, `serviceId`, `environmentId`, `createdAt`, `canRollback`, `meta:
    {commitHash}`). The mutations act as Railway does: a deploy or a redeploy makes a new
    QUEUED deployment (and, once it succeeds, marks the service's previous SUCCESS one
    REMOVED), a rollback makes a new deployment of the rolled-back-to one's commit;
    `advance(id, status)` moves one forward as Railway's builders would. `fail_next(n,
    status)` answers the next n requests with that status (429 with a `Retry-After`, or a
    5xx), `lose_next(n)` carries the next n mutations out and answers 502."""

    token: str = "railway-fake-token-0123456789"
    deployments: list[dict[str, Any]] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)
    mutations: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    failures: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    lost: int = 0
    _ids: Any = field(default_factory=lambda: itertools.count(1))
    _clock: Any = field(default_factory=lambda: itertools.count(1))  # seconds after EPOCH

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    # --- arranging ------------------------------------------------------------------------

    def add(self, service: str, environment: str, commit: str, status: str = "SUCCESS", *,
            can_rollback: bool = True) -> dict[str, Any]:
        deployment = {"id": f"dep-{next(self._ids)}", "status": status, "serviceId": service,
                      "environmentId": environment, "projectId": "proj",
                      "createdAt": (EPOCH + timedelta(seconds=next(self._clock)))
                      .strftime("%Y-%m-%dT%H:%M:%S.000Z"),
                      "canRollback": can_rollback, "canRedeploy": True,
                      "staticUrl": f"{service}.up.railway.app",
                      "meta": {"commitHash": commit, "branch": "main"}}
        self.deployments.insert(0, deployment)  # the list is newest first
        return deployment

    def advance(self, deployment_id: str, status: str) -> dict[str, Any]:
        found = self.by_id(deployment_id)
        found["status"] = status
        if status == "SUCCESS":  # Railway supersedes the service's previous live deployment
            for other in self.deployments:
                if other is not found and other["status"] == "SUCCESS" \
                        and other["serviceId"] == found["serviceId"] \
                        and other["environmentId"] == found["environmentId"]:
                    other["status"] = "REMOVED"
        return found

    def by_id(self, deployment_id: str) -> dict[str, Any]:
        return next(d for d in self.deployments if d["id"] == deployment_id)

    def fail_next(self, status: int, *, times: int = 1,
                  headers: dict[str, str] | None = None) -> None:
        self.failures.extend([(status, headers or {})] * times)

    def lose_next(self, times: int = 1) -> None:
        self.lost += times

    # --- serving --------------------------------------------------------------------------

    def handle(self, request: httpx.Request) -> httpx.Response:
        if request.headers.get("Authorization") != f"Bearer {self.token}" \
                and request.headers.get("Project-Access-Token") != self.token:
            return httpx.Response(200, json={"errors": [{"message": "Not Authorized"}]})
        body = json.loads(request.content)
        self.requests.append(body)
        if self.failures:
            status, headers = self.failures.pop(0)
            return httpx.Response(status, headers=headers,
                                  json={"errors": [{"message": f"status {status}"}]})
        document, variables = body.get("query", ""), body.get("variables") or {}
        try:
            errors = validation_errors(document)
        except Exception as exc:  # a syntax error
            return httpx.Response(400, json={"errors": [{"message": str(exc)}]})
        if errors:
            return httpx.Response(400, json={"errors": [{"message": m} for m in errors]})
        root = {"deployments": lambda info, **args: self._deployments(args),
                "deployment": lambda info, **args: self._deployment(args["id"]),
                "serviceInstanceDeployV2": lambda info, **args: self._deploy(args),
                "deploymentRollback": lambda info, **args: self._rollback(args["id"]),
                "deploymentRedeploy": lambda info, **args: self._redeploy(args["id"])}
        result = graphql_sync(schema(), document, root_value=root,
                              variable_values=variables)
        answer: dict[str, Any] = {"data": result.data}
        if result.errors:
            answer["errors"] = [{"message": e.message} for e in result.errors]
        if self.lost and "mutation" in document.split("{")[0]:
            self.lost -= 1
            return httpx.Response(502, text="<html>502 Bad Gateway</html>")
        return httpx.Response(200, json=answer)

    def _deployments(self, args: dict[str, Any]) -> dict[str, Any]:
        wanted = {k: v for k, v in (args.get("input") or {}).items() if isinstance(v, str)}
        found = [d for d in self.deployments  # newest first, as Railway lists them
                 if all(d.get(k) == v for k, v in wanted.items())]
        first = args.get("first") or len(found)
        return {"edges": [{"node": d, "cursor": d["id"]} for d in found[:first]],
                "pageInfo": {"hasNextPage": len(found) > first, "endCursor": None}}

    def _deployment(self, deployment_id: str) -> dict[str, Any]:
        for d in self.deployments:
            if d["id"] == deployment_id:
                return d
        raise ValueError("Deployment not found")

    def _deploy(self, args: dict[str, Any]) -> str:
        self.mutations.append(("deploy", dict(args)))
        made = self.add(args["serviceId"], args["environmentId"], args.get("commitSha") or "",
                        "QUEUED")
        return str(made["id"])

    def _rollback(self, deployment_id: str) -> bool:
        self.mutations.append(("rollback", {"id": deployment_id}))
        target = self._deployment(deployment_id)
        if not target.get("canRollback"):
            raise ValueError("Deployment cannot be rolled back")
        self.add(target["serviceId"], target["environmentId"],
                 target["meta"]["commitHash"], "QUEUED")
        return True

    def _redeploy(self, deployment_id: str) -> dict[str, Any]:
        self.mutations.append(("redeploy", {"id": deployment_id}))
        target = self._deployment(deployment_id)
        return self.add(target["serviceId"], target["environmentId"],
                        target["meta"]["commitHash"], "QUEUED")
