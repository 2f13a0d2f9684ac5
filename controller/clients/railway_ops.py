"""The Railway operations a `Service` needs, as GraphQL documents held to Railway's published
schema (`../shared/railway/schema.json`; the tests validate every one): one deployment, a
service's deployments in an environment, deploy a commit, roll back to a deployment, redeploy.

Each is one `RailwayClient.execute` (the mutations with `changes=True`: never resent blind) and
shapes its answer into a `RailwayDeployment`. A deployment's commit is in its `meta`
(`commitHash`), which only the controller reads (the agents' tool may not). Nothing here
decides anything.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from controller.clients.railway import RailwayClient

DEPLOYMENT_FIELDS = "id status canRollback createdAt serviceId environmentId staticUrl meta"

DEPLOYMENT = f"""
query Deployment($id: String!) {{
  deployment(id: $id) {{ {DEPLOYMENT_FIELDS} }}
}}
"""

DEPLOYMENTS = f"""
query Deployments($serviceId: String!, $environmentId: String!, $first: Int!) {{
  deployments(first: $first, input: {{serviceId: $serviceId, environmentId: $environmentId,
                                      includeDeleted: true}}) {{
    edges {{ node {{ {DEPLOYMENT_FIELDS} }} }}
  }}
}}
"""

DEPLOY = """
mutation Deploy($serviceId: String!, $environmentId: String!, $commitSha: String!) {
  serviceInstanceDeployV2(serviceId: $serviceId, environmentId: $environmentId,
                          commitSha: $commitSha)
}
"""

ROLLBACK = """
mutation Rollback($id: String!) {
  deploymentRollback(id: $id)
}
"""

REDEPLOY = f"""
mutation Redeploy($id: String!) {{
  deploymentRedeploy(id: $id) {{ {DEPLOYMENT_FIELDS} }}
}}
"""

DOCUMENTS = {"deployment": DEPLOYMENT, "deployments": DEPLOYMENTS, "deploy": DEPLOY,
             "rollback": ROLLBACK, "redeploy": REDEPLOY}


@dataclass(frozen=True)
class RailwayDeployment:
    id: str
    status: str  # DeploymentStatus: QUEUED ... SUCCESS, FAILED, CRASHED, REMOVED, ...
    can_rollback: bool
    created_at: str
    service: str
    environment: str
    commit: str | None  # meta.commitHash, when Railway built it from a commit
    url: str | None = None

    @classmethod
    def of(cls, node: Mapping[str, Any]) -> RailwayDeployment:
        meta = node.get("meta") if isinstance(node.get("meta"), dict) else {}
        commit = meta.get("commitHash") if isinstance(meta, dict) else None
        return cls(id=str(node["id"]), status=str(node.get("status") or "UNKNOWN"),
                   can_rollback=bool(node.get("canRollback")),
                   created_at=str(node.get("createdAt") or ""),
                   service=str(node.get("serviceId") or ""),
                   environment=str(node.get("environmentId") or ""),
                   commit=commit if isinstance(commit, str) else None,
                   url=node.get("staticUrl") if isinstance(node.get("staticUrl"), str) else None)


async def deployment(client: RailwayClient, deployment_id: str) -> RailwayDeployment:
    data = await client.execute(DEPLOYMENT, {"id": deployment_id})
    return RailwayDeployment.of(data["deployment"])


async def deployments(client: RailwayClient, service: str, environment: str, *,
                      first: int = 20) -> list[RailwayDeployment]:
    """The service's deployments in the environment, newest first (superseded ones included:
    Railway marks them REMOVED, and they may still be rolled back to)."""
    data = await client.execute(DEPLOYMENTS, {"serviceId": service,
                                              "environmentId": environment, "first": first})
    edges = (data.get("deployments") or {}).get("edges") or []
    found = [RailwayDeployment.of(e["node"]) for e in edges if isinstance(e, dict)
             and isinstance(e.get("node"), dict)]
    return sorted(found, key=lambda d: d.created_at, reverse=True)


async def deploy(client: RailwayClient, service: str, environment: str, commit: str) -> str:
    """Deploy `commit` to the service instance; the new deployment's id."""
    data = await client.execute(DEPLOY, {"serviceId": service, "environmentId": environment,
                                         "commitSha": commit}, changes=True)
    return str(data["serviceInstanceDeployV2"])


async def rollback(client: RailwayClient, deployment_id: str) -> bool:
    """Roll the service back to deployment `deployment_id` (Railway answers a Boolean)."""
    data = await client.execute(ROLLBACK, {"id": deployment_id}, changes=True)
    return bool(data["deploymentRollback"])


async def redeploy(client: RailwayClient, deployment_id: str) -> RailwayDeployment:
    data = await client.execute(REDEPLOY, {"id": deployment_id}, changes=True)
    return RailwayDeployment.of(data["deploymentRedeploy"])
