"""Pull requests (`pull:owner/name#N`): tracks open / closed / merged and the head commit.

Auto-merge arrives with its own issue; this reconciler keeps the observed state that auto-merge
will decide on. Pure apart from what `observe` reads through the context.
"""

from __future__ import annotations

from typing import ClassVar

from controller.fsm import StateMachine
from controller.payloads import dig
from reconcilers.base import StoredPayload
from reconcilers.tracking import Observed, TrackingReconciler


class PullRequests(TrackingReconciler):
    kind: ClassVar[str] = "pull"
    events: ClassVar[frozenset[str] | None] = frozenset({
        "pull_request", "pull_request_review", "pull_request_review_comment",
        "pull_request_review_thread", "issues", "issue_comment"})
    machine: ClassVar[StateMachine] = StateMachine.declare(
        "pull", initial=["open", "closed", "merged"],
        table={"open": ["closed", "merged"], "closed": ["open", "merged"]},
    )

    def read(self, item: StoredPayload) -> Observed | None:
        pull = item.payload.get("pull_request")
        if isinstance(pull, dict) and isinstance(pull.get("state"), str):
            merged = bool(pull.get("merged") or pull.get("merged_at"))
            data = {
                "title": pull.get("title"),
                "head_sha": dig(pull, "head", "sha"),
                "head_ref": dig(pull, "head", "ref"),
                "base_ref": dig(pull, "base", "ref"),
                "draft": bool(pull.get("draft")),
            }
            return Observed("merged" if merged else pull["state"],
                            {k: v for k, v in data.items() if v is not None})
        issue = item.payload.get("issue")
        if isinstance(issue, dict) and isinstance(issue.get("state"), str):
            merged = bool(dig(issue, "pull_request", "merged_at"))
            return Observed("merged" if merged else issue["state"], {"title": issue.get("title")})
        return None
