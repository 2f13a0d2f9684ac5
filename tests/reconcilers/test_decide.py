"""Each reconciler's pure `decide`, table-driven: snapshot in, plan out (decision, status,
transition, what it enqueues). No database, no network."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from controller.manifests.models import PolicySpec
from controller.reconcile.context import AppliedObject, ObjectStatus, StoredPayload
from controller.reconcile.plan import Plan, Resource
from controller.reconcile.policy import Policy
from reconcilers.github.issues import Issues
from reconcilers.github.pulls import PullRequests
from reconcilers.github.redeliveries import DeliveriesSnapshot, Redeliveries
from reconcilers.gitops.diff import ObjectState
from reconcilers.gitops.manifest_decide import ManifestSnapshot, decide
from reconcilers.gitops.objects import ObjectSnapshot
from reconcilers.gitops.plans import PullPlanSnapshot, PullRequestPlans
from reconcilers.gitops.policies import PolicyObjects, PolicySnapshot
from reconcilers.railway.deployments import Deployments
from reconcilers.railway.services import ServiceObjects
from reconcilers.tracking import Observed, TrackedSnapshot

NOW = datetime(2026, 11, 21, tzinfo=UTC)


def delivery(event: str, payload: dict[str, object], action: str | None = None,
             delivery_id: int = 7) -> StoredPayload:
    return StoredPayload(delivery_id, "github", event, action, payload)


def pull(state: str, merged: bool = False) -> StoredPayload:
    return delivery("pull_request", {"pull_request": {"number": 5, "state": state,
                                                      "merged": merged, "title": "t"}},
                    "closed" if state == "closed" else "opened")


MERGED = Resource("merged", 3, {"title": "t", "draft": False})
OPEN = Resource("open", 1, {"title": "t", "draft": False})


@pytest.mark.parametrize(
    ("current", "recent", "reread", "decision", "to_state"),
    [
        (None, (), None, "NothingObserved", None),
        (None, (pull("open"),), None, "Transition", "open"),
        (OPEN, (pull("open"),), None, "UpToDate", None),
        (OPEN, (pull("closed", merged=True),), None, "Transition", "merged"),
        (MERGED, (pull("open"),), None, "StaleDelivery", None),
        (MERGED, (pull("open"),), Observed("merged", {"title": "t", "draft": False}),
         "UpToDate", None),
    ],
    ids=["nothing", "new", "same", "merged", "stale-kept", "stale-re-read"],
)
def test_tracked_pull_requests(current: Resource | None, recent: tuple[StoredPayload, ...],
                               reread: Observed | None, decision: str,
                               to_state: str | None) -> None:
    """A pull request's state follows its deliveries; a stale one is kept or replaced by what was
    re-read."""
    plan = PullRequests().decide(TrackedSnapshot("pull:o/r#5", current, recent, reread),
                                 Policy())
    assert plan.decision == decision and plan.status == "Ready"
    assert (plan.transition.to_state if plan.transition else None) == to_state


def test_an_issue_deleted_is_tracked() -> None:
    """A deleted issue moves to the deleted state."""
    plan = Issues().decide(TrackedSnapshot(
        "issue:o/r#1", Resource("open", 1, {}), (delivery("issues", {}, "deleted"),)), Policy())
    assert plan.transition is not None and plan.transition.to_state == "deleted"


@pytest.mark.parametrize(
    ("owners", "status", "enqueue"),
    [((), "failed", ()),
     (("service:octo/infra/api",), "failed", ("service:octo/infra/api",)),
     (("service:octo/infra/api",), None, ())],
    ids=["no-owner", "owner-told", "nothing-observed"],
)
def test_a_deployment_change_is_handed_to_its_owners(owners: tuple[str, ...],
                                                     status: str | None,
                                                     enqueue: tuple[str, ...]) -> None:
    """A deployment's change enqueues the Services that own it, and nothing when nothing changed."""
    recent = (StoredPayload(3, "railway", "Deployment.failed", "FAILED",
                            {"type": "Deployment.failed", "details": {"status": status},
                             "resource": {"service": {"id": "svc"}}}),) if status else ()
    plan = Deployments().decide(TrackedSnapshot("deployment:d1", None, recent, owners=owners),
                                Policy())
    assert plan.enqueue == enqueue


def applied(kind: str, name: str, document: dict[str, object] | None = None) -> AppliedObject:
    return AppliedObject(kind, name, "h" * 64, document or {}, revision="c0ffee",
                         source="octo/infra")


@pytest.mark.parametrize(
    ("snapshot", "decision", "status", "forget"),
    [
        (ObjectSnapshot("service:octo/infra/a", "octo/infra", "a", None, None),
         "Deleted", "Ready", True),
        (ObjectSnapshot("service:octo/infra/a", "octo/infra", "a", None, "h" * 64),
         "NotApplied", "Blocked", False),
    ],
    ids=["gone", "desired-not-applied"],
)
def test_manifest_objects(snapshot: ObjectSnapshot, decision: str, status: str,
                          forget: bool) -> None:
    """A manifest object gone is forgotten, desired but not applied is Blocked (what an applied
    Service does: tests/railway/test_services.py)."""
    plan = ServiceObjects().decide(snapshot, Policy())
    assert (plan.decision, plan.status, plan.forget) == (decision, status, forget)


HELD = (ObjectStatus("probe:local/a", "Blocked", "Killswitch", "", None, "local", NOW),
        ObjectStatus("probe:local/b", "Blocked", "AwaitingApproval", "", None, "local", NOW))


@pytest.mark.parametrize(
    ("spec", "policy", "decision", "enqueue"),
    [
        ({"killswitch": True}, Policy(killswitch=True), "KillswitchOn", ("probe:local/b",)),
        ({}, Policy(), "Active", ("probe:local/a", "probe:local/b")),
        ({}, Policy(killswitch=True), "Active", ("probe:local/b",)),  # the env's is still on
        ({"killswitch": "maybe"}, Policy(), "Unreadable", ()),
    ],
    ids=["killswitch-on", "off-releases-all", "env-killswitch-keeps-holding", "unreadable"],
)
def test_policies(spec: dict[str, object], policy: Policy, decision: str,
                  enqueue: tuple[str, ...]) -> None:
    """A Policy says what it allows and releases the held objects it no longer holds."""
    document = {"spec": spec}
    snapshot = PolicySnapshot("policy:local/default", "local", "default",
                              applied("Policy", "default", document), "h" * 64, held=HELD)
    plan = PolicyObjects().decide(snapshot, policy)
    assert (plan.decision, plan.enqueue) == (decision, enqueue)
    assert plan.status == ("Stalled" if decision == "Unreadable" else "Ready")


def test_a_deleted_policy_releases_what_it_held() -> None:
    """Without its Policy the source is governed by the environment alone: what the killswitch
    held goes, and the object is forgotten."""
    snapshot = PolicySnapshot("policy:local/default", "local", "default", None, None,
                              held=HELD)
    plan = PolicyObjects().decide(snapshot, Policy())
    assert (plan.decision, plan.forget, plan.enqueue) == (
        "Deleted", True, ("probe:local/a", "probe:local/b"))


def test_a_policys_status_says_what_it_allows() -> None:
    """The Policy's status message is the policy in one line."""
    spec = PolicySpec.model_validate({"approvalRequired": ["railway.rollback"]})
    snapshot = PolicySnapshot("policy:local/default", "local", "default",
                              applied("Policy", "default",
                                      {"spec": spec.model_dump(by_alias=True)}))
    plan = PolicyObjects().decide(snapshot, Policy())
    assert plan.reason.startswith("killswitch off; approval required for railway.rollback")


@pytest.mark.parametrize(
    ("status", "decision", "forget", "shown"),
    [("unknown", "NothingToPlan", False, "Ready"), ("closed", "NothingToPlan", True, "Ready"),
     ("untouched", "NothingToPlan", False, "Ready"), ("blocked", "Blocked", False, "Blocked")],
)
def test_pull_request_plans_with_nothing_to_plan(status: str, decision: str, forget: bool,
                                                 shown: str) -> None:
    """A pull request plan with nothing to plan acts on nothing, and says Blocked when it cannot
    read."""
    plan = PullRequestPlans().decide(PullPlanSnapshot("o/r", 4, status, reason="no creds"),
                                     Policy())
    assert (plan.decision, plan.forget, plan.actions, plan.status) == (decision, forget, (),
                                                                       shown)


AGENT = ObjectState("Agent", "a", "h1", {"spec": {"x": 1}})
AGENT_V2 = ObjectState("Agent", "a", "h2", {"spec": {"x": 2}})
SCHEDULE = ObjectState("Schedule", "s", "h3", {"spec": {}})


def source(desired: tuple[ObjectState, ...], applied: tuple[ObjectState, ...], *,
           recorded: dict[str, str] | None = None, problems: tuple[str, ...] = (),
           blocked: str | None = None) -> Plan:
    current = None if recorded is None else Resource("Ready", 4, {"tree": "t1",
                                                                  "objects": recorded})
    return decide(ManifestSnapshot("local", "t2", desired, problems, applied, tree="t2",
                                   current=current, blocked=blocked))


@pytest.mark.parametrize(
    ("plan", "decision", "status", "enqueue"),
    [
        (source((AGENT, SCHEDULE), ()), "Applied", "Ready",
         ("agent:local/a", "schedule:local/s")),
        (source((AGENT_V2, SCHEDULE), (AGENT, SCHEDULE), recorded={"Agent/a": "h1",
                                                                     "Schedule/s": "h3"}),
         "Applied", "Ready", ("agent:local/a",)),
        (source((SCHEDULE,), (AGENT, SCHEDULE), recorded={"Agent/a": "h1",
                                                            "Schedule/s": "h3"}),
         "Applied", "Ready", ("agent:local/a",)),
        # Applied before a crash, the settle lost: what is recorded still differs, and is
        # what the revision is reported (and the object enqueued) against.
        (source((AGENT_V2,), (AGENT_V2,), recorded={"Agent/a": "h1"}), "Applied", "Ready",
         ("agent:local/a",)),
        (source((AGENT,), (AGENT,), problems=("m.yaml:1:1: bad",), recorded={"Agent/a": "h1"}),
         "Invalid", "Stalled", ()),
        (source((), (AGENT,), blocked="no credentials"), "Blocked", "Blocked", ()),
    ],
    ids=["first-apply", "update", "prune", "crash-recovery", "invalid", "blocked"],
)
def test_manifest_sources_enqueue_the_objects_they_change(plan: Plan, decision: str,
                                                          status: str,
                                                          enqueue: tuple[str, ...]) -> None:
    """A source enqueues the objects it changes, including those a lost settle left recorded
    differently."""
    assert (plan.decision, plan.status, plan.enqueue) == (decision, status, enqueue)


def attempt(guid: str, minutes_ago: float, status_code: int, id_: int = 1) -> dict[str, object]:
    when = NOW - timedelta(minutes=minutes_ago)
    return {"id": id_, "guid": guid, "event": "push", "action": None,
            "status_code": status_code, "status": "OK" if status_code == 200 else "failed",
            "delivered_at": when.strftime("%Y-%m-%dT%H:%M:%SZ")}


@pytest.mark.parametrize(
    ("attempts", "stored", "asked", "requeue"),
    [
        ((attempt("a", 5, 0),), (), ["a"], None),
        ((attempt("a", 5, 0), attempt("a", 4, 200, 2)), (), [], None),  # a later one got it
        ((attempt("a", 5, 502),), ("a",), [], None),  # it reached us after all
        ((attempt("a", 0.5, 0),), (), [], 32.0),  # may still be arriving: looked at in its minute
        ((attempt("a", 0.5, 0), attempt("b", 0.25, 502, 2)), (), [], 47.0),  # the youngest's
        ((attempt("a", 5, 0), attempt("b", 0.75, 0, 2)), (), ["a"], 17.0),  # one now, one soon
        ((attempt("a", 0.5, 0), attempt("a", 0.25, 200, 2)), (), [], None),  # it arrived
        ((attempt("a", 0.5, 0),), ("a",), [], None),  # stored: nothing to wait for
        ((attempt("a", 60 * 24 * 4, 0),), (), [], None),  # past GitHub's window
        (tuple(attempt(f"g{n:02d}", 30 - n, 0, n) for n in range(12)), (),
         [f"g{n:02d}" for n in range(10)], 30.0),  # oldest first, ten at a time
    ],
    ids=["lost", "delivered-later", "stored", "settling", "settling-two", "lost-and-settling",
         "settling-delivered", "settling-stored", "too-old", "batched"],
)
def test_redeliveries(attempts: tuple[dict[str, object], ...], stored: tuple[str, ...],
                      asked: list[str], requeue: float | None) -> None:
    """The App's failed deliveries not stored here are asked again, each once, ten at a time;
    one still in its settling minute is looked at again when the youngest's minute ends."""
    snapshot = DeliveriesSnapshot(attempts, frozenset(stored), NOW)
    plan = Redeliveries().decide(snapshot, Policy())
    assert [a.params["guid"] for a in plan.actions] == asked
    assert [a.idempotency_key for a in plan.actions] == [f"github:redeliver:{g}" for g in asked]
    assert plan.requeue_after == requeue


def test_redeliveries_without_credentials_are_blocked() -> None:
    """No App credentials: nothing is listed, and the status says what is not recovered."""
    plan = Redeliveries().decide(DeliveriesSnapshot(blocked="no GitHub App credentials"),
                                 Policy())
    assert (plan.status, plan.decision, plan.actions) == ("Blocked", "NoCredentials", ())
