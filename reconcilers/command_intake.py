"""`/claude` command intake (`command:owner/repo#N@COMMENT`): one key per command comment, so
the same delivery twice, a redelivery or two replicas give one answer.

`observe` reads the comment's delivery and, unless the delivery alone settles it (an edit, a
bot), the author's permission on the repository (the collaborator permission API, remembered
for a minute). `decide` authorises before anything else (`reconcilers.commands`): a refusal is
one reply saying why, and nothing else; an allowed command is acknowledged with a 👀 reaction
and answered in the thread, quoting it (help, status); `stop` and `resume` turn the
source's killswitch on and off; `approve <key>` releases a held action (as `p38 approve`).
Carrying out work, retry and cancel is the next step of issue 10: until then the reply says
it is not done by this release. Replies are found before they are made (a hidden marker per
comment). No I/O of its own.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, ClassVar

from controller.reconcile.context import ActionRecord, ObserveContext
from controller.reconcile.errors import NotConfigured
from controller.reconcile.payloads import as_mapping, installation_id, number, repo_full_name
from controller.reconcile.plan import Action, Params, Plan
from controller.reconcile.reads import GITHUB
from controller.reconcile.reconciler import Event, Reconciler, Watch
from reconcilers.commands import Command, Verdict, author_of, authorize, parse, screen

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
    target: ActionRecord | None = None  # what `/claude approve <key>` names, when it exists


class CommandIntake(Reconciler):
    kind: ClassVar[str] = "command"

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
            screened=screen(payload))
        if snapshot.screened is not None or snapshot.command is None:
            return snapshot
        if snapshot.installation is None:
            return replace(snapshot, unverifiable="the delivery names no App installation")
        try:
            permission = await ctx.reads(GITHUB).permission(
                repo, login, installation_id=snapshot.installation)
        except NotConfigured as exc:
            return replace(snapshot, unverifiable=str(exc))
        target = None
        if snapshot.command.verb == "approve":
            target = await ctx.action(snapshot.command.text)
        return replace(snapshot, permission=permission, target=target)

    def decide(self, snapshot: CommandSnapshot, policy: Policy) -> Plan:
        return decide_command(snapshot, policy)


def decide_command(s: CommandSnapshot, policy: Policy) -> Plan:
    """What to do with one command comment (pure)."""
    if s.command is None:
        return Plan("Gone", f"{s.key}: no /claude comment stored for it", forget=True)
    if s.screened is not None:
        return Plan("Ignored", s.screened.why, forget=True)
    if s.unverifiable is not None or s.installation is None:
        return Plan("CannotVerify", f"the author's permission cannot be read: "
                                    f"{s.unverifiable}", status="Blocked")
    verdict = authorize(s.login, s.association, s.permission, policy.spec.commands)
    if verdict.outcome != "allowed":
        return Plan("Refused", verdict.why, actions=(_reply(s, f"not accepted: {verdict.why}"),))
    why = f"{s.command.verb} from @{s.login}: {verdict.why}"
    if s.command.verb == "stop":
        text = (f"the killswitch is on for {s.repo}: every action is held (and audited) while "
                "observing goes on; `/claude resume` releases it.")
        return Plan("Answered", why, actions=(_switch(s, on=True), _react(s), _reply(s, text)))
    if s.command.verb == "resume":
        if policy.killswitch and policy.killswitch_by.startswith(STOPPED_BY):
            # One step per reconcile: the switch first; the answer, no longer held, next.
            return Plan("Resuming", why, actions=(_switch(s, on=False),), requeue_after=0.0,
                        status="Reconciling")
        text = (f"the killswitch of {s.repo} is off: held actions go ahead."
                if not policy.killswitch else
                f"the killswitch stays on: it is held by {policy.killswitch_by}, which "
                "`/claude resume` does not release (commit the Policy's killswitch off, or "
                "unset P38_KILLSWITCH).")
        return Plan("Answered", why, actions=(_react(s), _reply(s, text)))
    if s.command.verb == "approve":
        return _approve(s, why)
    answer = _answer(s.command, policy)
    return Plan("Answered", why, actions=(_react(s), _reply(s, answer)))


def _approve(s: CommandSnapshot, why: str) -> Plan:
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
    grant = GrantApproval(idempotency_key=wanted, by=f"@{s.login}", key=target.key).action(
        f"command-approve:{s.repo}@{s.comment_id}",
        description=f"approve {wanted} (@{s.login})")
    return Plan("Answered", why, actions=(grant, _react(s), _reply(
        s, f"approved `{wanted}` ({target.kind}); it runs unless the killswitch is on.")))


def _answer(command: Command, policy: Policy) -> str:
    if command.verb == "help":
        return HELP
    if command.verb == "status":
        state = (f"on ({policy.killswitch_by}): every action is held" if policy.killswitch
                 else "off")
        return f"no /claude task for this thread yet; the killswitch is {state}."
    return (f"`{command.verb}` is understood, but carrying it out is not part of this "
            "release of project38 yet (it is being built); nothing was done.")


def _reply(s: CommandSnapshot, text: str) -> Action:
    assert s.installation is not None and s.command is not None
    marker = MARKER.format(comment=s.comment_id)
    body = f"> {s.command.line}\n\n@{s.login} {text}\n\n{marker}"
    params = CommentReply(repo=s.repo, installation_id=s.installation, issue=s.issue,
                          marker=marker, body=body)
    return params.action(f"command-reply:{s.repo}@{s.comment_id}",
                         description=f"reply to {s.command.line!r} in {s.repo}#{s.issue}")


def _switch(s: CommandSnapshot, *, on: bool) -> Action:
    params = SetKillswitch(source=s.repo, on=on, by=f"@{s.login}")
    return params.action(f"command-killswitch:{s.repo}@{s.comment_id}",
                         description=f"killswitch {'on' if on else 'off'} for {s.repo} "
                                     f"(@{s.login})")


def _react(s: CommandSnapshot) -> Action:
    assert s.installation is not None
    params = CommentReaction(repo=s.repo, installation_id=s.installation,
                             comment_id=s.comment_id)
    return params.action(f"command-ack:{s.repo}@{s.comment_id}",
                         description=f"👀 on comment {s.comment_id} in {s.repo}#{s.issue}")
