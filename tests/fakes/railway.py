"""A stateful fake of Railway's public GraphQL API, for httpx tests.

Every document is validated against Railway's real schema (the introspection result the
railwayapp/cli publishes, kept gzipped beside this file) and executed by graphql-core over the
fake's data, so a field Railway does not have is an error as Railway would return it
(`{"errors": [{"message": ...}]}`), and what is selected is exactly what comes back. A token
is required (`Authorization: Bearer`). Use `httpx.AsyncClient(transport=fake.transport())`.
"""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import httpx
from graphql import GraphQLSchema, build_client_schema, graphql_sync, parse, validate

SCHEMA = Path(__file__).with_name("railway_schema.json.gz")


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
    token: str = "railway-fake-token-0123456789"
    deployments: list[dict[str, Any]] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def handle(self, request: httpx.Request) -> httpx.Response:
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return httpx.Response(200, json={"errors": [{"message": "Not Authorized"}]})
        body = json.loads(request.content)
        self.requests.append(body)
        document, variables = body.get("query", ""), body.get("variables") or {}
        try:
            errors = validation_errors(document)
        except Exception as exc:  # a syntax error
            return httpx.Response(400, json={"errors": [{"message": str(exc)}]})
        if errors:
            return httpx.Response(400, json={"errors": [{"message": m} for m in errors]})
        root = {"deployments": lambda info, **args: self._deployments(args)}
        result = graphql_sync(schema(), document, root_value=root,
                              variable_values=variables)
        answer: dict[str, Any] = {"data": result.data}
        if result.errors:
            answer["errors"] = [{"message": e.message} for e in result.errors]
        return httpx.Response(200, json=answer)

    def _deployments(self, args: dict[str, Any]) -> dict[str, Any]:
        wanted = args.get("input") or {}
        found = [d for d in self.deployments
                 if all(d.get(k) == v for k, v in wanted.items() if isinstance(v, str))]
        first = args.get("first") or len(found)
        return {"edges": [{"node": d, "cursor": d["id"]} for d in found[:first]],
                "pageInfo": {"hasNextPage": len(found) > first, "endCursor": None}}
