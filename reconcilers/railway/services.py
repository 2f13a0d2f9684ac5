"""Services (`service:<source>/<name>`, issue 17): deploy what is committed, roll back what
fails, remember the bad commit.

`observe` reads the applied `Service`, the head of its branch as the repository's tracker
recorded it from pushes (a merge auto-merge made included), the service's deployments in its
environment through Railway's API (a webhook is only a hint: `deployment:ID` enqueues its
Service, which reads Railway before acting), and the commits marked bad. `decide` is pure, one
step per reconcile:

1. The newest deployment FAILED or CRASHED, with `rollbackOnFailure`: its commit is marked bad
   (so no resync or restart deploys it again) and the service is rolled back
   (`railway.rollback`, an action kind of its own) to the newest earlier deployment Railway
   can roll back to whose commit is not bad (a superseded one is REMOVED, not SUCCESS). One
   failed deployment is one rollback, however often it is seen.
2. A deployment in flight: looked at again in `POLL_SECONDS` (a webhook ends the wait).
3. The branch head has no deployment and is not bad: it is deployed (`railway.deploy`, held
   by `requireApproval`, the Policy's `approvalRequired` and every killswitch).
4. Otherwise it says what runs.

Each failure is recorded as an incident (every Service, a local folder's included) and opens
(or updates: found by its marker) one incident issue on the source repository saying what
failed and what was done, both closed once the branch head runs healthy again, and sends one
notification (`rolled_back` or `rollback_failed`) to each of the Policy's notification
targets. No I/O of its own.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import ValidationError

from controller.manifests.models import ServiceSpec, duration_seconds
from controller.reconcile.context import AppliedObject, ObserveContext
from controller.reconcile.errors import NotConfigured
from controller.reconcile.plan import Action, Plan, Resource
from controller.reconcile.reconciler import Event, Watch, object_key, object_ref
from reconcilers.gitops.objects import ManifestObject, ObjectSnapshot
from reconcilers.gitops.reporting import IssueClose
from reconcilers.railway.service_actions import (
    RAILWAY,
    SERVICES,
    CloseIncidents,
    Deploy,
    HealthCheck,
    MarkBad,
    NotifyEvent,
    Redeploy,
    Rollback,
)
from reconcilers.railway.service_reports import incident_action, incident_marker, short

if TYPE_CHECKING:
    from controller.reconcile.policy import Policy

POLL_SECONDS = 10.0  # while a deployment is in flight (a webhook ends the wait sooner)
HEALTH_INTERVAL = 5.0  # between health check tries, until healthCheck.timeout
IN_FLIGHT = frozenset({"QUEUED", "WAITING", "INITIALIZING", "BUILDING", "DEPLOYING"})
FAILED = frozenset({"FAILED", "CRASHED"})
ROLLBACK_TARGETS = frozenset({"SUCCESS", "REMOVED", "SLEEPING"})
GONE = frozenset({"REMOVED", "REMOVING", "SKIPPED"})


@dataclass(frozen=True)
class ServiceSnapshot(ObjectSnapshot):
    spec: ServiceSpec | None = None
    unreadable: str = ""
    head: str | None = None  # the branch's head commit, when it is followed
    head_why: str = ""  # why there is none
    deployments: tuple[Mapping[str, Any], ...] = ()  # newest first
    bad: tuple[Mapping[str, Any], ...] = ()
    unseen: str = ""  # why Railway could not be read
    installation: int | None = None  # the App's on the source repository (for its incident)
    health: tuple[Mapping[str, Any], ...] = ()  # the current deployment's probes, in order
    redeploys: tuple[int, ...] = ()  # n8n's service.redeploy deliveries not settled yet
    incidents: tuple[Mapping[str, Any], ...] = ()  # open (not closed yet), newest first


def redeploy_keys(event: Event) -> Iterable[str]:
    """n8n's `service.redeploy` names the Service (`<source>/<name>`)."""
    if event.name != "service.redeploy":
        return ()
    name = event.payload.get("service")
    name = name.removeprefix("service:") if isinstance(name, str) else ""
    source, _, short_name = name.rpartition("/")
    return (object_key("Service", source, short_name),) if source and short_name else ()


class ServiceObjects(ManifestObject):
    kind: ClassVar[str] = "service"
    manifest_kind: ClassVar[str] = "Service"

    def watches(self) -> Sequence[Watch]:
        return (Watch("n8n", frozenset({"service.redeploy"}), redeploy_keys),)

    async def observe(self, ctx: ObserveContext, key: str) -> ServiceSnapshot:
        source_name = object_ref(key)[1]
        services = ctx.reads(SERVICES)
        # The store's reads at once (one round trip); Railway's after the spec.
        base, repo, bad_commits, incidents, redeploys = await asyncio.gather(
            super().observe(ctx, key),
            ctx.resource("repo", source_name) if source_name != "local" else _nothing(),
            services.bad_commits(key), services.open_incidents(key),
            ctx.recent_payloads(key, 20, events=("service.redeploy",), pending=True))
        fields = {f: getattr(base, f) for f in ("key", "source", "name", "applied", "desired")}
        if base.applied is None:
            return ServiceSnapshot(**fields)
        try:
            spec = ServiceSpec.model_validate(base.applied.document.get("spec") or {})
        except ValidationError as exc:
            return ServiceSnapshot(**fields, unreadable=str(exc).splitlines()[0])
        head, why = _head(repo, base.source, spec.branch)
        bad = tuple(bad_commits)
        fields["incidents"] = tuple(incidents)
        source = base.source_state
        found = source.data.get("installation_id") if source is not None else None
        fields["installation"] = found if isinstance(found, int) else None
        try:
            deployments = tuple(await ctx.reads(RAILWAY).deployments(
                spec.railway.service, spec.railway.environment))
        except NotConfigured as exc:
            return ServiceSnapshot(**fields, spec=spec, head=head, head_why=why, bad=bad,
                                   unseen=str(exc))
        asked = tuple(p.delivery_id for p in redeploys)
        fields["redeploys"] = asked
        if asked and len(deployments) > 1:  # is the running one the answer to an earlier ask?
            made = await ctx.action(redeploy_key(key, str(deployments[1].get("id"))))
            if made is not None and made.status == "succeeded" and \
                    (made.result or {}).get("deployment") == deployments[0].get("id"):
                fields["redeploys"] = ()  # coalesced into the redeploy that made it
        health: list[Mapping[str, Any]] = []
        current = deployments[0] if deployments else None
        if current is not None and current.get("status") == "SUCCESS" \
                and spec.health_check.url is not None:
            for n in range(health_tries(spec) + 1):
                record = await ctx.action(health_key(key, str(current.get("id")), n))
                if record is None or record.status != "succeeded":
                    break
                health.append(dict(record.result or {}))
        return ServiceSnapshot(**fields, spec=spec, head=head, head_why=why,
                               deployments=deployments, bad=bad, health=tuple(health))

    def decide_applied(self, snapshot: ObjectSnapshot, applied: AppliedObject,
                       policy: Policy) -> Plan:
        assert isinstance(snapshot, ServiceSnapshot)
        revision = snapshot.revision
        if snapshot.spec is None:
            return Plan("Unreadable", f"the applied document does not validate: "
                                      f"{snapshot.unreadable}", status="Stalled",
                        revision=revision)
        if snapshot.unseen:
            return Plan("NoRailway", f"Railway cannot be read: {snapshot.unseen}",
                        status="Blocked", revision=revision)
        return _Decision(snapshot, snapshot.spec, policy).plan()


async def _nothing() -> None:
    return None


def _head(repo: Resource | None, source: str, branch: str) -> tuple[str | None, str]:
    if source == "local":
        return None, "a Service from a local folder follows no repository's commits"
    data = repo.data if repo is not None else {}
    default, head = data.get("default_branch"), data.get("head_sha")
    if branch != default:
        return None, (f"its branch {branch} is not {source}'s default branch "
                      f"({default or 'not known yet'}): only that branch's pushes are followed")
    if not isinstance(head, str) or not head:
        return None, f"no push to {branch} seen yet"
    return head, ""


class _Decision:
    def __init__(self, s: ServiceSnapshot, spec: ServiceSpec, policy: Policy) -> None:
        self.s, self.spec, self.policy = s, spec, policy
        self.target = (spec.railway.service, spec.railway.environment)
        self.bad = {str(b.get("commit")) for b in s.bad}
        self.deployments = list(s.deployments)

    def plan(self) -> Plan:
        current = self.deployments[0] if self.deployments else None
        status = str(current.get("status")) if current else ""
        if current is not None and status in FAILED:
            return self._failed(current)
        if current is not None and self.s.redeploys and status not in IN_FLIGHT:
            return self._redeploy(current)
        if current is not None and status in IN_FLIGHT:
            return Plan("Deploying", f"deployment {current.get('id')} of "
                                     f"{short(current.get('commit'))} is {status.lower()}",
                        requeue_after=POLL_SECONDS, revision=self.s.revision)
        if current is not None and status == "SUCCESS" and self.spec.health_check.url:
            judged = self._health(current)  # whatever runs: the head, a rollback, Railway's
            if judged is not None:
                return judged
        head = self.s.head
        running = (f"running deployment {current.get('id')} of {short(current.get('commit'))}"
                   if current is not None else "nothing deployed yet")
        if head is None:
            return Plan("NotFollowing", f"{running}; {self.s.head_why}",
                        actions=self._resolved_unfollowed(current), revision=self.s.revision)
        if head in self.bad:
            return Plan("BadCommit", f"{running}; {short(head)} failed before and is not "
                                     "deployed again (a newer commit is; `p38 services "
                                     "clear-bad` clears the mark)", status="Blocked",
                        revision=head)
        of_head = [d for d in self.deployments if d.get("commit") == head]
        if not any(d.get("status") not in FAILED | GONE for d in of_head):
            # Never deployed, or only failed (a mark cleared by hand): deployed (again).
            tries = sum(1 for d in of_head if d.get("status") in FAILED)
            return self._deploy(head, running, tries)
        return Plan("Deployed", running, actions=self._resolved(current, head), revision=head)

    def _redeploy(self, current: Mapping[str, Any]) -> Plan:
        """n8n asked: the running deployment is redeployed once (asks that arrive before the
        new one is up are coalesced into it)."""
        service, environment = self.target
        params = Redeploy(service=service, environment=environment,
                          deployment=str(current.get("id")), commit=str(current.get("commit")))
        action = params.action(redeploy_key(self.s.key, str(current.get("id"))),
                               description=f"redeploy {current.get('id')} of "
                                           f"{short(current.get('commit'))} (asked by n8n)",
                               needs_approval=self.spec.require_approval)
        return Plan("Redeploying", f"n8n asked for a redeploy of deployment "
                                   f"{current.get('id')} ({short(current.get('commit'))})",
                    actions=(action,), requeue_after=0.0, revision=self.s.revision)

    def _health(self, current: Mapping[str, Any]) -> Plan | None:
        """None when the deployment answered 2xx; else the next try, or, once
        `healthCheck.timeout` has passed in tries, the failure it is."""
        tries = self.s.health
        if any(t.get("healthy") for t in tries):
            return None
        if len(tries) >= health_tries(self.spec):
            last = tries[-1] if tries else {}
            why = last.get("status") or last.get("error") or "no answer"
            return self._failed({**current, "status": f"UNHEALTHY ({why})"})
        params = HealthCheck(url=str(self.spec.health_check.url),
                             deployment=str(current.get("id")))
        action = params.action(health_key(self.s.key, str(current.get("id")), len(tries)),
                               description=f"probe {self.spec.health_check.url} "
                                           f"(try {len(tries) + 1})")
        return Plan("CheckingHealth", f"deployment {current.get('id')} of "
                                      f"{short(current.get('commit'))} is up; its health check "
                                      f"has not answered 2xx yet (try {len(tries) + 1} of "
                                      f"{health_tries(self.spec)})",
                    actions=(action,), requeue_after=0.0 if not tries else HEALTH_INTERVAL,
                    revision=self.s.revision)

    def _resolved(self, current: Mapping[str, Any] | None, head: str) -> tuple[Action, ...]:
        """The open incident (if any) is closed once the branch head runs, healthy; after a
        failure, `resolved` is told once (for the newest failure)."""
        s = self.s
        if current is None or current.get("commit") != head:
            return ()
        actions: list[Action] = self._close_incidents(current)
        if s.installation is not None and s.source != "local":
            params = IssueClose(repo=s.source, installation_id=s.installation,
                                marker=incident_marker(s.key),
                                comment=f"{s.name} runs {short(head)} again (deployment "
                                        f"{current.get('id')}): resolved.")
            actions.append(params.action(f"incident-close:{s.key}@{current.get('id')}",
                                         description=f"close {s.name}'s incident, if one is "
                                                     "open"))
        if s.bad:  # (newest first) the failure this healthy deployment resolves
            failure = s.bad[0]
            actions += self._tell("resolved", "info", f"{failure.get('deployment')}", {
                "deployment": {"id": current.get("id"), "status": "SUCCESS"},
                "commit": head, "failed": {"deployment": failure.get("deployment"),
                                           "commit": failure.get("commit")},
                "text": f"{s.name} runs {short(head)} (deployment {current.get('id')}): "
                        f"the failure of {short(failure.get('commit'))} is resolved"})
        return tuple(actions)

    def _resolved_unfollowed(self, current: Mapping[str, Any] | None) -> tuple[Action, ...]:
        """A Service that follows no commits (a local folder's): its open incidents close once
        a deployment of another commit than the failed ones and the ones rolled back to runs
        healthy (a fix Railway deployed on its own, or by hand)."""
        if current is None or current.get("status") != "SUCCESS":
            return ()
        involved = {i.get(f) for i in self.s.incidents for f in ("commit", "rolled_back_commit")}
        if current.get("commit") in involved | self.bad:
            return ()
        return tuple(self._close_incidents(current))

    def _close_incidents(self, current: Mapping[str, Any]) -> list[Action]:
        if not self.s.incidents:
            return []
        params = CloseIncidents(service_key=self.s.key, deployment=str(current.get("id")))
        return [params.action(f"service.incident-close:{self.s.key}@{current.get('id')}",
                              description=f"close {self.s.name}'s open incidents: deployment "
                                          f"{current.get('id')} runs healthy")]

    def _deploy(self, head: str, running: str, tries: int) -> Plan:
        service, environment = self.target
        params = Deploy(service=service, environment=environment, commit=head)
        action = params.action(f"railway.deploy:{self.s.key}@{head}"
                               + (f":{tries + 1}" if tries else ""),
                               description=f"deploy {short(head)} to Railway service "
                                           f"{service}", needs_approval=self.spec.require_approval)
        held: list[Action] = []
        if self.spec.require_approval or Deploy.action_kind in self.policy.approval_required:
            held = self._tell("deploy_held", "info", f"{head}", {
                "commit": head, "approve": action.idempotency_key,
                "text": f"{self.s.name}: deploying {short(head)} waits for approval "
                        f"(p38 approve {action.idempotency_key})"})
        return Plan("Deploying", f"{running}; deploying {short(head)}",
                    actions=(*held, action), requeue_after=POLL_SECONDS, revision=head)

    def _tell(self, event: str, severity: str, about: str,
              fields: Mapping[str, Any]) -> list[Action]:
        """One notification of `event` about `about` (a deployment, a commit) to each of the
        Policy's notification targets."""
        s, (service, environment) = self.s, self.target
        body: dict[str, Any] = {"event": event, "severity": severity, "service": s.name,
                                "source": s.source, "railway_service": service,
                                "environment": environment,
                                "links": {"service": f"/api/services/{s.name}"}, **fields}
        actions = []
        for name, where in sorted(self.policy.spec.notifications.items()):
            params = NotifyEvent(target=name, url=str(where.url), body=body)
            actions.append(params.action(f"notify:{name}:{s.key}:{event}:{about}",
                                         description=f"tell {name}: {event} ({s.name})"))
        return actions

    def _notify(self, event: str, severity: str, failed: Mapping[str, Any],
                target: Mapping[str, Any] | None) -> list[Action]:
        """One notification per outcome to each of the Policy's notification targets (the
        failure and what was done in one body), never one per step or per sighting."""
        commit = failed.get("commit")
        return self._tell(event, severity, str(failed.get("id")), {
            "deployment": {"id": failed.get("id"), "status": failed.get("status")},
            "commit": commit,
            "rolled_back_to": ({"deployment": target.get("id"), "commit": target.get("commit")}
                               if target is not None else None),
            "text": (f"{self.s.name}: deployment {failed.get('id')} of {short(commit)} "
                     f"{str(failed.get('status')).lower()}; "
                     + (f"rolled back to {target.get('id')} ({short(target.get('commit'))})"
                        if target is not None else "could not roll back"))})

    def _incident(self, failed: Mapping[str, Any],
                  target: Mapping[str, Any] | None) -> list[Action]:
        return list(incident_action(self.s, failed, target))

    def _failed(self, failed: Mapping[str, Any]) -> Plan:
        commit, status = failed.get("commit"), str(failed.get("status")).lower()
        what = f"deployment {failed.get('id')} of {short(commit)} {status}"
        if not self.spec.rollback_on_failure:
            return Plan("Failed", f"{what} (rollbackOnFailure is false)", status="Stalled",
                        actions=tuple(self._incident(failed, None)),
                        revision=str(commit or ""))
        actions: list[Action] = []
        if isinstance(commit, str) and commit and commit not in self.bad:
            mark = MarkBad(service_key=self.s.key, commit=commit,
                           deployment=str(failed.get("id")), reason=what)
            actions.append(mark.action(f"service.mark-bad:{self.s.key}@{commit}:"
                                       f"{failed.get('id')}",
                                       description=f"remember {short(commit)} must not be "
                                                   "deployed again"))
        target = next((d for d in self.deployments[1:]
                       if d.get("status") in ROLLBACK_TARGETS and d.get("can_rollback")
                       and d.get("commit") and d.get("commit") != commit
                       and d.get("commit") not in self.bad), None)
        if target is None:
            actions += self._incident(failed, None)
            actions += self._notify("rollback_failed", "critical", failed, None)
            return Plan("CannotRollBack", f"{what}; no earlier deployment Railway can roll "
                                          "back to", actions=tuple(actions), status="Stalled",
                        revision=str(commit or ""))
        service, environment = self.target
        rollback = Rollback(service=service, environment=environment,
                            failed=str(failed.get("id")), to=str(target.get("id")),
                            commit=str(target.get("commit")))
        actions.append(rollback.action(
            f"railway.rollback:{service}:{failed.get('id')}",
            description=f"roll {service} back to deployment {target.get('id')} "
                        f"({short(target.get('commit'))})"))
        actions += self._incident(failed, target)  # after the rollback: GitHub never delays it
        actions += self._notify("rolled_back", "critical", failed, target)
        return Plan("RollingBack", f"{what}: rolling back to deployment {target.get('id')} "
                                   f"of {short(target.get('commit'))}; {short(commit)} is "
                                   "not deployed again", actions=tuple(actions),
                    requeue_after=POLL_SECONDS, status="Reconciling",
                    revision=str(commit or ""))


def health_key(key: str, deployment: str, n: int) -> str:
    return f"health:{key}:{deployment}:{n}"


def health_tries(spec: ServiceSpec) -> int:
    """Tries that fit in `healthCheck.timeout`, one every HEALTH_INTERVAL (at least one)."""
    return max(1, int(duration_seconds(spec.health_check.timeout) // HEALTH_INTERVAL) + 1)


def redeploy_key(key: str, deployment: str) -> str:
    return f"railway.redeploy:{key}@{deployment}"
