"""`/claude` commands in issue and pull request comments: what a comment asks for, and what is
decided from the delivery alone. Pure: the comment's text and author in, a `Command` and a
`Verdict` out.

A command is a comment whose first line starts with `/claude` (then a space or the end):
`/claude status`, `retry`, `cancel`, `stop`, `resume` (one word each), `/claude approve <action
key>`, `/claude help` or `/claude` alone; anything else is work, in words — the rest of the
first line and every line after it. Authorisation comes before anything else (model calls
included): the comment must be newly created (not edited or deleted), its author not a bot (the
controller's own App above all): `screen`. Then the one check of who may do what
(`controller.reconcile.authz`): their `author_association` in the Policy's
`commands.associations` or their login in `commands.users`, AND their permission on the
repository at least write, AND the action in their own repository's source. Bots and edits are
ignored silently; anyone else who is refused gets one reply saying why. No I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from controller.reconcile.payloads import as_mapping

Verb = Literal["work", "status", "retry", "cancel", "stop", "resume", "approve", "help"]
ONE_WORD: frozenset[str] = frozenset({"status", "retry", "cancel", "stop", "resume", "help"})
PREFIX = "/claude"


@dataclass(frozen=True)
class Command:
    verb: Verb
    text: str  # the work in words, or the action key to approve
    line: str  # the first line as written, quoted in replies


@dataclass(frozen=True)
class Verdict:
    outcome: Literal["allowed", "refused", "ignored"]
    why: str


def parse(body: object) -> Command | None:
    """The command a comment gives; None when it is not a `/claude` command."""
    if not isinstance(body, str):
        return None
    first, _, rest = body.strip().partition("\n")
    first = first.strip()
    if not first.startswith(PREFIX) or first[len(PREFIX):][:1] not in ("", " ", "\t"):
        return None
    words = first[len(PREFIX):].split()
    if not words:
        return Command("help", "", first)
    verb = words[0].lower()
    if verb in ONE_WORD and len(words) == 1 and not rest.strip():
        return Command(verb, "", first)  # type: ignore[arg-type]
    if verb == "approve" and len(words) == 2:
        return Command("approve", words[1], first)
    text = " ".join(words) + ("\n" + rest.strip() if rest.strip() else "")
    return Command("work", text, first)


def author_of(payload: Mapping[str, Any]) -> tuple[str, str, bool]:
    """(login, author_association, is a bot) of a comment delivery."""
    comment = as_mapping(payload.get("comment"))
    user = as_mapping(comment.get("user"))
    login = str(user.get("login") or "")
    bot = user.get("type") == "Bot" or login.endswith("[bot]")
    return login, str(comment.get("author_association") or "NONE"), bot


def screen(payload: Mapping[str, Any]) -> Verdict | None:
    """What is decided from the delivery alone: edits, deletions and bots are ignored; None
    when the author's permission on the repository is what decides
    (`controller.reconcile.authz.authorize`)."""
    if payload.get("action") != "created":
        return Verdict("ignored", f"a comment {payload.get('action')}, not created")
    login, _, bot = author_of(payload)
    if bot:
        return Verdict("ignored", f"{login} is a bot")
    return None
