"""Reconcilers declare the deliveries they watch; the router combines the declarations into
the keys a delivery is a hint about (the handlers are given `Router.keys`)."""

from __future__ import annotations

from typing import Any

from controller.reconcile.reconciler import Router
from reconcilers import default_registry


def keys(event: str, payload: dict[str, Any], *, folder: str = "manifests/",
         source: str = "github") -> tuple[str, ...]:
    action = payload.get("action")
    router = Router.of(default_registry(manifests_folder=folder).values())
    return router.keys(source, event, action if isinstance(action, str) else None, payload)


def test_missing_and_unexpected_fields_are_tolerated() -> None:
    """Odd shapes derive no key instead of raising; extra fields are ignored."""
    assert keys("pull_request", {"repository": {"full_name": "a/b"},
                                               "pull_request": {"number": "7"}}) == ()
    assert keys("check_run", {"repository": {"full_name": "a/b"},
                                            "check_run": {"pull_requests": None}}) == ()
    assert keys("push", {"repository": "not-an-object"}) == ()
    assert keys("brand_new_event", {"repository": {"full_name": "a/b"},
                                                  "novel": {"x": 1}}) == ()
    comment_on_pull = {"repository": {"full_name": "a/b"},
                       "issue": {"number": 5, "pull_request": {"url": "u"}}}
    assert keys("issue_comment", comment_on_pull) == ("pull:a/b#5",)


def _push(paths: list[str], *, ref: str = "refs/heads/main", **extra: object) -> dict[str, object]:
    return {"ref": ref, "before": "a" * 40, "after": "b" * 40,
            "repository": {"full_name": "a/b", "default_branch": "main"},
            "commits": [{"id": "c1", "added": [], "removed": [], "modified": paths}], **extra}


def test_pushes_enqueue_the_manifest_source_only_when_they_may_touch_it() -> None:
    """Default branch + a path under the folder (or a push that cannot say) -> manifests key."""
    assert "manifests:a/b" in keys("push", _push(["manifests/x.yaml"]))
    assert "manifests:a/b" not in keys("push", _push(["README.md"]))
    assert "manifests:a/b" not in keys("push", _push(["manifests/x.yaml"],
                                                     ref="refs/heads/feature"))
    assert "manifests:a/b" in keys("push", _push(["deploy/m/x.yaml"]), folder="deploy/m/")
    assert "manifests:a/b" in keys("push", _push(["README.md"], forced=True))
    assert "manifests:a/b" in keys("push", {**_push([]), "commits": []})  # cannot say
    assert "manifests:a/b" not in keys("push", _push(["manifests/x.yaml"], deleted=True))


def test_pull_request_updates_are_planned_and_closing_is_not() -> None:
    """Opening or updating a pull request plans it; closing or reviewing does not."""
    pull = {"repository": {"full_name": "a/b"}, "pull_request": {"number": 4}}
    assert "plan:a/b#4" in keys("pull_request", {**pull, "action": "synchronize"})
    assert "plan:a/b#4" not in keys("pull_request", {**pull, "action": "closed"})
    assert "plan:a/b#4" not in keys("pull_request_review",
                                                  {**pull, "action": "submitted"})


def test_repositories_added_to_an_installation_are_enqueued() -> None:
    """Repositories added to an installation have their manifest source enqueued."""
    payload = {"action": "added", "installation": {"id": 9},
               "repositories_added": [{"id": 1, "full_name": "a/b"}, {"id": 2}]}
    assert keys("installation_repositories", payload) == (
        "installation:9", "manifests:a/b")
