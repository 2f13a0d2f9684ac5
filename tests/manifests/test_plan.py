"""The pure plan: create, update (with changed fields), delete; invalid or empty prunes nothing."""

from __future__ import annotations

import dataclasses

from controller.manifests.loader import parse_text
from controller.reconcile.plan import Resource
from controller.reconcile.reads import Where
from reconcilers.gitops.diff import Change, ObjectState, changed_fields
from reconcilers.gitops.manifest_decide import (
    ManifestSnapshot,
    decide,
    desired_states,
    object_changes,
)
from tests.manifests.test_loader import AGENT


def states(text: str) -> tuple[ObjectState, ...]:
    loaded, problems = parse_text(text, "m.yaml")
    assert problems == []
    from controller.manifests.loader import ManifestSet

    return desired_states(ManifestSet(objects=loaded))


def snap(desired: tuple[ObjectState, ...], applied: tuple[ObjectState, ...],
         problems: tuple[str, ...] = (), **extra: object) -> ManifestSnapshot:
    return ManifestSnapshot("local", "rev-2", desired, problems, applied, **extra)  # type: ignore[arg-type]


REPO = Where("octo/infra", installation_id=7, branch="main")


def github_snap(desired: tuple[ObjectState, ...], applied: tuple[ObjectState, ...],
                problems: tuple[str, ...] = (), *, current: Resource | None = None,
                tree: str = "t2") -> ManifestSnapshot:
    return ManifestSnapshot("octo/infra", "c" * 40, desired, problems, applied, tree=tree,
                            current=current, where=REPO)


def test_changed_fields_are_dotted_paths() -> None:
    """Nested differences, added and removed keys are all named."""
    old = {"spec": {"limits": {"timeout": "300s", "memory": "256Mi"}, "tools": ["http"]}}
    new = {"spec": {"limits": {"timeout": "60s", "memory": "256Mi"}, "tools": ["http"],
                    "notify": ["ops"]}}
    assert changed_fields(old, new) == ["spec.limits.timeout", "spec.notify"]


def test_create_update_delete_and_no_change() -> None:
    """Against what was applied: new objects created, changed ones updated, gone ones deleted."""
    applied = states(AGENT + "---\n" + AGENT.replace("tesla-watch", "old-agent"))
    desired = states(AGENT.replace("[http]", "[http, notify]") + "---\n"
                     + AGENT.replace("tesla-watch", "new-agent"))
    plan = decide(snap(desired, applied))
    assert plan.decision == "Applied"
    assert [a.description for a in object_changes(plan)] == [
        "+ Agent/new-agent", "- Agent/old-agent", "~ Agent/tesla-watch (spec.tools)"]
    assert [a.kind for a in plan.actions] == ["manifest.create", "manifest.delete",
                                              "manifest.update", "manifest.revision"]
    assert plan.actions[-1].params["changes"] == [a.description for a in object_changes(plan)]
    assert plan.reason == "1 to create, 1 to update, 1 to delete (at rev-2)"
    same = decide(snap(desired, desired))
    assert (same.decision, object_changes(same)) == ("UpToDate", [])


def test_idempotency_keys_follow_content() -> None:
    """The same content gives the same action key; changed content a new one."""
    applied: tuple[ObjectState, ...] = ()
    first = decide(snap(states(AGENT), applied)).actions[0]
    again = decide(snap(states(AGENT), applied)).actions[0]
    changed = decide(snap(states(AGENT.replace("[http]", "[notify]")), applied)).actions[0]
    assert first.idempotency_key == again.idempotency_key != changed.idempotency_key


def test_invalid_or_empty_manifests_prune_nothing() -> None:
    """A broken push or an emptied directory never deletes what is running."""
    applied = states(AGENT)
    invalid = decide(snap((), applied, problems=("m.yaml:3:1: invalid YAML",)))
    assert invalid.decision == "Invalid"
    assert [a.kind for a in invalid.actions] == ["manifest.revision"]  # recorded, no change
    assert invalid.actions[0].params["problems"] == ["m.yaml:3:1: invalid YAML"]
    empty = decide(snap((), applied))
    assert (empty.decision, object_changes(empty)) == ("Invalid", [])
    assert empty.transition is not None
    assert "refusing to prune the 1 applied object(s)" in empty.transition.data["problems"][0]
    nothing = decide(snap((), ()))  # nothing desired and nothing applied: fine
    assert (nothing.decision, object_changes(nothing)) == ("UpToDate", [])


def test_github_source_reports_around_the_apply() -> None:
    """Changes on a GitHub source: check run in progress, the applies, check run success."""
    plan = decide(github_snap(states(AGENT), ()))
    assert [a.kind for a in plan.actions] == ["github.check_run", "manifest.create",
                                              "manifest.revision", "github.check_run"]
    start, _, _, done = plan.actions
    assert (start.params["status"], done.params["conclusion"]) == ("in_progress", "success")
    assert done.params["start_key"] == start.idempotency_key
    assert "+ Agent/tesla-watch" in done.params["output"]["summary"]
    assert {start.needs, done.needs} == {"github"}
    assert plan.transition is not None and plan.transition.to_state == "Ready"
    assert plan.transition.data["objects"] == {"Agent/tesla-watch": states(AGENT)[0].content_hash}


def test_invalid_push_reports_once_per_tree_and_opens_the_issue() -> None:
    """Invalid: a failure check run and the issue; the same tree again: nothing new."""
    problems = ("manifests/a.yaml:3:1: invalid YAML",)
    plan = decide(github_snap((), states(AGENT), problems))
    assert [a.kind for a in plan.actions] == ["manifest.revision", "github.check_run",
                                              "github.issue_upsert"]
    assert plan.actions[1].params["conclusion"] == "failure"
    assert "manifests/a.yaml:3:1" in plan.actions[2].params["body"]
    assert plan.transition is not None
    invalid = Resource("Invalid", 3, plan.transition.data)
    again = decide(github_snap((), states(AGENT), problems, current=invalid))
    assert (again.decision, again.actions) == ("StillInvalid", ())
    fixed = decide(github_snap(states(AGENT), states(AGENT), current=invalid, tree="t3"))
    assert [a.kind for a in fixed.actions] == ["github.check_run", "manifest.revision",
                                               "github.check_run", "github.issue_close"]


def test_unchanged_tree_plans_nothing() -> None:
    """The folder's tree already applied: no action, no transition."""
    unchanged = dataclasses.replace(github_snap((), states(AGENT)), unchanged=True,
                                    current=Resource("Ready", 2, {}))
    plan = decide(unchanged)
    assert (plan.decision, plan.actions, plan.transition) == ("UpToDate", (), None)


def test_recreating_a_deleted_object_applies_again() -> None:
    """Keys carry the source's state version: delete then re-create is a new action."""
    first = decide(snap(states(AGENT), (), current=Resource("Ready", 1, {})))
    later = decide(snap(states(AGENT), (), current=Resource("Ready", 3, {})))
    assert first.actions[0].idempotency_key != later.actions[0].idempotency_key


def test_change_renders_like_terraform() -> None:
    """Changes read as +, ~ (with the changed fields) and -, as Terraform shows them."""
    assert str(Change("update", "Agent", "a", ("spec.model",))) == "~ Agent/a (spec.model)"
