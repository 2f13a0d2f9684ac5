"""What blocks a pull request from merging itself, in words and in order (issue 21's judgement,
pure): every condition of the Policy's autoMerge, each on its own, then together."""

from __future__ import annotations

from dataclasses import replace

import pytest

from controller.manifests.models import AutoMerge
from reconcilers.automerge.conditions import Check, PullFacts, Review, judge

HEAD, OLD = "abc1234" + "0" * 33, "fff9999" + "0" * 33
POLICY = AutoMerge(required_checks=["test"])
GREEN = (Check("test", HEAD, "completed", "success"),)
READY = PullFacts(repo="octo/infra", number=7, state="open", head_ref="claude/7-add-x",
                  head_sha=HEAD, base_ref="main", mergeable=True, mergeable_state="clean",
                  files=("README.md",), default_branch="main")
WRITER_APPROVES = Review("dana", "APPROVED", writer=True, commit=HEAD)


def test_all_green_merges() -> None:
    judged = judge(READY, GREEN, (), POLICY)
    assert judged.mergeable and judged.blockers == () and not judged.recheck


@pytest.mark.parametrize(("pull", "policy", "why"), [
    (READY, AutoMerge(enabled=False), "auto-merge is off in the Policy (autoMerge.enabled)"),
    (replace(READY, state="closed"), POLICY, "closed"),
    (replace(READY, merged=True, state="closed"), POLICY, "merged"),
    (replace(READY, head_ref="feature/x"), POLICY,
     "feature/x matches none of autoMerge.branches (claude/*)"),
    (replace(READY, head_ref="claude/a/b"), POLICY,
     "claude/a/b matches none of autoMerge.branches (claude/*)"),  # `*` is one name
])
def test_out_of_scope_pull_requests_are_left_alone(pull: PullFacts, policy: AutoMerge,
                                                  why: str) -> None:
    judged = judge(pull, GREEN, (), policy)
    assert not judged.in_scope and not judged.mergeable and judged.why == why


@pytest.mark.parametrize(("pull", "checks", "reviews", "policy", "blocker"), [
    (replace(READY, fork=True), GREEN, (), POLICY,
     "from a fork (autoMerge.allowForks is false)"),
    (replace(READY, draft=True), GREEN, (), POLICY, "draft"),
    (replace(READY, labels=("hold", "docs")), GREEN, (), POLICY, "label `hold`"),
    (READY, (), (), POLICY, "check `test` has not run on abc1234"),
    (READY, (Check("test", HEAD, "in_progress"),), (), POLICY,
     "check `test` is in progress on abc1234"),
    (READY, (Check("test", HEAD, "completed", "failure"),), (), POLICY,
     "check `test` failure on abc1234"),
    # An older head's green never counts: the head moved after the check passed.
    (READY, (Check("test", OLD, "completed", "success"),), (), POLICY,
     "check `test` has not run on abc1234"),
    # A re-run replaces the earlier result on the same head.
    (READY, (Check("test", HEAD, "completed", "success"), Check("test", HEAD, "queued")), (),
     POLICY, "check `test` is queued on abc1234"),
    (READY, GREEN, (Review("lee", "CHANGES_REQUESTED", writer=True),), POLICY,
     "changes requested by @lee"),
    (READY, GREEN, (), AutoMerge(required_checks=["test"], required_approvals=1),
     "1 approving review(s) by a writer needed on abc1234"),
    (READY, GREEN, (Review("eve", "APPROVED", writer=False, commit=HEAD),),
     AutoMerge(required_checks=["test"], required_approvals=1),
     "1 approving review(s) by a writer needed on abc1234"),  # a reader's does not count
    (replace(READY, files=("README.md", "manifests/policy.yaml")), GREEN, (), POLICY,
     "1 approving review(s) by a writer needed on abc1234 (it changes manifests/policy.yaml "
     "(autoMerge.protectedPaths))"),
    (replace(READY, untrusted=True), GREEN, (), POLICY,
     "1 approving review(s) by a writer needed on abc1234 (its /claude task read text by someone "
     "without write permission)"),
    (replace(READY, mergeable=None, mergeable_state="unknown"), GREEN, (), POLICY,
     "GitHub is still computing whether it can be merged"),
    (replace(READY, mergeable_state="behind"), GREEN, (), POLICY,
     "behind main: the branch is updated, then its new head's checks are waited for"),
    (replace(READY, mergeable_state="behind"), GREEN, (),
     AutoMerge(required_checks=["test"], update_branch=False),
     "behind main: autoMerge.updateBranch is false"),
    (replace(READY, mergeable=False, mergeable_state="dirty"), GREEN, (), POLICY,
     "GitHub cannot merge it (dirty: conflicts with main?)"),
    (replace(READY, mergeable_state="blocked"), GREEN, (), POLICY,
     "GitHub's branch protection blocks it (a rule the Policy does not name: required "
     "reviews, checks or a merge queue)"),
])
def test_each_condition_blocks_in_words(pull: PullFacts, checks: tuple[Check, ...],
                                        reviews: tuple[Review, ...], policy: AutoMerge,
                                        blocker: str) -> None:
    judged = judge(pull, checks, reviews, policy)
    assert judged.in_scope and not judged.mergeable
    assert judged.blockers == (blocker,)


def test_what_lifts_a_blocker() -> None:
    touched = replace(READY, files=("agents/x.py",), untrusted=True)
    assert judge(touched, GREEN, (WRITER_APPROVES,), POLICY).mergeable
    changed = (Review("lee", "CHANGES_REQUESTED", writer=True), WRITER_APPROVES,
               Review("lee", "COMMENTED", writer=True))
    assert judge(READY, GREEN, changed, POLICY).blockers == ("changes requested by @lee",)
    dismissed = (*changed, Review("lee", "DISMISSED", writer=True))
    assert judge(READY, GREEN, dismissed, POLICY).mergeable
    assert judge(replace(READY, fork=True), GREEN, (), AutoMerge(
        required_checks=["test"], allow_forks=True)).mergeable
    assert judge(replace(READY, untrusted=True), GREEN, (), AutoMerge(
        required_checks=["test"], untrusted_input="allow")).mergeable
    neutral = (Check("test", HEAD, "completed", "neutral"),)
    assert judge(READY, neutral, (), POLICY).mergeable


def test_every_blocker_is_told_in_order() -> None:
    pull = replace(READY, draft=True, labels=("do-not-merge",), mergeable=None)
    judged = judge(pull, (), (Review("lee", "CHANGES_REQUESTED", writer=True),),
                   AutoMerge(required_checks=["test", "lint"]))
    assert judged.blockers == (
        "draft", "label `do-not-merge`", "check `test` has not run on abc1234",
        "check `lint` has not run on abc1234", "changes requested by @lee",
        "GitHub is still computing whether it can be merged")
    assert not judged.recheck  # other blockers' deliveries come first: no polling meanwhile
    alone = judge(replace(READY, mergeable=None), GREEN, (), POLICY)
    assert alone.recheck and alone.blockers == (
        "GitHub is still computing whether it can be merged",)


def test_with_no_required_checks_every_check_on_the_head_must_pass_and_one_must_have_run(
        ) -> None:
    """A pull request opened a moment ago has no check yet: it is not merged on that."""
    policy = AutoMerge()
    assert judge(READY, (), (), policy).blockers == (
        "no check has run on abc1234 (autoMerge.requiredChecks names none, so at least one "
        "must pass)",)
    lint_failed = (Check("test", HEAD, "completed", "success"),
                   Check("lint", HEAD, "completed", "failure"),
                   Check("old", OLD, "completed", "failure"))
    assert judge(READY, lint_failed, (), policy).blockers == ("check `lint` failure on abc1234",)
    assert judge(READY, GREEN, (), policy).mergeable


@pytest.mark.parametrize(("checks", "blocker"), [
    # A commit status's success never hides a failed check run of the same name...
    ((Check("test", HEAD, "completed", "failure"), Check("test", HEAD, "completed", "success")),
     "check `test` failure on abc1234"),
    # ... nor another app's success one still running.
    ((Check("test", HEAD, "completed", "success"), Check("test", HEAD, "in_progress")),
     "check `test` is in progress on abc1234"),
])
def test_every_report_of_a_required_check_must_pass(checks: tuple[Check, ...],
                                                    blocker: str) -> None:
    assert judge(READY, checks, (), POLICY).blockers == (blocker,)
    assert judge(READY, checks, (), AutoMerge()).blockers == (blocker,)  # none named too


def test_an_approval_counts_for_the_head_it_was_given_on() -> None:
    """A writer approved head A; head B (a new workflow) would otherwise merge on it."""
    touched = replace(READY, files=(".github/workflows/ci.yml",))
    old = Review("dana", "APPROVED", writer=True, commit=OLD)
    assert judge(touched, GREEN, (old,), POLICY).blockers == (
        "1 approving review(s) by a writer needed on abc1234 (it changes "
        ".github/workflows/ci.yml (autoMerge.protectedPaths))",)
    assert judge(touched, GREEN, (WRITER_APPROVES,), POLICY).mergeable


def test_the_base_must_be_the_default_branch_unless_bases_are_named() -> None:
    into = replace(READY, base_ref="production")
    assert judge(into, GREEN, (), POLICY).why == (
        "its base production matches none of autoMerge.bases (main)")
    assert judge(into, GREEN, (), AutoMerge(required_checks=["test"],
                                            bases=["production"])).mergeable


def test_labels_block_in_any_case_and_names_cannot_speak_for_the_app() -> None:
    assert judge(replace(READY, labels=("HOLD",)), GREEN, (), POLICY).blockers == (
        "label `HOLD`",)
    sneaky = (Check("x` ok\n@octo-org/admins see [here](https://evil)", HEAD, "completed",
                    "failure"),)
    [blocker] = judge(READY, sneaky, (), AutoMerge()).blockers
    assert "`x' ok @\u2060octo-org/admins" in blocker and "\n" not in blocker


def test_a_branch_behind_is_updated_only_when_nothing_else_blocks() -> None:
    behind = replace(READY, mergeable_state="behind")
    assert judge(behind, GREEN, (), POLICY).behind
    held = judge(replace(behind, labels=("hold",)), GREEN, (), POLICY)
    assert not held.behind and held.blockers[-1] == (
        "behind main: it is updated once nothing else blocks")
    assert not judge(replace(behind, fork=True), GREEN, (), POLICY).behind


def test_what_github_listed_in_part_blocks() -> None:
    partial = replace(READY, unread=("commit statuses",))
    assert judge(partial, GREEN, (), POLICY).blockers == (
        "not all commit statuses could be read (GitHub listed part of them)",)
