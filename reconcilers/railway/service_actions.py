"""What a `Service` asks of Railway and of the controller's own records, as actions, and the
reads its reconciler uses: the typed parameters (shared with the runners in
`controller/providers/railway.py` and `controller/providers/services.py`) and the two reads
protocols with their keys.

The deploy and the rollback are action kinds of their own (`railway.deploy`,
`railway.rollback`), so `approvalRequired` and every killswitch hold them. No I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Protocol

from controller.reconcile.context import ReadsKey
from controller.reconcile.plan import Params


class Deploy(Params):
    """Deploy `commit` to the service instance; the runner first looks for a deployment of
    that commit (one already made is the answer, never a second)."""

    action_kind: ClassVar[str] = "railway.deploy"
    needs: ClassVar[str | None] = "railway"
    service: str
    environment: str
    commit: str


class Rollback(Params):
    """Roll back to deployment `to` after `failed` failed; the runner first looks for a
    deployment of `to`'s commit newer than `failed` (the rollback made already)."""

    action_kind: ClassVar[str] = "railway.rollback"
    needs: ClassVar[str | None] = "railway"
    service: str
    environment: str
    failed: str
    to: str
    commit: str  # `to`'s commit


class Redeploy(Params):
    """Redeploy deployment `deployment` (n8n's `service.redeploy`); the runner first looks for
    a deployment of the same commit newer than it (the redeploy made already)."""

    action_kind: ClassVar[str] = "railway.redeploy"
    needs: ClassVar[str | None] = "railway"
    service: str
    environment: str
    deployment: str
    commit: str


class MarkBad(Params):
    """Remember that `commit` must not be deployed again to this Service. Internal."""

    action_kind: ClassVar[str] = "service.mark_bad"
    service_key: str
    commit: str
    deployment: str
    reason: str


class RecordIncident(Params):
    """Record the incident of a failed deployment (every Service, a local folder's included:
    `/api/services` and `p38 services` show it). Internal."""

    action_kind: ClassVar[str] = "service.incident"
    service_key: str
    deployment: str
    commit: str | None
    status: str
    rolled_back_to: str | None = None
    rolled_back_commit: str | None = None


class CloseIncidents(Params):
    """Close the Service's open incidents: deployment `deployment` runs healthy. Internal."""

    action_kind: ClassVar[str] = "service.incident_close"
    service_key: str
    deployment: str


class HealthCheck(Params):
    """One try of a Service's `healthCheck.url` for deployment `deployment` (2xx: healthy);
    the reconciler tries again every few seconds until `healthCheck.timeout`."""

    action_kind: ClassVar[str] = "service.health_check"
    needs: ClassVar[str | None] = "services"
    url: str
    deployment: str


class NotifyEvent(Params):
    """One notification of an outcome (`rolled_back`, `rollback_failed`, ...) to a Policy
    notification target (n8n's Webhook node, say); its idempotency key goes with it."""

    action_kind: ClassVar[str] = "notify.event"
    needs: ClassVar[str | None] = "notify"
    target: str
    url: str
    body: dict[str, Any]


class RailwayReads(Protocol):
    async def deployments(self, service: str, environment: str) -> list[Mapping[str, Any]]:
        """The service's deployments in the environment, newest first: each with `id`,
        `status`, `can_rollback`, `created_at`, `commit` (or None)."""
        ...


class ServiceReads(Protocol):
    async def bad_commits(self, service_key: str) -> list[Mapping[str, Any]]:
        """The Service's commits marked bad and not cleared: `commit`, `deployment`,
        `reason`."""
        ...

    async def open_incidents(self, service_key: str) -> list[Mapping[str, Any]]:
        """The Service's incidents not closed yet, newest first: `deployment`, `commit`,
        `status`, `rolled_back_to`, `rolled_back_commit`."""
        ...


RAILWAY: ReadsKey[RailwayReads] = ReadsKey("railway")
SERVICES: ReadsKey[ServiceReads] = ReadsKey("services")
