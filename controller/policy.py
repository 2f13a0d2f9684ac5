"""The policy gate between a plan and the executor: killswitch, approvals, dry-run.

`gate(plan_actions, policy, approved)` is pure: it says, for each action, whether it runs,
is held for approval, is recorded as dry-run, or is skipped by the killswitch. The worker
fetches the approvals first; the executor records the verdicts. No I/O here.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Set
from dataclasses import dataclass, field

from controller.config import Settings
from reconcilers.base import Action


class Verdict(enum.Enum):
    RUN = "run"
    DRY_RUN = "dry_run"
    HELD = "held"
    SKIPPED = "skipped"


@dataclass(frozen=True)
class Policy:
    """What the controller may do right now."""

    dry_run: bool = False
    killswitch: bool = False
    approval_required: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def from_settings(cls, settings: Settings) -> Policy:
        return cls(dry_run=settings.effective_dry_run, killswitch=settings.policy.killswitch)


@dataclass(frozen=True)
class Gated:
    action: Action
    verdict: Verdict
    reason: str


def needs_approval(action: Action, policy: Policy) -> bool:
    return action.needs_approval or action.kind in policy.approval_required


def gate(actions: Iterable[Action], policy: Policy, approved: Set[str]) -> list[Gated]:
    """Decide each action's fate; killswitch first, then approval, then dry-run."""
    verdicts = []
    for action in actions:
        if policy.killswitch:
            verdicts.append(Gated(action, Verdict.SKIPPED, "killswitch is on"))
        elif needs_approval(action, policy) and action.idempotency_key not in approved:
            verdicts.append(Gated(action, Verdict.HELD, "waiting for approval"))
        elif policy.dry_run:
            verdicts.append(Gated(action, Verdict.DRY_RUN, "dry-run: recorded, not executed"))
        else:
            verdicts.append(Gated(action, Verdict.RUN, "allowed"))
    return verdicts
