"""Pull requests (`pull:owner/name#N`): tracks open / closed / merged and the head commit.

Watches pull request events, check suites, check runs and workflow runs (for each pull request
they name) and issue events on pull requests. A delivery that contradicts the recorded state (a
merged pull request reported open by a late delivery) makes `observe` re-read the pull request
from GitHub. Auto-merge arrives with its own issue and decides on this state.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, ClassVar

from controller.reconcile.context import ObserveContext, StoredPayload
from controller.reconcile.errors import NotConfigured
from controller.reconcile.fsm import StateMachine
from controller.reconcile.ids import key_name
from controller.reconcile.payloads import dig, installation_id, number, repo_full_name
from controller.reconcile.reads import GITHUB
from controller.reconcile.reconciler import Event, Watch, repo_of
from reconcilers.tracking import Observed, TrackingReconciler

PULL_EVENTS = frozenset({"pull_request", "pull_request_review", "pull_request_review_comment",
                         "pull_request_review_thread"})
CHECK_EVENTS = {"check_suite": "check_suite", "check_run": "check_run",
                "workflow_run": "workflow_run"}
ISSUE_EVENTS = frozenset({"issues", "issue_comment"})


def pull_keys(event: Event) -> Iterable[str]:
    repo = repo_full_name(event.payload)
    n = number(event.payload.get("pull_request")) or number(event.payload)
    return (f"pull:{repo}#{n}",) if repo and n is not None else ()


def check_keys(event: Event) -> Iterable[str]:
    repo = repo_full_name(event.payload)
    container = event.payload.get(CHECK_EVENTS[event.name])
    pulls = container.get("pull_requests") if isinstance(container, dict) else None
    if repo is None or not isinstance(pulls, list):
        return ()
    return [f"pull:{repo}#{n}" for n in map(number, pulls) if n is not None]


def issue_keys(event: Event) -> Iterable[str]:
    repo, issue = repo_full_name(event.payload), event.payload.get("issue")
    n = number(issue)
    if repo is None or n is None or not isinstance(issue, dict) \
            or issue.get("pull_request") is None:
        return ()
    return (f"pull:{repo}#{n}",)


def observed(pull: Mapping[str, Any]) -> Observed | None:
    """What a pull request object (a delivery's or the API's) says."""
    if not isinstance(pull.get("state"), str):
        return None
    merged = bool(pull.get("merged") or pull.get("merged_at"))
    data = {"title": pull.get("title"), "head_sha": dig(pull, "head", "sha"),
            "head_ref": dig(pull, "head", "ref"), "base_ref": dig(pull, "base", "ref"),
            "draft": bool(pull.get("draft"))}
    return Observed("merged" if merged else pull["state"],
                    {k: v for k, v in data.items() if v is not None})


class PullRequests(TrackingReconciler):
    kind: ClassVar[str] = "pull"
    events: ClassVar[frozenset[str] | None] = PULL_EVENTS | ISSUE_EVENTS
    machine: ClassVar[StateMachine] = StateMachine.declare(
        "pull", initial=["open", "closed", "merged"],
        table={"open": ["closed", "merged"], "closed": ["open", "merged"]},
    )

    def watches(self) -> Sequence[Watch]:
        return (Watch("github", PULL_EVENTS, pull_keys),
                Watch("github", frozenset(CHECK_EVENTS), check_keys),
                Watch("github", ISSUE_EVENTS, issue_keys))

    def source(self, key: str) -> str | None:
        return repo_of(key)

    def read(self, item: StoredPayload) -> Observed | None:
        pull = item.payload.get("pull_request")
        if isinstance(pull, dict):
            return observed(pull)
        issue = item.payload.get("issue")
        if isinstance(issue, dict) and isinstance(issue.get("state"), str):
            merged = bool(dig(issue, "pull_request", "merged_at"))
            return Observed("merged" if merged else issue["state"], {"title": issue.get("title")})
        return None

    async def reread(self, ctx: ObserveContext, key: str,
                     item: StoredPayload) -> Observed | None:
        repo, _, n = key_name(key).rpartition("#")
        installation = installation_id(item.payload)
        if installation is None or not (n.isascii() and n.isdigit()):
            return None
        try:
            pull = await ctx.reads(GITHUB).pull_request(repo, int(n),
                                                        installation_id=installation)
        except NotConfigured:
            return None
        return observed(pull)
