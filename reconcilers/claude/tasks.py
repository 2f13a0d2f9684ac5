"""`/claude` tasks (`task:owner/repo#N@COMMENT`): an authorised work command becomes one pull
request.

The task record (`claude_tasks`, provider `tasks`) holds its state, declared in
`reconcilers/claude/lifecycle.py`: AUTHORIZED (recorded by the command intake) -> WORKING (moved
here, in the plan that hands Claude's session to a session worker: `claude.task`) -> PR_OPENED
once the change it finished with is pushed (`github.push_change`: a `claude/` branch, one
commit, the pull request) | FAILED (a limit or the model, from the session's result; a refused
push) | CANCELLED (`/claude cancel`) | DRY_RUN (no Anthropic key or no App credentials:
recorded with what it would have done). The session writes no state: every move is planned
here (`task.step`, `task.opened`). Every step is one reconcile, so each is in the audit with
its reason; the push is its own action, so the killswitch holds it (Blocked) and `/claude
resume` releases it. A finished task answers the command once in its thread, then is Ready.
No I/O of its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from controller.reconcile.context import ActionRecord, ObserveContext
from controller.reconcile.fsm import StateMachine
from controller.reconcile.plan import Action, Plan
from controller.reconcile.reconciler import Reconciler
from reconcilers.claude.command_intake import reply_action
from reconcilers.claude.lifecycle import ACTIVE, TASK_MACHINE
from reconcilers.claude.task_actions import (
    TASKS,
    FinishTask,
    PushChange,
    StepTask,
    TaskInfo,
    TaskLimits,
    WorkTask,
    marker,
    task_ref,
)

if TYPE_CHECKING:
    from controller.reconcile.policy import Policy


@dataclass(frozen=True)
class TaskSnapshot:
    key: str
    task: TaskInfo | None
    work: ActionRecord | None = None
    push: ActionRecord | None = None
    gave_up: str | None = None  # why its key gave up, when the resync brings it back


def work_key(task_id: int) -> str:
    return f"task-work:{task_id}"


def push_key(task_id: int) -> str:
    return f"task-push:{task_id}"


class Tasks(Reconciler):
    kind: ClassVar[str] = "task"
    machine: ClassVar[StateMachine | None] = TASK_MACHINE  # moved by its plans only
    deadline: ClassVar[float | None] = 1800.0  # Claude's whole session is one action
    resync: ClassVar[bool] = True  # a task whose key gave up comes back, and ends FAILED

    def source(self, key: str) -> str | None:
        ref = task_ref(key)
        return ref[0] if ref else None

    async def observe(self, ctx: ObserveContext, key: str) -> TaskSnapshot:
        ref = task_ref(key)
        if ref is None:
            return TaskSnapshot(key, None)
        task = await ctx.reads(TASKS).by_comment(ref[0], ref[2])
        if task is None or task.state not in ACTIVE:
            return TaskSnapshot(key, task)
        push = await ctx.action(push_key(task.id)) if task.change else None
        work = None if task.change else await ctx.action(work_key(task.id))
        own = await ctx.statuses([key])
        gave_up = own[0].message if own and own[0].reason == "GaveUp" else None
        return TaskSnapshot(key, task, work=work, push=push, gave_up=gave_up)

    def decide(self, snapshot: TaskSnapshot, policy: Policy) -> Plan:
        return decide_task(snapshot, policy)


def decide_task(s: TaskSnapshot, policy: Policy) -> Plan:
    """The next step of one task (pure)."""
    t = s.task
    if t is None:
        return Plan("Gone", f"{s.key}: no task is recorded for it", forget=True)
    # An ended task is answered once, then forgotten as an object (the task keeps its record,
    # /api/tasks shows it), so the resync does not look at every task ever again.
    if t.state == "PR_OPENED":
        return Plan("PrOpened", t.reason, actions=_answer(t, (
            f"{t.pull_done} {t.pull_url or f'#{t.pull_number}'}: {t.title or ''}\n\n"
            f"{_figures(t)}")), revision=t.commit_sha, forget=True)
    if t.state == "FAILED":
        return Plan("Failed", t.reason, actions=_answer(t, (
            f"the task ended without a pull request: {t.reason}\n\n{_figures(t)}\n\n"
            "Nothing was written to the repository. `/claude retry` tries again.")),
            status="Stalled", forget=True)
    if t.state == "CANCELLED":
        return Plan("Cancelled", t.reason, actions=_answer(t, (
            f"cancelled: {t.reason}; nothing was written to the repository.")), forget=True)
    if t.state == "DRY_RUN":
        return Plan("DryRun", t.reason, actions=_answer(t, (
            f"recorded as a dry run, nothing was done: {t.reason}")), status="Blocked")
    if t.state == "REFUSED":
        return Plan("Refused", t.reason, forget=True)  # the intake answered it
    if t.state not in ACTIVE:  # RECEIVED: opened and moved on in one transaction, never seen
        return Plan("NotOpened", f"task {t.id} is {t.state}", status="Stalled", forget=True)
    if s.gave_up is not None:  # its key gave up: the task ends, and can be retried
        why = f"the controller gave up on it: {s.gave_up}"
        return Plan("Failed", why, actions=(_step(t, "FAILED", why[:2000]),),
                    requeue_after=0.0, status="Reconciling")
    missing = [why for provider, why in (("anthropic", "no ANTHROPIC_API_KEY"),
                                         ("github", "no GitHub App credentials"))
               if not policy.can_use(provider)]
    if missing and not t.change:
        would = (f"{'; '.join(missing)}: would have asked {policy.spec.claude.model} to "
                 f"{t.command!r} on {t.repo} and opened a pull request from a claude/ branch")
        return Plan("DryRun", would, actions=(_step(t, "DRY_RUN", would),),
                    requeue_after=0.0, status="Reconciling")
    if not t.change:
        return _work(s, t, policy)
    return _push(s, t)


def _work(s: TaskSnapshot, t: TaskInfo, policy: Policy) -> Plan:
    ended = s.work.result if s.work is not None and s.work.status == "succeeded" else None
    if ended is not None and ended.get("ended") == "FAILED":  # the session's own verdict
        why = str(ended.get("reason") or "Claude's session ended without a change")
        return Plan("Failed", why, actions=(_step(t, "FAILED", why),), requeue_after=0.0,
                    status="Reconciling")
    if s.work is not None and s.work.status == "succeeded":
        # A session ends with a change or a verdict: what it did is about to be read.
        return Plan("Working", "Claude's session ended; reading its outcome", requeue_after=5.0,
                    status="Reconciling")
    c = policy.spec.claude
    limits = TaskLimits(model=c.model, allow=tuple(c.allow), deny=tuple(c.deny),
                        max_files=c.max_files, max_bytes=c.max_bytes, max_tokens=c.max_tokens,
                        max_usd=c.max_usd, max_tool_calls=c.max_tool_calls)
    work = WorkTask(task_id=t.id, key=t.key, limits=limits).action(
        work_key(t.id), description=f"Claude works on task {t.id}: {t.command[:80]!r}")
    # WORKING first (the executor runs a plan's actions in order and stops at the job it
    # queues), so the session saves its turns and its change on a WORKING task.
    start = (_step(t, "WORKING", f"Claude ({c.model}) is working"),) \
        if t.state == "AUTHORIZED" else ()
    return Plan("Working", f"task {t.id}: Claude ({c.model}) works on {t.repo}",
                actions=(*start, work), requeue_after=0.0, status="Reconciling")


def _push(s: TaskSnapshot, t: TaskInfo) -> Plan:
    assert t.change is not None and t.installation_id is not None
    result = s.push.result if s.push is not None and s.push.status == "succeeded" else None
    if result is not None and result.get("refused"):
        why = f"GitHub refused the change: {result['refused']}"
        return Plan("Failed", why, actions=(_step(t, "FAILED", why),), requeue_after=0.0,
                    status="Reconciling")
    if result is not None:
        opened = FinishTask(task_id=t.id, pull_number=int(result["pull_number"]),
                            pull_url=str(result["pull_url"]),
                            commit_sha=str(result["commit_sha"]),
                            reason=f"{result['commit_sha'][:12]} on {result['branch']}, "
                                   f"pull request #{result['pull_number']}")
        return Plan("PrOpened", opened.reason, actions=(opened.action(
            f"task-opened:{t.id}", description=f"task {t.id}: PR_OPENED"),),
            requeue_after=0.0, status="Reconciling")
    assert t.branch is not None and t.base_sha is not None and t.base_branch is not None
    files = sorted(t.change)
    title = t.title or t.command[:72]
    closes = (f"Follows up #{t.issue}." if t.on_pull else f"Closes #{t.issue}")
    listing = "\n".join(
        f"- `{path}` ({'deleted' if t.change[path].get('content') is None else 'written'})"
        for path in files)
    untrusted = (f"**Untrusted input**: this change was made from text by someone without "
                 f"write permission here ({', '.join('@' + u for u in t.untrusted_input)}); "
                 "auto-merge waits for a writer's approving review (Policy "
                 "`autoMerge.untrustedInput`).\n\n" if t.untrusted_input else "")
    body = (f"{closes}\n\n{t.summary or ''}\n\n{untrusted}**Files**\n{listing}\n\n"
            f"{_figures(t)}\n\nAsked by @{t.requested_by} in #{t.issue}: "
            f"`/claude {t.command[:200]}`\n\n<!-- {marker(t.id)} -->")
    message = (f"{title}\n\n{t.summary or ''}\n\nAsked by @{t.requested_by} in #{t.issue}."
               f"\n\n{marker(t.id)}")
    push = PushChange(task_id=t.id, repo=t.repo, installation_id=t.installation_id,
                      branch=t.branch, base_branch=t.base_branch, base_sha=t.base_sha,
                      files=dict(t.change), message=message, title=title, body=body,
                      pull=t.pull_number, untrusted=list(t.untrusted_input)).action(
        push_key(t.id), description=f"push task {t.id} to {t.branch} ({len(files)} files)")
    return Plan("Pushing", f"task {t.id}: {len(files)} file(s) to {t.branch}",
                actions=(push,), requeue_after=0.0, status="Reconciling")


def _figures(t: TaskInfo) -> str:
    return (f"Task {t.id}: {t.tokens:,} tokens, ${t.usd:.4f}, {t.tool_calls} tool calls"
            f"{f' ({t.model})' if t.model else ''}.")


def _step(t: TaskInfo, state: str, reason: str) -> Action:
    """Move the task to `state` (from where its machine allows: the runner's UPDATE)."""
    TASK_MACHINE.check(t.state, state)
    return StepTask(task_id=t.id, state=state, reason=reason[:2000]).action(
        f"task-step:{t.id}:{state}", description=f"task {t.id}: {state}")


def _answer(t: TaskInfo, text: str) -> tuple[Action, ...]:
    if t.installation_id is None:
        return ()
    return (reply_action(t.repo, t.installation_id, t.issue, t.comment_id,
                         f"/claude {t.command}".splitlines()[0][:200], t.requested_by, text),)
