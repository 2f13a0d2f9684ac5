"""The one check of who may do what to which source: every (principal, verb, source) the
product knows, as a table. A source is the principal's own, another one, or none (objects of
no source, such as a Railway deployment, which only the operator's `p38 approve` reaches)."""

from __future__ import annotations

import pytest

from controller.manifests.models import Commands
from controller.reconcile.authz import (
    ANONYMOUS,
    API,
    CONTROLLER,
    OPERATOR,
    READER,
    VERBS,
    Principal,
    authorize,
)

OWN, OTHER = "octo/infra", "mallory/toy"
WRITER = Principal.commenter("dana", OWN, "MEMBER", "write")
SENDER = Principal("sender", "a verified GitHub delivery", OWN)
AGENT = Principal.agent("octo/infra/digest", 7, OWN)
COMMANDS = frozenset({"help", "status", "work", "retry", "cancel", "stop", "resume", "approve"})


def expected(who: Principal, verb: str, source: str | None) -> bool:
    """The rules, written out once more: what the table holds the function to."""
    if who.kind in ("operator", "controller"):
        return True
    if who.kind == "api":  # the write token: the operator's words, from the API or the page
        return verb in ("read", "run", "cancel", "approve", "retry", "stop", "resume")
    if who.kind in ("anonymous", "reader"):
        return verb == "read"
    if who.kind == "sender":
        return verb == "deliver" and source == who.source
    if who.kind == "agent":
        return verb == "tool" and source == who.source
    return verb in COMMANDS and source == who.source


PRINCIPALS = {"operator": OPERATOR, "controller": CONTROLLER, "api": API, "reader": READER,
              "anonymous": ANONYMOUS, "sender": SENDER, "agent": AGENT, "writer": WRITER}
SOURCES = {"own": OWN, "other": OTHER, "none": None}


@pytest.mark.parametrize("principal", sorted(PRINCIPALS))
@pytest.mark.parametrize("verb", VERBS)
@pytest.mark.parametrize("where", sorted(SOURCES))
def test_every_principal_verb_and_source(principal: str, verb: str, where: str) -> None:
    who, source = PRINCIPALS[principal], SOURCES[where]
    decision = authorize(who, verb, source, Commands())  # type: ignore[arg-type]
    assert decision.allowed is expected(who, verb, source), decision.why
    assert decision.why  # every answer says why


def test_a_comment_on_one_repository_cannot_approve_anothers_action() -> None:
    decision = authorize(WRITER, "approve", "octo/prod", Commands())
    assert not decision.allowed
    assert decision.why == ("@dana writes in octo/infra and may act only on its actions, not "
                            "on octo/prod")
    assert not authorize(WRITER, "approve", None, Commands()).allowed


@pytest.mark.parametrize(("login", "association", "permission", "allowed", "why"), [
    ("dana", "MEMBER", "write", True, "@dana is MEMBER with write permission"),
    ("dana", "OWNER", "admin", True, "with admin permission"),
    ("eve", "NONE", "read", False, "@eve is NONE here; the Policy lets OWNER, MEMBER"),
    ("eve", "CONTRIBUTOR", "write", False, "@eve is CONTRIBUTOR here"),
    ("mo", "MEMBER", "read", False, "@mo has read permission on this repository; "
                                    "/claude needs write"),
    ("mo", "MEMBER", None, False, "@mo has no permission"),
])
def test_who_may_give_commands_in_their_own_repository(
        login: str, association: str, permission: str | None, allowed: bool, why: str) -> None:
    who = Principal.commenter(login, OWN, association, permission)
    for verb in COMMANDS:
        decision = authorize(who, verb, OWN, Commands())  # type: ignore[arg-type]
        assert decision.allowed is allowed and why in decision.why


def test_a_listed_user_still_needs_write() -> None:
    rules = Commands(users=["outside-sre"])
    assert authorize(Principal.commenter("outside-sre", OWN, "NONE", "write"), "work", OWN,
                     rules).allowed
    assert not authorize(Principal.commenter("outside-sre", OWN, "NONE", "triage"), "work",
                         OWN, rules).allowed
