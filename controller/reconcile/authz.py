"""Who may do what to which source: the one check (principal, verb, source), as Kubernetes'
RBAC answers "can this subject do this verb on this resource in this namespace".

The principals the product knows: the `operator` (the CLI, with the database), an `api` client
(holding the write token: the API and the operator's page), a `reader` (the page with
P38_DASHBOARD_TOKEN: reads only), an `anonymous` API caller, a webhook `sender` (its delivery
verified), a `commenter` (a GitHub user writing `/claude ...` in a repository), `agent` code
(one run of an agent of a source), and the `controller` itself acting for an object. The verbs
are what they ask for; the source is the one the action touches (`local` or `owner/repo`, None
for objects of no source). `authorize` is pure; the gate calls it for every action planned on
someone's behalf, the command intake to answer, the API and the CLI before they act.

What is not here: the argument checks of each tool (a URL is public, a path is below the
repository, a GraphQL document only reads), which stay beside their tools; the gate's own
killswitch, approvals and dry-run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from controller.manifests.models import Commands

Kind = Literal["operator", "api", "reader", "anonymous", "sender", "commenter", "agent",
               "controller"]
Verb = Literal["read", "deliver", "run", "tool", "help", "status", "work", "retry", "cancel",
               "stop", "resume", "approve"]
VERBS: tuple[Verb, ...] = ("read", "deliver", "run", "tool", "help", "status", "work", "retry",
                           "cancel", "stop", "resume", "approve")
COMMAND_VERBS: frozenset[Verb] = frozenset({"help", "status", "work", "retry", "cancel", "stop",
                                            "resume", "approve"})
WRITERS = ("admin", "maintain", "write")
# What the write token lets the API and the operator's page do: an operator's words, by hand.
API_VERBS: frozenset[Verb] = frozenset({"read", "run", "cancel", "approve", "retry", "stop",
                                        "resume"})


@dataclass(frozen=True)
class Principal:
    """Who asks. `source`: the one it belongs to (a commenter's repository, an agent's
    source, a sender's route); `association` and `permission`: a commenter's, on that
    repository (`admin`, `maintain`, `write`, `triage`, `read`, `none`)."""

    kind: Kind
    name: str
    source: str | None = None
    association: str = "NONE"
    permission: str | None = None

    @classmethod
    def commenter(cls, login: str, repo: str, association: str,
                  permission: str | None) -> Principal:
        return cls("commenter", f"@{login}", repo, association, permission)

    @classmethod
    def agent(cls, agent: str, run_id: int, source: str) -> Principal:
        return cls("agent", f"{agent} (run {run_id})", source)


OPERATOR = Principal("operator", "the operator (p38 on the database)")
CONTROLLER = Principal("controller", "the controller")
API = Principal("api", "an API client with the write token")
ANONYMOUS = Principal("anonymous", "an API caller without a token")
READER = Principal("reader", "a reader with the dashboard token")


@dataclass(frozen=True)
class Authority:
    """On whose behalf an action is planned: the gate asks `authorize(who, verb, source)`."""

    who: Principal
    verb: Verb
    source: str | None


@dataclass(frozen=True)
class Decision:
    allowed: bool
    why: str


def authorize(who: Principal, verb: Verb, source: str | None,
              commands: Commands | None = None) -> Decision:
    """May `who` do `verb` to what belongs to `source`? `commands`: the Policy's `commands`
    section of that source (who may give /claude commands there)."""
    if who.kind in ("operator", "controller"):
        return Decision(True, f"{who.name} may {verb} anywhere")
    if who.kind == "api":  # the write token is the operator's: the page and the API
        if verb in API_VERBS:
            return Decision(True, f"{who.name} may {verb} in any source")
        return Decision(False, f"the API does not {verb}; p38 (or a comment) does")
    if who.kind == "reader":
        if verb == "read":
            return Decision(True, f"{who.name} may read")
        return Decision(False, f"{who.name} may only read (P38_DASHBOARD_TOKEN); {verb} "
                               "needs the write token")
    if who.kind == "anonymous":
        if verb == "read":
            return Decision(True, "reads are open (P38_API_TOKEN is not set)")
        return Decision(False, "writes to the API need a token")
    if who.kind == "sender":
        if verb == "deliver" and source == who.source:
            return Decision(True, f"a verified delivery to {source}")
        return Decision(False, f"a webhook sender only delivers to its own route, not {verb} "
                               f"in {source}")
    if who.kind == "agent":
        if verb == "tool" and source is not None and source == who.source:
            return Decision(True, f"{who.name} uses its tools in its own source {source}")
        return Decision(False, f"agent code may only use its tools, in its own source "
                               f"{who.source}; not {verb} in {source}")
    return _commenter(who, verb, source, commands or Commands())


def _commenter(who: Principal, verb: Verb, source: str | None, rules: Commands) -> Decision:
    if verb not in COMMAND_VERBS:
        return Decision(False, f"a comment gives /claude commands; it does not {verb}")
    if source is None or source != who.source:
        where = source or "no source (only p38 approve reaches those)"
        return Decision(False, f"{who.name} writes in {who.source} and may act only on its "
                               f"actions, not on {where}")
    login = who.name.removeprefix("@")
    listed = who.association in rules.associations or login in rules.users
    if not listed:
        allowed = ", ".join(rules.associations) or "none"
        return Decision(False, f"{who.name} is {who.association} here; the Policy lets "
                               f"{allowed} (or the users it names) use /claude")
    if who.permission not in WRITERS:
        return Decision(False, f"{who.name} has {who.permission or 'no'} permission on this "
                               "repository; /claude needs write")
    return Decision(True, f"{who.name} is {who.association} with {who.permission} permission")
