"""`/claude` tasks, pure: the path rules of the Policy's `claude` section, branch names and keys,
each state's next step (`decide_task`), and what the intake does with work, status, retry and
cancel."""

from __future__ import annotations

from dataclasses import replace

import pytest

from controller.manifests.models import PolicySpec
from controller.reconcile.context import ActionRecord
from controller.reconcile.errors import InvalidTransition
from controller.reconcile.policy import Policy
from reconcilers.claude.command_intake import CommandSnapshot, decide_command
from reconcilers.claude.commands import parse
from reconcilers.claude.task_actions import (
    TaskInfo,
    branch_name,
    path_refused,
    task_key,
    task_ref,
)
from reconcilers.claude.tasks import TaskSnapshot, _step, decide_task, push_key, work_key

ALLOW, DENY = ("**",), (".github/workflows/**",)


@pytest.mark.parametrize(("path", "allow", "deny", "refused"), [
    ("README.md", ALLOW, DENY, None),
    ("docs/a/b.md", ALLOW, DENY, None),
    (".github/workflows/ci.yml", ALLOW, DENY,
     ".github/workflows/ci.yml is denied by Policy claude.deny (.github/workflows/**)"),
    (".github/workflows/sub/x.yml", ALLOW, DENY, "denied"),
    (".github/CODEOWNERS", ALLOW, DENY, None),
    ("src/app.py", ("docs/**", "*.md"), (), "src/app.py is outside Policy claude.allow "
                                            "(docs/**, *.md)"),
    ("README.md", ("docs/**", "*.md"), (), None),
    ("docs/x/README.md", ("*.md",), (), "outside"),  # `*` stays within one name
    ("docs/x/README.md", ("**/*.md",), (), None),
    ("../etc/passwd", ALLOW, DENY, "not a plain path"),
    ("/etc/passwd", ALLOW, DENY, "not a plain path"),
    ("a//b", ALLOW, DENY, "not a plain path"),
    (".git/config", ALLOW, DENY, "not a plain path"),
    ("sub/.git/hooks/pre-commit", ALLOW, DENY, "not a plain path"),
    ("", ALLOW, DENY, "not a plain path"),
    ("docs/private/a\nb.md", ("docs/*/*",), ("docs/private/**",), "not a plain path"),
    ("a\x00b.md", ALLOW, DENY, "not a plain path"),
])
def test_path_rules(path: str, allow: tuple[str, ...], deny: tuple[str, ...],
                    refused: str | None) -> None:
    found = path_refused(path, allow, deny)
    if refused is None:
        assert found is None
    else:
        assert found is not None and refused in found


def test_names_and_keys() -> None:
    assert branch_name(12, "Add a README section about X!") == \
        "claude/12-add-a-readme-section-about-x"
    assert branch_name(3, "!!!") == "claude/3-change"
    assert len(branch_name(3, "word " * 40)) <= len("claude/3-") + 40
    key = task_key("octo-org/infra", 11, 501)
    assert key == "task:octo-org/infra#11@501" and task_ref(key) == ("octo-org/infra", 11, 501)
    assert task_ref("task:nonsense") is None


TASK = TaskInfo(id=7, repo="octo-org/infra", issue=11, comment_id=501, installation_id=42,
                on_pull=False, requested_by="dana-ops", command="add a README section",
                state="AUTHORIZED", reason="allowed")
POLICY = Policy(providers=frozenset({"github", "anthropic"}))
CHANGE = {"README.md": {"content": "new\n", "mode": "100644"}}


def kinds(plan: object) -> list[str]:
    return [a.kind for a in plan.actions]  # type: ignore[attr-defined]


def test_each_state_has_one_next_step() -> None:
    work = decide_task(TaskSnapshot(TASK.key, TASK), POLICY)
    assert (work.decision, kinds(work)) == ("Working", ["task.step", "claude.task"])
    assert work.actions[0].params["state"] == "WORKING"  # before the session is handed over
    assert work.actions[1].params["limits"]["deny"] == [".github/**", ".gitmodules",
                                                        "manifests/**", "agents/**"]
    working = replace(TASK, state="WORKING")
    resumed = decide_task(TaskSnapshot(TASK.key, working), POLICY)
    assert (resumed.decision, kinds(resumed)) == ("Working", ["claude.task"])

    pending = replace(TASK, state="WORKING", change=CHANGE, branch="claude/11-x",
                      base_sha="a" * 40, base_branch="main", title="Add X", summary="adds X")
    push = decide_task(TaskSnapshot(TASK.key, pending), POLICY)
    assert (push.decision, kinds(push)) == ("Pushing", ["github.push_change"])
    params = push.actions[0].params
    assert params["branch"] == "claude/11-x" and params["body"].startswith("Closes #11")
    assert "p38-task: 7" in params["message"]

    pushed = ActionRecord(push_key(7), "github.push_change", "succeeded", TASK.key, {
        "pull_number": 12, "pull_url": "https://github.com/o/r/pull/12",
        "commit_sha": "b" * 40, "branch": "claude/11-x"})
    opened = decide_task(TaskSnapshot(TASK.key, pending, push=pushed), POLICY)
    assert (opened.decision, kinds(opened)) == ("PrOpened", ["task.opened"])

    refused = replace(pushed, result={"refused": "GitHub POST ...: 422 Reference"})
    failed = decide_task(TaskSnapshot(TASK.key, pending, push=refused), POLICY)
    assert (failed.decision, kinds(failed)) == ("Failed", ["task.step"])
    assert failed.actions[0].params["state"] == "FAILED"

    done = replace(pending, state="PR_OPENED", pull_number=12,
                   pull_url="https://github.com/o/r/pull/12")
    answer = decide_task(TaskSnapshot(TASK.key, done), POLICY)
    assert (answer.decision, kinds(answer), answer.status) == ("PrOpened", ["github.comment"],
                                                               "Ready")
    assert "opened https://github.com/o/r/pull/12" in answer.actions[0].params["body"]
    assert answer.actions[0].idempotency_key == "command-reply:octo-org/infra@501"

    gone = decide_task(TaskSnapshot(TASK.key, None), POLICY)
    assert gone.forget


def test_a_session_returns_its_end_and_the_task_moves_from_it() -> None:
    """The session writes no state: its result says how it ended, and the plan moves the task
    (FAILED with the session's reason); a session that ended with a change leads to the push."""
    working = replace(TASK, state="WORKING")
    ended = ActionRecord(work_key(7), "claude.task", "succeeded", TASK.key, {
        "task": 7, "ended": "FAILED", "reason": "limit reached: too many files"})
    failed = decide_task(TaskSnapshot(TASK.key, working, work=ended), POLICY)
    assert (failed.decision, kinds(failed)) == ("Failed", ["task.step"])
    assert failed.actions[0].params == {"task_id": 7, "state": "FAILED",
                                        "reason": "limit reached: too many files"}
    held = ActionRecord(work_key(7), "claude.task", "held", TASK.key, None)
    again = decide_task(TaskSnapshot(TASK.key, working, work=held), POLICY)
    assert kinds(again) == ["claude.task"]  # planned again; WORKING already


def test_a_move_the_machine_refuses_is_never_planned() -> None:
    """A plan that would move a task where its machine does not allow stops (InvalidTransition)
    instead of reaching the store."""
    with pytest.raises(InvalidTransition, match="task: AUTHORIZED -> PR_OPENED"):
        _step(TASK, "PR_OPENED", "no push yet")


def test_no_key_or_no_app_is_a_dry_run_saying_what_it_would_do() -> None:
    plan = decide_task(TaskSnapshot(TASK.key, TASK), Policy(providers=frozenset({"github"})))
    assert (plan.decision, kinds(plan)) == ("DryRun", ["task.step"])
    assert plan.actions[0].params["state"] == "DRY_RUN"
    assert plan.reason.startswith("no ANTHROPIC_API_KEY: would have asked claude-sonnet-5-5 "
                                  "to 'add a README section' on octo-org/infra")


def snapshot(body: str, **fields: object) -> CommandSnapshot:
    return replace(CommandSnapshot(
        "command:octo-org/infra#11@900", "octo-org/infra", issue=11, comment_id=900,
        installation=42, command=parse(body), login="dana-ops", association="MEMBER",
        permission="write"), **fields)


def test_intake_opens_retries_and_cancels_tasks() -> None:
    policy = Policy(spec=PolicySpec())
    work = decide_command(snapshot("/claude add X"), policy)
    assert kinds(work) == ["task.open", "github.reaction"]
    assert work.enqueue == ("task:octo-org/infra#11@900",)
    assert work.actions[0].params["state"] == "AUTHORIZED"

    refused = decide_command(snapshot("/claude add X", permission="read"), policy)
    assert kinds(refused) == ["task.open", "github.comment"]
    assert refused.actions[0].params["state"] == "REFUSED" and not refused.enqueue

    failed = replace(TASK, state="FAILED", reason="limit reached")
    retry = decide_command(snapshot("/claude retry", tasks=(failed,)), policy)
    assert kinds(retry) == ["task.open", "github.reaction"]
    assert retry.actions[0].params["command"] == "add a README section"
    assert retry.actions[0].params["retry_of"] == 7

    busy = decide_command(snapshot("/claude retry", tasks=(replace(TASK, state="WORKING"),)),
                          policy)
    assert "task 7 is still WORKING" in busy.actions[-1].params["body"]

    cancel = decide_command(snapshot("/claude cancel", tasks=(TASK,)), policy)
    assert kinds(cancel) == ["task.step", "github.reaction", "github.comment"]
    assert cancel.actions[0].params["state"] == "CANCELLED"
    assert cancel.enqueue == (TASK.key,)

    nothing = decide_command(snapshot("/claude cancel"), policy)
    assert "no /claude task to cancel" in nothing.actions[-1].params["body"]

    status = decide_command(snapshot("/claude status", tasks=(replace(
        TASK, state="PR_OPENED", pull_url="https://github.com/o/r/pull/12", usd=0.0123,
        tokens=4567, tool_calls=3),)), policy)
    body = status.actions[-1].params["body"]
    assert "| 7 | add a README section by @dana-ops | PR_OPENED: allowed | " \
        "https://github.com/o/r/pull/12 | 4,567 | $0.0123 | 3 |" in body
