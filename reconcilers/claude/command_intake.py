"""`/claude` command intake (`command:owner/repo#N@COMMENT`): one key per command comment, so
the same delivery twice, a redelivery or two replicas give one answer.

`observe` reads the comment's delivery and, unless the delivery alone settles it (an edit, a bot),
the author's permission on the repository (the collaborator permission API, remembered for a minute)
and the thread's tasks. `decide` authorises before anything else (`controller.reconcile.authz`): a
refusal is one reply saying why, and nothing else; an allowed command is acknowledged with a 👀
reaction. Work becomes a task (`reconcilers/claude/tasks.py`, which answers it); `retry` starts the
thread's last ended task again, `cancel` ends its running one; `status`, `help` are answered in the
thread, quoting the command; `stop` and `resume` turn the source's killswitch on and off; `approve
<key>` releases a held action (as `p38 approve`). Replies are found before they are made (a hidden
marker per comment). No I/O of its own."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, ClassVar

from controller.reconcile.authz import Authority, Principal, authorize
from controller.reconcile.context import ActionRecord, ObserveContext
from controller.reconcile.errors import NotConfigured
from controller.reconcile.payloads import as_mapping, installation_id, number, repo_full_name
from controller.reconcile.plan import Action, Params, Plan
from controller.reconcile.reads import GITHUB
from controller.reconcile.reconciler import Event, Reconciler, Watch
from reconcilers.automerge.actions import explain
from reconcilers.claude.commands import Command, Verdict, author_of, parse, screen
from reconcilers.claude.lifecycle import ACTIVE
from reconcilers.claude.task_actions import TASKS, OpenTask, StepTask, TaskInfo, task_key

if TYPE_CHECKING:
    from controller.reconcile.policy import Policy

MARKER = "<!-- p38:command:{comment} -->"
STOPPED_BY = "/claude stop by "  # how a killswitch turned on by a comment is named
HELP = ("`/claude <task in words>` — do the work; `/claude status` — what is being done here; "
        "`/claude retry`, `/claude cancel` — this thread's task; `/claude stop` / "
        "`/claude resume` — the killswitch; `/claude approve <action>` — release a held "
        "action; `/claude help` — this list.")


class CommentReply(Params):
    """A reply in an issue or pull request thread, once (found by `marker` first)."""

    action_kind: ClassVar[str] = "github.comment"
    needs: ClassVar[str | None] = "github"
    repo: str
    installation_id: int
    issue: int
    marker: str
    body: str


class SetKillswitch(Params):
    """Turn the killswitch of `source` on or off (`/claude stop`, `/claude resume`); when off,
    the keys it held are looked at again at once. Internal: a held switch could never be
    released."""

    action_kind: ClassVar[str] = "killswitch.set"
    source: str
    on: bool
    by: str


class GrantApproval(Params):
    """Approve a held action (as `p38 approve`): recorded with who, and the key that planned it
    looked at again at once. Internal: it must not wait for itself."""

    action_kind: ClassVar[str] = "approval.grant"
    idempotency_key: str
    by: str
    key: str | None = None


class CommentReaction(Params):
    """A reaction to a comment (GitHub keeps one of each kind per author: idempotent)."""

    action_kind: ClassVar[str] = "github.reaction"
    needs: ClassVar[str | None] = "github"
    repo: str
    installation_id: int
    comment_id: int
    content: str = "eyes"


def command_key(event: Event) -> Iterable[str]:
    """The key of a newly created `/claude` comment by a person; none for anything else."""
    payload = event.payload
    comment = as_mapping(payload.get("comment"))
    repo, issue = repo_full_name(payload), number(payload.get("issue"))
    comment_id = comment.get("id")
    if repo is None or issue is None or not isinstance(comment_id, int) \
            or parse(comment.get("body")) is None or screen(payload) is not None:
        return ()
    return (f"command:{repo}#{issue}@{comment_id}",)


@dataclass(frozen=True)
class CommandSnapshot:
    key: str
    repo: str
    issue: int = 0
    comment_id: int = 0
    installation: int | None = None
    command: Command | None = None
    login: str = ""
    association: str = "NONE"
    screened: Verdict | None = None
    permission: str | None = None
    unverifiable: str | None = None  # why the permission could not be read
    unconfigured: bool = False  # ... because the App has no credentials here
    target: ActionRecord | None = None  # what `/claude approve <key>` names, when it exists
    on_pull: bool = False  # the thread is a pull request
    tasks: tuple[TaskInfo, ...] = ()  # the thread's tasks, newest first
    automerge: Mapping[str, Any] | None = None  # what auto-merge last judged of the pull


class CommandIntake(Reconciler):
    kind: ClassVar[str] = "command"
    owns: ClassVar[frozenset[str]] = frozenset({"task"})

    def watches(self) -> Sequence[Watch]:
        return (Watch("github", frozenset({"issue_comment"}), command_key),)

    def source(self, key: str) -> str | None:
        return key.removeprefix("command:").partition("#")[0] or None

    async def observe(self, ctx: ObserveContext, key: str) -> CommandSnapshot:
        repo = self.source(key) or ""
        found = await ctx.recent_payloads(key, 1, events=("issue_comment",))
        if not found:
            return CommandSnapshot(key, repo)
        payload = found[0].payload
        comment = as_mapping(payload.get("comment"))
        login, association, _ = author_of(payload)
        snapshot = CommandSnapshot(
            key, repo, issue=number(payload.get("issue")) or 0,
            comment_id=int(comment.get("id") or 0), installation=installation_id(payload),
            command=parse(comment.get("body")), login=login, association=association,
            screened=screen(payload),
            on_pull="pull_request" in as_mapping(payload.get("issue")))
        if snapshot.screened is not None or snapshot.command is None:
            return snapshot
        if snapshot.installation is None:
            return replace(snapshot, unverifiable="the delivery names no App installation")
        try:
            permission = await ctx.reads(GITHUB).permission(
                repo, login, installation_id=snapshot.installation)
        except NotConfigured as exc:
            return replace(snapshot, unverifiable=str(exc), unconfigured=True)
        target: ActionRecord | None = None
        tasks: tuple[TaskInfo, ...] = ()
        if snapshot.command.verb == "approve":
            target = await ctx.action(snapshot.command.text)
        if snapshot.command.verb in ("status", "retry", "cancel"):
            tasks = tuple(await ctx.reads(TASKS).thread(repo, snapshot.issue))
        automerge = None
        if snapshot.command.verb == "status" and snapshot.on_pull:
            pull = await ctx.resource("pull", f"{repo}#{snapshot.issue}")
            automerge = pull.data.get("automerge") if pull is not None else None
        return replace(snapshot, permission=permission, target=target, tasks=tasks,
                       automerge=automerge)

    def decide(self, snapshot: CommandSnapshot, policy: Policy) -> Plan:
        return decide_command(snapshot, policy)


def decide_command(s: CommandSnapshot, policy: Policy) -> Plan:
    """What to do with one command comment (pure)."""
    if s.command is None:
        return Plan("Gone", f"{s.key}: no /claude comment stored for it", forget=True)
    if s.screened is not None:
        return Plan("Ignored", s.screened.why, forget=True)
    if s.unconfigured and s.command.verb == "work":
        would = (f"{s.unverifiable}: would have checked @{s.login}'s permission on {s.repo} "
                 f"and, if at least write, asked Claude to {s.command.text!r}")
        return Plan("DryRun", would, actions=(_open(s, "DRY_RUN", would),), status="Blocked")
    if s.unverifiable is not None or s.installation is None:
        return Plan("CannotVerify", f"the author's permission cannot be read: "
                                    f"{s.unverifiable}", status="Blocked")
    verdict = authorize(_who(s), s.command.verb, s.repo, policy.spec.commands)
    if not verdict.allowed:
        refused = (_open(s, "REFUSED", verdict.why),) if s.command.verb == "work" else ()
        return Plan("Refused", verdict.why,
                    actions=(*refused, _reply(s, f"not accepted: {verdict.why}")))
    why = f"{s.command.verb} from @{s.login}: {verdict.why}"
    if s.command.verb == "work":
        return Plan("TaskOpened", why, actions=(_open(s, "AUTHORIZED", verdict.why), _react(s)),
                    enqueue=(task_key(s.repo, s.issue, s.comment_id),))
    if s.command.verb in ("retry", "cancel"):
        return _retry_or_cancel(s, why)
    if s.command.verb == "stop":
        text = (f"the killswitch is on for {s.repo}: every action is held (and audited) while "
                "observing goes on; `/claude resume` releases it.")
        return Plan("Answered", why, actions=(_switch(s, on=True), _react(s), _reply(s, text)))
    if s.command.verb == "resume":
        if any(by.startswith(STOPPED_BY) for by in policy.killswitches):
            # One step per reconcile: the switch first; the answer, no longer held, next.
            return Plan("Resuming", why, actions=(_switch(s, on=False),), requeue_after=0.0,
                        status="Reconciling")
        return Plan("Answered", why, actions=(_react(s, answer=True), _reply(
            s, _remaining(s, policy), answer=True)))
    if s.command.verb == "approve":
        return _approve(s, why, policy)
    answer = _answer(s, policy)
    return Plan("Answered", why, actions=(_react(s), _reply(s, answer)))


def _retry_or_cancel(s: CommandSnapshot, why: str) -> Plan:
    assert s.command is not None
    last = s.tasks[0] if s.tasks else None
    if last is None:
        return Plan("Answered", why, actions=(_react(s), _reply(
            s, f"this thread has no /claude task to {s.command.verb}.")))
    if s.command.verb == "cancel":
        if last.state not in ACTIVE:
            return Plan("Answered", why, actions=(_react(s), _reply(
                s, f"task {last.id} is {last.state} already; nothing to cancel.")))
        step = StepTask(task_id=last.id, state="CANCELLED", reason=f"cancelled by @{s.login}")
        return Plan("Answered", why, actions=(
            step.action(f"command-cancel:{s.repo}@{s.comment_id}",
                        description=f"cancel task {last.id} (@{s.login})"),
            _react(s), _reply(s, f"task {last.id} is cancelled; nothing it had not written yet "
                                 "will be.")), enqueue=(last.key,))
    if last.state in ACTIVE:
        return Plan("Answered", why, actions=(_react(s), _reply(
            s, f"task {last.id} is still {last.state}; `/claude cancel` it first.")))
    if last.state == "PR_OPENED":
        return Plan("Answered", why, actions=(_react(s), _reply(
            s, f"task {last.id} {last.pull_done} {last.pull_url or f'#{last.pull_number}'}; "
               "to change it, ask with `/claude <what to change>` on that pull request.")))
    retried = replace(s, command=replace(s.command, text=last.command))
    return Plan("TaskOpened", f"{why}; retries task {last.id}",
                actions=(_open(retried, "AUTHORIZED", f"retry of task {last.id} by @{s.login}",
                               retry_of=last.id), _react(s)),
                enqueue=(task_key(s.repo, s.issue, s.comment_id),))


def _open(s: CommandSnapshot, state: str, reason: str, retry_of: int | None = None) -> Action:
    assert s.command is not None
    params = OpenTask(repo=s.repo, issue=s.issue, comment_id=s.comment_id,
                      installation_id=s.installation, on_pull=s.on_pull,
                      requested_by=s.login, command=s.command.text, state=state,
                      reason=reason[:2000], retry_of=retry_of)
    return params.action(f"command-task:{s.repo}@{s.comment_id}",
                         description=f"task for {s.command.line[:80]!r} ({state})",
                         authority=Authority(_who(s), "work", s.repo)
                         if state == "AUTHORIZED" else None)


def _remaining(s: CommandSnapshot, policy: Policy) -> str:
    """What `/claude resume` says once its own stop is lifted: which switches remain, and what
    lifts each (each is lifted only by what set it)."""
    if not policy.killswitches:
        return f"the killswitch of {s.repo} is off: held actions go ahead."
    how = [f"{by} (commit its killswitch off)" if by.startswith("Policy/") else
           f"{by} (unset it and restart)" if by == "P38_KILLSWITCH" else by
           for by in policy.killswitches]
    return (f"no `/claude stop` holds {s.repo} now; the killswitch stays on, held by "
            + "; ".join(how) + ", which `/claude resume` does not lift.")


def _who(s: CommandSnapshot) -> Principal:
    return Principal.commenter(s.login, s.repo, s.association, s.permission)


def _approve(s: CommandSnapshot, why: str, policy: Policy) -> Plan:
    """Only an action of the commenter's own repository's source: an owner of one repository
    must not release another's held deploy."""
    assert s.command is not None
    wanted, target = s.command.text, s.target
    if target is None:
        return Plan("Answered", why, actions=(_react(s), _reply(
            s, f"no action has the key `{wanted}` (see `GET /api/actions?status=held`); "
               "nothing was approved.")))
    if target.status != "held":
        return Plan("Answered", why, actions=(_react(s), _reply(
            s, f"`{wanted}` is not waiting for approval (it is {target.status}); nothing "
               "was approved.")))
    allowed = authorize(_who(s), "approve", target.source, policy.spec.commands)
    if not allowed.allowed:
        return Plan("Refused", allowed.why, actions=(_reply(
            s, f"`{wanted}` was not approved: {allowed.why}."),))
    grant = GrantApproval(idempotency_key=wanted, by=f"@{s.login}", key=target.key).action(
        f"command-approve:{s.repo}@{s.comment_id}",
        description=f"approve {wanted} (@{s.login})",
        authority=Authority(_who(s), "approve", target.source))
    return Plan("Answered", why, actions=(grant, _react(s), _reply(
        s, f"approved `{wanted}` ({target.kind}); it runs unless the killswitch is on.")))


def _answer(s: CommandSnapshot, policy: Policy) -> str:
    assert s.command is not None
    if s.command.verb != "status":
        return HELP
    switch = (f"on ({policy.killswitch_by}): every action is held" if policy.killswitch
              else "off")
    merging = f"\n\nAuto-merge: {explain(s.automerge)}" if s.automerge else ""
    if not s.tasks:
        return f"no /claude task in this thread yet; the killswitch is {switch}.{merging}"
    lines = [f"the killswitch is {switch}.", "", "| task | asked | state | pull request | "
             "tokens | cost | tool calls |", "|---|---|---|---|---|---|---|"]
    for t in s.tasks[:10]:
        pull = t.pull_url or (f"#{t.pull_number}" if t.pull_number else "—")
        lines.append(f"| {t.id} | {t.command[:60].replace('|', '/')} by @{t.requested_by} | "
                     f"{t.state}: {t.reason[:120].replace('|', '/')} | {pull} | {t.tokens:,} | "
                     f"${t.usd:.4f} | {t.tool_calls} |")
    return "\n".join(lines) + merging


def _reply(s: CommandSnapshot, text: str, *, answer: bool = False) -> Action:
    """`answer`: not held by a killswitch (`/claude resume` says which switches remain)."""
    assert s.installation is not None and s.command is not None
    return reply_action(s.repo, s.installation, s.issue, s.comment_id, s.command.line,
                        s.login, text, answer=answer)


def reply_action(repo: str, installation: int, issue: int, comment_id: int, line: str,
                 login: str, text: str, *, answer: bool = False) -> Action:
    """The one answer to comment `comment_id`, quoting its command (`line`)."""
    marker = MARKER.format(comment=comment_id)
    body = f"> {line}\n\n@{login} {text}\n\n{marker}"
    params = CommentReply(repo=repo, installation_id=installation, issue=issue,
                          marker=marker, body=body)
    return params.action(f"command-reply:{repo}@{comment_id}",
                         description=f"reply to {line[:80]!r} in {repo}#{issue}", answer=answer)


def _switch(s: CommandSnapshot, *, on: bool) -> Action:
    params = SetKillswitch(source=s.repo, on=on, by=f"@{s.login}")
    return params.action(f"command-killswitch:{s.repo}@{s.comment_id}",
                         description=f"killswitch {'on' if on else 'off'} for {s.repo} "
                                     f"(@{s.login})",
                         authority=Authority(_who(s), "stop" if on else "resume", s.repo))


def _react(s: CommandSnapshot, *, answer: bool = False) -> Action:
    assert s.installation is not None
    params = CommentReaction(repo=s.repo, installation_id=s.installation,
                             comment_id=s.comment_id)
    return params.action(f"command-ack:{s.repo}@{s.comment_id}",
                         description=f"👀 on comment {s.comment_id} in {s.repo}#{s.issue}",
                         answer=answer)
