"""The App's webhook deliveries (`webhooks:github`): what GitHub could not hand over is asked
again.

GitHub does not retry a delivery that failed (the controller down, a 5xx, an answer later
than its 10 s); it keeps it for a few days and lets the App list and redeliver it. `observe`
lists the App's recent deliveries and which of their GUIDs are stored here; `decide` (pure)
plans one `github.redeliver` for each GUID that no attempt delivered, that is not stored, and
whose last attempt is over a minute old (it may still be arriving), oldest first and at most
`BATCH` a reconcile (the rest a little later). A failed attempt still under its minute is looked
at again when the minute ends (the youngest one's, plus a margin): what a short restart lost
is asked for about a minute later, not at the next resync. Each GUID is asked once: the
action's idempotency key is the GUID, so a retry or a second replica never asks twice. Enqueued
when the app starts and resynced every P38_RESYNC_SECONDS. Without App credentials: Blocked,
with the reason.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar

from controller.reconcile.context import ObserveContext
from controller.reconcile.errors import NotConfigured
from controller.reconcile.plan import Action, Params, Plan
from controller.reconcile.reads import GITHUB
from controller.reconcile.reconciler import Reconciler

if TYPE_CHECKING:
    from controller.reconcile.policy import Policy

KEY = "webhooks:github"
SETTLING = timedelta(minutes=1)  # an attempt younger than this may still be on its way
WINDOW = timedelta(days=3)  # GitHub keeps deliveries for about this long
BATCH = 10  # redeliveries asked per reconcile, so a long outage does not burst GitHub
NEXT_BATCH_SECONDS = 30.0
SETTLED_MARGIN_SECONDS = 2.0  # past the minute, for a clock a little behind GitHub's


class Redeliver(Params):
    """Ask GitHub to send a delivery again (POST /app/hook/deliveries/{id}/attempts)."""

    action_kind: ClassVar[str] = "github.redeliver"
    needs: ClassVar[str | None] = "github"
    delivery_id: int  # GitHub's id of the failed attempt
    guid: str
    event: str
    event_action: str | None = None  # the delivery's `action`


def redeliver_key(guid: str) -> str:
    return f"github:redeliver:{guid}"


@dataclass(frozen=True)
class DeliveriesSnapshot:
    attempts: tuple[Mapping[str, Any], ...] = ()  # hook-delivery-item, newest first
    stored: frozenset[str] = frozenset()  # their GUIDs that are stored here
    observed_at: datetime | None = None
    blocked: str | None = None


def _delivered(attempt: Mapping[str, Any]) -> bool:
    code = attempt.get("status_code")
    return isinstance(code, int) and 200 <= code < 300


def _when(attempt: Mapping[str, Any]) -> datetime | None:
    value = attempt.get("delivered_at")
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None


def lost(snapshot: DeliveriesSnapshot) -> list[Mapping[str, Any]]:
    """The newest attempt of each GUID GitHub never handed over and that is not stored,
    settled and within the window, oldest first."""
    now = snapshot.observed_at
    return [attempt for when, attempt in _failed(snapshot)
            if now is not None and SETTLING < now - when < WINDOW]


def settling_for(snapshot: DeliveriesSnapshot) -> float | None:
    """Seconds until the youngest failed attempt still settling (under a minute old, not
    stored) is a minute old, plus a margin: the look that asks for it then. None when none
    settles."""
    now = snapshot.observed_at
    young = [when for when, _ in _failed(snapshot) if now is not None and now - when <= SETTLING]
    if now is None or not young:
        return None
    return max(1.0, (max(young) + SETTLING - now).total_seconds() + SETTLED_MARGIN_SECONDS)


def _failed(snapshot: DeliveriesSnapshot) -> list[tuple[datetime, Mapping[str, Any]]]:
    """(when, attempt): the newest attempt of each GUID no attempt delivered and that is not
    stored here, oldest first."""
    newest: dict[str, tuple[datetime, Mapping[str, Any]]] = {}
    delivered: set[str] = set()
    for attempt in snapshot.attempts:
        guid, when = attempt.get("guid"), _when(attempt)
        if not isinstance(guid, str) or when is None:
            continue
        if _delivered(attempt):
            delivered.add(guid)
        if guid not in newest or when > newest[guid][0]:
            newest[guid] = (when, attempt)
    found = sorted((when, guid, attempt) for guid, (when, attempt) in newest.items()
                   if guid not in delivered and guid not in snapshot.stored)
    return [(when, attempt) for when, _, attempt in found]


class Redeliveries(Reconciler):
    kind: ClassVar[str] = "webhooks"
    resync: ClassVar[bool] = True
    at_start: ClassVar[tuple[str, ...]] = (KEY,)

    async def observe(self, ctx: ObserveContext, key: str) -> DeliveriesSnapshot:
        observed_at = datetime.now().astimezone()
        try:
            attempts = tuple(await ctx.reads(GITHUB).app_deliveries())
        except NotConfigured as exc:
            return DeliveriesSnapshot(observed_at=observed_at, blocked=f"{exc}; deliveries "
                                      "GitHub could not hand over are not recovered")
        guids = sorted({str(a.get("guid")) for a in attempts if a.get("guid")})
        stored = frozenset(await ctx.stored_deliveries("github", guids))
        return DeliveriesSnapshot(attempts, stored, observed_at)

    def decide(self, snapshot: DeliveriesSnapshot, policy: Policy) -> Plan:
        if snapshot.blocked is not None:
            return Plan("NoCredentials", snapshot.blocked, status="Blocked")
        missing = lost(snapshot)
        asked = missing[:BATCH]
        actions = tuple(_redeliver(a) for a in asked)
        seen = len({a.get("guid") for a in snapshot.attempts})
        settling = settling_for(snapshot)  # lost in a restart a moment ago: asked in a minute
        if not actions:
            if settling is not None:
                return Plan("Settling", "failed deliveries under a minute old (they may still "
                                        f"arrive): looked at again in {settling:.0f}s",
                            requeue_after=settling)
            return Plan("NothingLost", f"{seen} recent deliveries: each was handed over or is "
                                       "stored here")
        more = len(missing) - len(asked)
        again = [NEXT_BATCH_SECONDS] if more else []
        again += [settling] if settling is not None else []
        return Plan("Redelivering", f"{len(asked)} delivery(ies) GitHub could not hand over "
                                    f"asked again" + (f"; {more} more in {NEXT_BATCH_SECONDS:g}s"
                                                      if more else ""),
                    actions=actions, requeue_after=min(again) if again else None)


def _redeliver(attempt: Mapping[str, Any]) -> Action:
    guid = str(attempt["guid"])
    action = attempt.get("action")
    params = Redeliver(delivery_id=int(attempt["id"]), guid=guid, event=str(attempt["event"]),
                       event_action=action if isinstance(action, str) else None)
    named = f"{params.event}.{params.event_action}" if params.event_action else params.event
    return params.action(redeliver_key(guid), description=f"ask GitHub to redeliver {named} "
                         f"{guid} (its last attempt: {attempt.get('status') or 'failed'})")
