"""Issues (`issue:owner/name#N`): tracks open / closed / deleted.

The `/claude` command reconciler and failure issues build on this state later.
"""

from __future__ import annotations

from typing import ClassVar

from controller.fsm import StateMachine
from reconcilers.base import StoredPayload
from reconcilers.tracking import Observed, TrackingReconciler


class Issues(TrackingReconciler):
    kind: ClassVar[str] = "issue"
    events: ClassVar[frozenset[str] | None] = frozenset({"issues", "issue_comment"})
    machine: ClassVar[StateMachine] = StateMachine.declare(
        "issue", initial=["open", "closed"],
        table={"open": ["closed", "deleted"], "closed": ["open", "deleted"]},
    )

    def read(self, item: StoredPayload) -> Observed | None:
        if item.event == "issues" and item.action in ("deleted", "transferred"):
            return Observed("deleted", {})
        issue = item.payload.get("issue")
        if isinstance(issue, dict) and issue.get("state") in ("open", "closed"):
            return Observed(issue["state"], {"title": issue.get("title")})
        return None
