"""The policy a reconcile runs under, and the gate between its plan and the executor.

`Policy` is what the environment says (P38_KILLSWITCH, P38_DRY_RUN, which providers have
credentials) combined with the `Policy` manifest applied from the key's source (its killswitch,
`approvalRequired`, and the rest of its spec for the reconcilers to read). `Policies` resolves
the policy of a source; a key that belongs to no source gets the strictest of them all.

`gate(actions, policy, approved)` is pure: for each action, whether it runs, is held (the
killswitch, or waiting for approval), or is recorded as dry-run (P38_DRY_RUN, or no credentials
for its provider). The killswitch holds every action that touches the world (one with a
provider); the controller's own records (what is applied from a source, the revisions) go on,
so desired state stays current while it is on and a killswitch set in a Policy manifest can be
lifted by committing the manifest; the answer to `/claude resume` (its reaction and reply) is
not held either, so it can say which switches remain. Before all that,
an action planned on someone's behalf is refused when `authz` does not allow them. The engine
fetches approvals and applied policies; the executor records verdicts. No I/O.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Set
from dataclasses import dataclass, field, replace

from controller.config import Settings
from controller.manifests.models import PolicySpec
from controller.reconcile.authz import authorize
from controller.reconcile.plan import Action


class Verdict(enum.Enum):
    RUN = "run"
    DRY_RUN = "dry_run"
    HELD = "held"
    REFUSED = "refused"  # the one it is planned for may not (authz); recorded as skipped


@dataclass(frozen=True)
class Policy:
    """What the controller may do right now, for one source."""

    dry_run: bool = False
    killswitch: bool = False
    killswitch_by: str = "P38_KILLSWITCH"  # the first of `killswitches`, for messages
    # Every switch that is on, each lifted only by what set it: P38_KILLSWITCH, a source's
    # Policy manifest, a `/claude stop`.
    killswitches: tuple[str, ...] = ()
    approval_required: frozenset[str] = field(default_factory=frozenset)
    # Providers with credentials; None means every provider (tests, tools).
    providers: frozenset[str] | None = None
    unavailable: Mapping[str, str] = field(default_factory=dict)  # provider -> why not
    spec: PolicySpec = field(default_factory=PolicySpec)
    governed_by: str | None = None  # `Policy/<name> in <source>`, when a manifest applies

    @classmethod
    def from_settings(cls, settings: Settings, providers: frozenset[str] | None = None,
                      unavailable: Mapping[str, str] | None = None) -> Policy:
        return cls(dry_run=bool(settings.policy.dry_run), killswitch=settings.policy.killswitch,
                   killswitches=("P38_KILLSWITCH",) if settings.policy.killswitch else (),
                   providers=settings.providers.configured() if providers is None
                   else providers, unavailable=dict(unavailable or {}))

    def can_use(self, provider: str | None) -> bool:
        return provider is None or self.providers is None or provider in self.providers

    def with_manifest(self, source: str, name: str, spec: PolicySpec) -> Policy:
        """This policy under a source's applied Policy manifest: either killswitch stops
        everything, and the action kinds either requires approval for are held."""
        by = f"Policy/{name} in {source}"
        return replace(self, spec=spec, governed_by=by,
                       approval_required=self.approval_required
                       | frozenset(spec.approval_required)).switched_on(
            by if spec.killswitch else None)

    def switched_on(self, by: str | None) -> Policy:
        """This policy with one more killswitch on (`by` says which; None: unchanged)."""
        if by is None or by in self.killswitches:
            return self
        switches = (*self.killswitches, by)
        if self.killswitch and not self.killswitches:  # (a policy made with killswitch=True)
            switches = (self.killswitch_by, by)
        return replace(self, killswitch=True, killswitches=switches,
                       killswitch_by=switches[0])


@dataclass(frozen=True)
class Policies:
    """The environment's policy, each source's applied Policy manifest (name, spec), and the
    sources a `/claude stop` holds (`switched`)."""

    base: Policy
    manifests: Mapping[str, tuple[str, PolicySpec]] = field(default_factory=dict)
    switched: Mapping[str, str] = field(default_factory=dict)  # source -> who stopped it

    def for_source(self, source: str | None) -> Policy:
        policy = self._governing(source)
        for s, by in sorted(self.switched.items()):
            if source == s:  # a comment's stop reaches its repository only, never keys of
                policy = policy.switched_on(by)  # no source (every repository's)
        return policy

    def _governing(self, source: str | None) -> Policy:
        if source is not None:
            found = self.manifests.get(source)
            return self.base if found is None else self.base.with_manifest(source, *found)
        # A key of no source (a Railway deployment, an installation): every source's
        # killswitch and approvals apply to it.
        policy = self.base
        for name_source, (name, spec) in sorted(self.manifests.items()):
            strict = policy.with_manifest(name_source, name, spec)
            policy = replace(strict, spec=policy.spec, governed_by=None)
        return policy


@dataclass(frozen=True)
class Gated:
    action: Action
    verdict: Verdict
    reason: str
    blocked_by: str | None = None  # CamelCase, when not run: Killswitch, AwaitingApproval, ...


def needs_approval(action: Action, policy: Policy) -> bool:
    return action.needs_approval or action.kind in policy.approval_required


def gate(actions: Iterable[Action], policy: Policy, approved: Set[str]) -> list[Gated]:
    """Decide each action's fate: whether the one it is planned for may ask it (`authz`),
    then the killswitch, approval, dry-run."""
    verdicts = []
    for action in actions:
        allowed = None if action.authority is None else authorize(
            action.authority.who, action.authority.verb, action.authority.source,
            policy.spec.commands)
        if allowed is not None and not allowed.allowed:
            verdicts.append(Gated(action, Verdict.REFUSED, f"refused: {allowed.why}",
                                  "NotAuthorized"))
        elif policy.killswitch and action.needs is not None and not action.answer:
            verdicts.append(Gated(action, Verdict.HELD,
                                  f"held: the killswitch is on ({policy.killswitch_by})",
                                  "Killswitch"))
        elif needs_approval(action, policy) and action.idempotency_key not in approved:
            verdicts.append(Gated(action, Verdict.HELD, "held: waiting for approval "
                                  f"(p38 approve {action.idempotency_key})",
                                  "AwaitingApproval"))
        elif policy.dry_run:
            verdicts.append(Gated(action, Verdict.DRY_RUN, "dry-run: recorded, not executed",
                                  "DryRun"))
        elif not policy.can_use(action.needs):
            why = policy.unavailable.get(action.needs or "") \
                or f"no {action.needs} credentials configured"
            verdicts.append(Gated(action, Verdict.DRY_RUN, f"dry-run: {why}", "NoCredentials"))
        else:
            verdicts.append(Gated(action, Verdict.RUN, "allowed"))
    return verdicts
