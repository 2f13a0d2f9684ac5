"""What a Service decides from what Railway says (pure): deploy the branch head once, follow a
deployment in flight, roll back a failure once to the newest earlier deployment Railway can
roll back to (a superseded one is REMOVED) and mark its commit bad, never deploy a bad commit
again, say why when it cannot roll back."""

from __future__ import annotations

from typing import Any

from controller.manifests.models import ServiceSpec
from controller.reconcile.context import AppliedObject
from controller.reconcile.policy import Policy
from reconcilers.railway.services import POLL_SECONDS, ServiceObjects, ServiceSnapshot

KEY = "service:octo/infra/web"
SPEC = ServiceSpec.model_validate({"railway": {"project": "p", "environment": "env",
                                               "service": "svc"}})
APPLIED = AppliedObject("Service", "web", "h" * 64, {"spec": {}}, revision="c0ffee",
                        source="octo/infra")
A, B, C = "a" * 40, "b" * 40, "c" * 40


def dep(ident: str, status: str, commit: str, *, rollback: bool = True) -> dict[str, Any]:
    return {"id": ident, "status": status, "can_rollback": rollback, "commit": commit,
            "created_at": f"2026-12-07T10:0{ident[-1]}:00Z"}


def decide(head: str | None, deployments: list[dict[str, Any]], bad: tuple[str, ...] = (),
           spec: ServiceSpec = SPEC, *, source: str = "octo/infra",
           incidents: tuple[dict[str, Any], ...] = ()) -> Any:
    key = KEY if source == "octo/infra" else f"service:{source}/web"
    snapshot = ServiceSnapshot(key, source, "web", APPLIED, "h" * 64, spec=spec,
                               head=head, deployments=tuple(deployments),
                               bad=tuple({"commit": c} for c in bad), incidents=incidents)
    return ServiceObjects().decide(snapshot, Policy())


def test_the_branch_head_is_deployed_once() -> None:
    plan = decide(B, [dep("d1", "SUCCESS", A)])
    [action] = plan.actions
    assert (action.kind, action.params["commit"]) == ("railway.deploy", B)
    assert action.idempotency_key == f"railway.deploy:{KEY}@{B}"
    assert decide(B, [dep("d2", "SUCCESS", B), dep("d1", "REMOVED", A)]).decision == "Deployed"


def test_a_deployment_in_flight_is_followed() -> None:
    plan = decide(B, [dep("d2", "BUILDING", B), dep("d1", "SUCCESS", A)])
    assert plan.decision == "Deploying" and plan.actions == ()
    assert plan.requeue_after == POLL_SECONDS


def test_a_failure_is_rolled_back_once_to_the_last_good_deployment_and_marked_bad() -> None:
    plan = decide(B, [dep("d2", "FAILED", B), dep("d1", "REMOVED", A)])
    mark, rollback, record = plan.actions
    assert (record.kind, record.params["deployment"], record.params["rolled_back_to"]) == (
        "service.incident", "d2", "d1")
    assert (mark.kind, mark.params["commit"]) == ("service.mark_bad", B)
    assert (rollback.kind, rollback.params["to"], rollback.params["failed"]) == (
        "railway.rollback", "d1", "d2")
    assert rollback.idempotency_key == "railway.rollback:svc:d2"  # one per failure
    crashed = decide(B, [dep("d3", "CRASHED", B), dep("d2", "SUCCESS", B),
                         dep("d1", "REMOVED", A)], bad=(B,))
    assert [a.kind for a in crashed.actions] == ["railway.rollback", "service.incident"]
    assert crashed.actions[0].params["to"] == "d1"  # never to a bad commit's deployment


def test_a_bad_commit_is_not_deployed_again_a_newer_one_is() -> None:
    running_a = [dep("d3", "SUCCESS", A), dep("d2", "FAILED", B), dep("d1", "REMOVED", A)]
    held = decide(B, running_a, bad=(B,))
    assert (held.decision, held.status, held.actions) == ("BadCommit", "Blocked", ())
    assert [a.params["commit"] for a in decide(C, running_a, bad=(B,)).actions] == [C]


def test_without_a_deployment_to_go_back_to_it_stalls_and_says_so() -> None:
    plan = decide(B, [dep("d2", "FAILED", B), dep("d1", "REMOVED", A, rollback=False)])
    assert (plan.decision, plan.status) == ("CannotRollBack", "Stalled")
    assert [a.kind for a in plan.actions] == ["service.mark_bad", "service.incident"]
    off = ServiceSpec.model_validate({**SPEC.model_dump(by_alias=True),
                                      "rollbackOnFailure": False})
    assert decide(B, [dep("d2", "FAILED", B)], spec=off).decision == "Failed"


def test_require_approval_asks_for_one() -> None:
    spec = ServiceSpec.model_validate({**SPEC.model_dump(by_alias=True),
                                       "requireApproval": True})
    [action] = decide(B, [], spec=spec).actions
    assert action.needs_approval


def test_a_held_deploy_is_told_once_with_the_key_to_approve() -> None:
    from controller.manifests.models import PolicySpec

    spec = ServiceSpec.model_validate({**SPEC.model_dump(by_alias=True),
                                       "requireApproval": True})
    policy = Policy(spec=PolicySpec.model_validate(
        {"notifications": {"ops": {"url": "https://n8n.example.com/webhook/p38-ops"}}}))
    snapshot = ServiceSnapshot(KEY, "octo/infra", "web", APPLIED, "h" * 64, spec=spec, head=B)
    tell, deploy = ServiceObjects().decide(snapshot, policy).actions
    assert (tell.kind, tell.params["body"]["event"], tell.params["target"]) == (
        "notify.event", "deploy_held", "ops")
    assert tell.params["body"]["approve"] == deploy.idempotency_key
    assert tell.idempotency_key == f"notify:ops:{KEY}:deploy_held:{B}"
    assert not tell.needs_approval and deploy.needs_approval


def test_the_first_healthy_head_after_a_failure_tells_resolved_once() -> None:
    from controller.manifests.models import PolicySpec

    policy = Policy(spec=PolicySpec.model_validate(
        {"notifications": {"ops": {"url": "https://n8n.example.com/webhook/p38-ops"}}}))
    snapshot = ServiceSnapshot(KEY, "octo/infra", "web", APPLIED, "h" * 64, spec=SPEC, head=C,
                               deployments=(dep("d4", "SUCCESS", C), dep("d3", "REMOVED", A),
                                            dep("d2", "FAILED", B)),
                               bad=({"commit": B, "deployment": "d2"},))
    plan = ServiceObjects().decide(snapshot, policy)
    [tell] = [a for a in plan.actions if a.kind == "notify.event"]
    assert plan.decision == "Deployed" and tell.params["body"]["event"] == "resolved"
    assert tell.idempotency_key == f"notify:ops:{KEY}:resolved:d2"  # once per failure
    assert tell.params["body"]["failed"] == {"deployment": "d2", "commit": B}


def test_a_local_folders_service_records_its_incident_and_closes_it_on_a_later_fix() -> None:
    failed = decide(None, [dep("d2", "FAILED", B), dep("d1", "REMOVED", A)], source="local")
    assert [a.kind for a in failed.actions] == ["service.mark_bad", "railway.rollback",
                                                "service.incident"]
    record = failed.actions[-1].params
    assert (record["service_key"], record["commit"], record["rolled_back_commit"]) == (
        "service:local/web", B, A)
    incident = ({"deployment": "d2", "commit": B, "rolled_back_commit": A},)
    rolled_back = [dep("d3", "SUCCESS", A), dep("d2", "FAILED", B), dep("d1", "REMOVED", A)]
    back = decide(None, rolled_back, bad=(B,), source="local", incidents=incident)
    assert (back.decision, back.actions) == ("NotFollowing", ())  # the rollback is no fix
    fixed = decide(None, [dep("d4", "SUCCESS", C), *rolled_back], bad=(B,), source="local",
                   incidents=incident)
    [close] = fixed.actions
    assert (close.kind, close.params["deployment"]) == ("service.incident_close", "d4")
    assert decide(None, [dep("d4", "SUCCESS", C), *rolled_back], bad=(B,),
                  source="local").actions == ()  # nothing open: nothing to close


def test_a_followed_service_closes_its_incident_when_the_head_runs_healthy() -> None:
    incident = ({"deployment": "d2", "commit": B, "rolled_back_commit": A},)
    running = [dep("d4", "SUCCESS", C), dep("d3", "REMOVED", A), dep("d2", "FAILED", B)]
    kinds = [a.kind for a in decide(C, running, bad=(B,), incidents=incident).actions]
    assert kinds == ["service.incident_close"]  # (no installation: no issue to close)
    held = decide(B, running[1:], bad=(B,), incidents=incident)
    assert held.decision == "BadCommit" and held.actions == ()
