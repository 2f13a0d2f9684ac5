"""The pull request reconciler's decisions on what GitHub said (pure): merge with the judged
head, update a branch that is behind, wait with the blockers shown, look again only when a
refused merge's facts changed, delete the merged branch, leave out-of-scope pull requests be."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from controller.manifests.models import AutoMerge, PolicySpec
from controller.reconcile.context import ActionRecord
from controller.reconcile.plan import Resource
from controller.reconcile.policy import Policy
from reconcilers.automerge.actions import CHECK_NAME
from reconcilers.automerge.conditions import Check, PullFacts, Review
from reconcilers.automerge.facts import Seen, protected_globs
from reconcilers.automerge.pulls import (
    MAX_TRIES,
    RECHECK_SECONDS,
    SAFETY_SECONDS,
    AutoMergePulls,
    PullSnapshot,
    merge_key,
)

REPO, HEAD, NEW = "octo/infra", "a" * 40, "b" * 40
KEY = f"pull:{REPO}#7"
SPEC = PolicySpec(auto_merge=AutoMerge(required_checks=["test"]))
POLICY = Policy(spec=SPEC, governed_by=f"Policy/default in {REPO}")
PULL = PullFacts(repo=REPO, number=7, state="open", head_ref="claude/7-x", head_sha=HEAD,
                 base_ref="main", mergeable=True, mergeable_state="clean",
                 default_branch="main")
GLOBS = tuple(protected_globs(SPEC.auto_merge, "manifests/"))
GREEN = Seen(PULL, title="Add X", globs=GLOBS,
             checks=(Check("test", HEAD, "completed", "success"),))
RECONCILER = AutoMergePulls()


def snapshot(seen: Seen, *, data: dict[str, Any] | None = None, state: str = "open",
             **records: ActionRecord | None) -> PullSnapshot:
    current = Resource(state, 3, data) if data is not None else None
    return PullSnapshot(key=KEY, current=current, recent=(), seen=seen, installation=42,
                        **records)  # type: ignore[arg-type]


def kinds(plan: Any) -> list[str]:
    return [a.kind for a in plan.actions]


def record(key: str, result: dict[str, Any], status: str = "succeeded") -> ActionRecord:
    return ActionRecord(key, "github.merge", status, KEY, result)


def test_all_green_merges_the_judged_head_and_looks_again_at_once() -> None:
    plan = RECONCILER.decide(snapshot(GREEN), POLICY)
    assert plan.decision == "Merging" and plan.requeue_after == 0.0
    assert kinds(plan) == ["github.automerge_check", "github.merge"]
    check, merge = plan.actions
    assert merge.params["sha"] == HEAD and merge.params["method"] == "squash"
    assert merge.params["title"] == "Add X (#7)"
    assert merge.idempotency_key == merge_key(REPO, 7, HEAD)
    assert check.params["status"] == "in_progress"
    assert plan.transition is not None
    assert plan.transition.data["automerge"]["attempt"]["sha"] == HEAD


def test_blockers_are_shown_in_words_and_wait_for_a_delivery() -> None:
    seen = replace(GREEN, pull=replace(PULL, labels=("hold",)),
                   checks=(Check("test", HEAD, "in_progress"),))
    plan = RECONCILER.decide(snapshot(seen), POLICY)
    assert plan.decision == "Waiting" and plan.requeue_after == SAFETY_SECONDS
    [check] = plan.actions
    assert check.kind == "github.automerge_check"
    assert check.params["output"]["summary"] == ("- label `hold`\n"
                                                 "- check `test` is in progress on aaaaaaa")
    assert plan.transition.data["automerge"]["blockers"] == [  # type: ignore[union-attr]
        "label `hold`", "check `test` is in progress on aaaaaaa"]


def test_a_check_run_already_showing_the_same_words_is_not_written_again() -> None:
    seen = replace(GREEN, checks=())
    first = RECONCILER.decide(snapshot(seen), POLICY)
    assert first.transition is not None
    again = RECONCILER.decide(snapshot(seen, data=dict(first.transition.data)), POLICY)
    assert again.actions == () and again.transition is None


def test_github_still_computing_is_looked_at_again_soon() -> None:
    seen = replace(GREEN, pull=replace(PULL, mergeable=None, mergeable_state="unknown"))
    plan = RECONCILER.decide(snapshot(seen), POLICY)
    assert plan.requeue_after == RECHECK_SECONDS and "github.merge" not in kinds(plan)


def test_behind_its_base_is_updated_with_the_expected_head() -> None:
    seen = replace(GREEN, pull=replace(PULL, mergeable_state="behind"))
    plan = RECONCILER.decide(snapshot(seen), POLICY)
    assert kinds(plan) == ["github.automerge_check", "github.update_branch"]
    assert plan.actions[1].params["expected_head_sha"] == HEAD


def test_a_refused_merge_is_tried_again_only_when_something_changed() -> None:
    first = RECONCILER.decide(snapshot(GREEN), POLICY)
    assert first.transition is not None
    data = dict(first.transition.data)
    refused = record(merge_key(REPO, 7, HEAD), {"merged": False, "status": 405,
                                               "refused": "GitHub answered 405: not mergeable"})
    plan = RECONCILER.decide(snapshot(GREEN, data=data, attempt=refused,
                                      first_attempt=refused), POLICY)
    assert "github.merge" not in kinds(plan) and plan.requeue_after == SAFETY_SECONDS
    assert "GitHub refused the merge of aaaaaaa: GitHub answered 405" in plan.reason
    # A new approval changes what it was judged on: one more try, under a key of its own.
    approved = replace(GREEN, reviews=(Review("dana", "APPROVED", writer=True, commit=HEAD),))
    plan = RECONCILER.decide(snapshot(approved, data=data, attempt=refused,
                                      first_attempt=refused), POLICY)
    [merge] = [a for a in plan.actions if a.kind == "github.merge"]
    assert merge.idempotency_key == merge_key(REPO, 7, HEAD, 1)


def test_a_refusal_is_forgotten_once_anything_changed_even_if_it_changes_back() -> None:
    """Made a draft during the merge (405), then ready again: the facts are as they were when
    GitHub refused, but the refusal was about the draft: merged on the next look."""
    first = RECONCILER.decide(snapshot(GREEN), POLICY)
    assert first.transition is not None
    refused = record(merge_key(REPO, 7, HEAD), {"merged": False, "refused": "still a draft"})
    draft = replace(GREEN, pull=replace(PULL, draft=True))
    middle = RECONCILER.decide(snapshot(draft, data=dict(first.transition.data),
                                        attempt=refused), POLICY)
    assert middle.transition is not None and "github.merge" not in kinds(middle)
    again = RECONCILER.decide(snapshot(GREEN, data=dict(middle.transition.data)), POLICY)
    assert [a.idempotency_key for a in again.actions if a.kind == "github.merge"] == [
        merge_key(REPO, 7, HEAD, 1)]


def test_a_head_github_keeps_refusing_waits_for_a_person_after_five_tries() -> None:
    data: dict[str, Any] = {}
    seen = GREEN
    for n in range(MAX_TRIES):
        plan = RECONCILER.decide(snapshot(seen, data=data or None, attempt=record(
            merge_key(REPO, 7, HEAD, n - 1) if n else "none", {"merged": False,
                                                               "refused": "405"})
            if n else None), POLICY)
        assert [a.idempotency_key for a in plan.actions if a.kind == "github.merge"] == [
            merge_key(REPO, 7, HEAD, n)]
        assert plan.transition is not None
        data = dict(plan.transition.data)
        seen = replace(seen, reviews=(Review(f"r{n}", "COMMENTED", writer=False),))
    last = record(merge_key(REPO, 7, HEAD, MAX_TRIES - 1), {"merged": False, "refused": "405"})
    plan = RECONCILER.decide(snapshot(replace(seen, title="changed"), data=data,
                                      attempt=last), POLICY)
    assert "github.merge" not in kinds(plan)
    assert f"GitHub refused the merge of aaaaaaa {MAX_TRIES} times" in plan.reason


def test_a_merge_made_but_not_yet_seen_is_never_sent_again() -> None:
    first = RECONCILER.decide(snapshot(GREEN), POLICY)
    assert first.transition is not None
    done = record(merge_key(REPO, 7, HEAD), {"merged": True, "commit": "c" * 40})
    plan = RECONCILER.decide(snapshot(GREEN, data=dict(first.transition.data), attempt=done),
                             POLICY)
    assert "github.merge" not in kinds(plan) and plan.requeue_after == RECHECK_SECONDS
    assert "GitHub does not say so yet" in plan.reason


def test_a_check_run_whose_words_come_back_is_written_again() -> None:
    held = replace(GREEN, pull=replace(PULL, labels=("hold",)))
    a = RECONCILER.decide(snapshot(held), POLICY)
    assert a.transition is not None
    b = RECONCILER.decide(snapshot(replace(held, checks=()), data=dict(a.transition.data)),
                          POLICY)
    assert b.transition is not None
    back = RECONCILER.decide(snapshot(held, data=dict(b.transition.data)), POLICY)
    keys = [p.actions[0].idempotency_key for p in (a, b, back)]
    assert len(set(keys)) == 3 and a.actions[0].params == back.actions[0].params


def test_merged_by_us_completes_the_check_and_deletes_the_branch() -> None:
    first = RECONCILER.decide(snapshot(GREEN), POLICY)
    assert first.transition is not None
    done = record(merge_key(REPO, 7, HEAD), {"merged": True, "commit": "c" * 40,
                                            "method": "squash", "by_us": True})
    merged = Seen(replace(PULL, state="closed", merged=True), merge_commit="c" * 40,
                  globs=GLOBS)
    plan = RECONCILER.decide(snapshot(merged, data=dict(first.transition.data), attempt=done,
                                      first_attempt=done), POLICY)
    assert plan.decision == "Merged"
    assert kinds(plan) == ["github.automerge_check", "github.delete_branch"]
    check, delete = plan.actions
    assert (check.params["conclusion"], delete.params["branch"], delete.params["sha"]) == (
        "success", "claude/7-x", HEAD)
    assert plan.transition is not None and plan.transition.to_state == "merged"
    assert plan.transition.data["automerge"]["merge"]["by"] == "project38"


def test_without_a_policy_manifest_nothing_is_merged_or_shown() -> None:
    plan = RECONCILER.decide(snapshot(GREEN), Policy(spec=SPEC))
    assert plan.decision == "OutOfScope" and plan.actions == ()


def test_outside_the_branches_nothing_is_shown() -> None:
    seen = replace(GREEN, pull=replace(PULL, head_ref="feature/x"))
    plan = RECONCILER.decide(snapshot(seen), POLICY)
    assert plan.decision == "OutOfScope" and plan.actions == ()


def test_an_approval_requirement_is_said_on_the_check_run() -> None:
    policy = replace(POLICY, approval_required=frozenset({"github.merge"}))
    plan = RECONCILER.decide(snapshot(GREEN), policy)
    check = plan.actions[0]
    assert f"p38 approve {merge_key(REPO, 7, HEAD)}" in check.params["output"]["summary"]
    assert CHECK_NAME in check.description
