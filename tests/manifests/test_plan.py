"""The pure plan: create, update (with changed fields), delete; invalid or empty prunes nothing."""

from __future__ import annotations

from controller.manifests.loader import parse_text
from controller.manifests.state import desired_states
from reconcilers.manifests import Change, ManifestSnapshot, ObjectState, changed_fields, decide
from tests.manifests.test_loader import AGENT


def states(text: str) -> tuple[ObjectState, ...]:
    loaded, problems = parse_text(text, "m.yaml")
    assert problems == []
    from controller.manifests.loader import ManifestSet

    return desired_states(ManifestSet(objects=loaded))


def snap(desired: tuple[ObjectState, ...], applied: tuple[ObjectState, ...],
         problems: tuple[str, ...] = ()) -> ManifestSnapshot:
    return ManifestSnapshot("local", "rev-2", desired, problems, applied)


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
    assert plan.decision == "Changes"
    assert [a.description for a in plan.actions] == [
        "+ Agent/new-agent", "- Agent/old-agent", "~ Agent/tesla-watch (spec.tools)"]
    assert [a.kind for a in plan.actions] == ["manifest.create", "manifest.delete",
                                              "manifest.update"]
    assert plan.reason == "1 to create, 1 to update, 1 to delete"
    same = decide(snap(desired, desired))
    assert (same.decision, same.actions) == ("UpToDate", ())


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
    assert (invalid.decision, invalid.actions) == ("Invalid", ())
    empty = decide(snap((), applied))
    assert (empty.decision, empty.actions) == ("UpToDate", ())
    assert "nothing is pruned" in empty.reason


def test_change_renders_like_terraform() -> None:
    assert str(Change("update", "Agent", "a", ("spec.model",))) == "~ Agent/a (spec.model)"
