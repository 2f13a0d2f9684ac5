"""The policy gate between a plan and the executor: killswitch, approvals, dry-run.

`gate(plan_actions, policy, approved)` is pure: it says, for each action, whether it runs,
is held for approval, is recorded as dry-run, or is skipped by the killswitch. An action that
needs a provider whose credentials are not configured is recorded as dry-run (what it would
have done) while internal actions still run, so a controller with no credentials shows the
whole loop. The worker fetches the approvals first; the executor records the verdicts. No I/O.
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
    # Providers with credentials; None means every provider (tests, tools).
    providers: frozenset[str] | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> Policy:
        return cls(dry_run=bool(settings.policy.dry_run), killswitch=settings.policy.killswitch,
                   providers=settings.providers.configured())

    def can_use(self, provider: str | None) -> bool:
        return provider is None or self.providers is None or provider in self.providers


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
        elif not policy.can_use(action.needs):
            verdicts.append(Gated(action, Verdict.DRY_RUN,
                                  f"dry-run: no {action.needs} credentials configured"))
        else:
            verdicts.append(Gated(action, Verdict.RUN, "allowed"))
    return verdicts
