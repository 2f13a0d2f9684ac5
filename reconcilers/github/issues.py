"""Issues (`issue:owner/name#N`): tracks open / closed / deleted.

Watches issues and issue_comment deliveries about issues (those about pull requests go to
`pull:`). The `/claude` command reconciler and failure issues build on this state later.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import ClassVar

from controller.reconcile.context import StoredPayload
from controller.reconcile.fsm import StateMachine
from controller.reconcile.payloads import number, repo_full_name
from controller.reconcile.reconciler import Event, Watch, repo_of
from reconcilers.tracking import Observed, TrackingReconciler

ISSUE_EVENTS = frozenset({"issues", "issue_comment"})


def keys(event: Event) -> Iterable[str]:
    repo, issue = repo_full_name(event.payload), event.payload.get("issue")
    n = number(issue)
    if repo is None or n is None or not isinstance(issue, dict) \
            or issue.get("pull_request") is not None:
        return ()
    return (f"issue:{repo}#{n}",)


class Issues(TrackingReconciler):
    kind: ClassVar[str] = "issue"
    events: ClassVar[frozenset[str] | None] = ISSUE_EVENTS
    machine: ClassVar[StateMachine] = StateMachine.declare(
        "issue", initial=["open", "closed"],
        table={"open": ["closed", "deleted"], "closed": ["open", "deleted"]},
    )

    def watches(self) -> Sequence[Watch]:
        return (Watch("github", ISSUE_EVENTS, keys),)

    def source(self, key: str) -> str | None:
        return repo_of(key)

    def read(self, item: StoredPayload) -> Observed | None:
        if item.event == "issues" and item.action in ("deleted", "transferred"):
            return Observed("deleted", {})
        issue = item.payload.get("issue")
        if isinstance(issue, dict) and issue.get("state") in ("open", "closed"):
            return Observed(issue["state"], {"title": issue.get("title")})
        return None
