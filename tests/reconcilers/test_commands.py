"""`/claude` commands: parsing a comment, and who may give one (pure)."""

from __future__ import annotations

import json

import pytest

from reconcilers.claude.commands import Command, Verdict, author_of, parse, screen
from tests.helpers import SAMPLES


@pytest.mark.parametrize(("body", "expected"), [
    ("/claude add a README section about X", Command("work", "add a README section about X",
                                                     "/claude add a README section about X")),
    ("/claude status", Command("status", "", "/claude status")),
    ("  /claude   STOP  ", Command("stop", "", "/claude   STOP")),
    ("/claude approve railway.rollback:svc:42",
     Command("approve", "railway.rollback:svc:42", "/claude approve railway.rollback:svc:42")),
    ("/claude", Command("help", "", "/claude")),
    ("/claude stop the flaky test from failing",
     Command("work", "stop the flaky test from failing",
             "/claude stop the flaky test from failing")),
    ("/claude fix it\nThe build breaks on main.\n",
     Command("work", "fix it\nThe build breaks on main.", "/claude fix it")),
    ("/claudette do this", None),
    ("please /claude do this", None),
    ("", None),
    (None, None),
], ids=["work", "status", "spaces-and-case", "approve", "alone", "verb-with-words",
        "more-lines", "other-word", "not-first", "empty", "no-body"])
def test_parse(body: object, expected: Command | None) -> None:
    assert parse(body) == expected


def test_screen_ignores_edits_and_bots_on_the_real_sample() -> None:
    payload = json.loads((SAMPLES / "issue_comment" / "claude-command" / "payload.json")
                         .read_text())
    assert author_of(payload) == ("dana-ops", "MEMBER", False)
    assert screen(payload) is None
    assert screen({**payload, "action": "edited"}) == \
        Verdict("ignored", "a comment edited, not created")
    bot = {**payload, "comment": {**payload["comment"], "user": {
        "login": "project38[bot]", "type": "Bot"}}}
    assert screen(bot) == Verdict("ignored", "project38[bot] is a bot")
    assert screen({"action": "created"}) is None  # an old delivery without the fields
    assert author_of({"action": "created"}) == ("", "NONE", False)


def test_a_command_whose_author_cannot_be_checked_does_nothing() -> None:
    """Without App credentials the permission cannot be read: Blocked, no action at all."""
    from controller.reconcile.policy import Policy
    from reconcilers.claude.command_intake import CommandSnapshot, decide_command

    snapshot = CommandSnapshot("command:o/r#1@5", "o/r", issue=1, comment_id=5,
                               installation=7, command=parse("/claude status"),
                               login="dana", association="MEMBER",
                               unverifiable="no GitHub App credentials")
    plan = decide_command(snapshot, Policy())
    assert (plan.decision, plan.status, plan.actions) == ("CannotVerify", "Blocked", ())
    allowed = decide_command(
        CommandSnapshot("command:o/r#1@5", "o/r", issue=1, comment_id=5, installation=7,
                        command=parse("/claude status"), login="dana", association="MEMBER",
                        permission="maintain"), Policy())
    assert [a.kind for a in allowed.actions] == ["github.reaction", "github.comment"]
