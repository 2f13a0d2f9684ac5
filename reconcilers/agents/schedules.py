"""Schedules (`schedule:owner/repo/name`, `schedule:local/name`): each due instant of the cron,
in the schedule's time zone, ticks once across every controller process.

`observe` reads the applied schedule, the database's clock, the schedule's newest tick, its
agent (applied? a READY version?) and the runs this schedule started that have not ended.
`decide` lists the instants due since the newest tick (or since the schedule was applied) and
plans one `schedule.tick` for the oldest one to act on; the tick's row in PostgreSQL (unique
by schedule and instant) makes it fire once however many processes plan it. When none is left
to catch up, the next instant is armed (reconcilers/agents/armed.py: its row, its run and the
run's key, due at the instant) and the key rests: the run worker that claims the armed run at
its instant decides it and arms the one after, so a schedule is reconciled again only when it
changes, its agent changes, an armed tick was not claimed in time, or at the resync. A change
re-arms (the armed tick not yet due is withdrawn); suspended, deleted or unreadable disarms.

- An instant is on time until `GRACE` after it; older ones, and any but the newest, were
  missed (the controller was down or behind). `catchUp`: none fires only an on-time instant,
  latest fires the newest one even late, all fires each missed one (the newest
  `CATCH_UP_MAX`). What is not fired is recorded as one skipped tick saying what was missed.
- A tick is skipped, with its reason, when the schedule is suspended, the agent is not
  applied or has no READY version, or (concurrency forbid) a run it started is still going;
  replace stops those runs and fires; allow fires.
- A change to the schedule's manifest starts it afresh: what was due before is not caught up.
No I/O of its own.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, ClassVar

from croniter import CroniterBadCronError, CroniterBadDateError
from pydantic import ValidationError

from controller.manifests.models import ScheduleSpec
from controller.reconcile.context import AppliedObject, ObserveContext
from controller.reconcile.plan import Action, Plan, Status
from reconcilers.agents import armed as arming
from reconcilers.agents.agent_actions import AGENTS, ArmedTick, RunInfo, Tick, TickInfo, VersionInfo
from reconcilers.agents.armed import GRACE
from reconcilers.agents.cron import CronZone
from reconcilers.gitops.objects import ManifestObject, ObjectSnapshot

if TYPE_CHECKING:
    from controller.reconcile.policy import Policy

CATCH_UP_MAX = 100
__all__ = ["CATCH_UP_MAX", "GRACE", "ScheduleSnapshot", "Schedules", "decide_schedule"]


@dataclass(frozen=True)
class ScheduleSnapshot(ObjectSnapshot):
    spec: ScheduleSpec | None = None
    unreadable: str | None = None
    now: datetime | None = None
    last_tick: TickInfo | None = None
    agent_applied: bool = False
    versions: tuple[VersionInfo, ...] = ()
    active: tuple[RunInfo, ...] = ()  # runs this schedule started that have not ended
    armed: ArmedTick | None = None  # its tick armed ahead, if any


class Schedules(ManifestObject):
    kind: ClassVar[str] = "schedule"
    manifest_kind: ClassVar[str] = "Schedule"
    resync: ClassVar[bool] = True  # a requeue lost to a dry run comes back at the resync

    async def observe(self, ctx: ObserveContext, key: str) -> ScheduleSnapshot:
        base = await super().observe(ctx, key)
        reads = ctx.reads(AGENTS)
        snapshot = ScheduleSnapshot(base.key, base.source, base.name, base.applied,
                                    base.desired, armed=await reads.armed_tick(key))
        if base.applied is None:
            return snapshot
        try:
            spec = ScheduleSpec.model_validate(base.applied.document.get("spec") or {})
        except ValidationError as exc:
            return replace(snapshot, unreadable=str(exc).splitlines()[0])
        agent = agent_key(base.source, spec.agent)
        applied_agent = await ctx.applied_object(base.source, "Agent", spec.agent)
        active = [r for r in await reads.active_runs(agent) if r.schedule == key]
        return replace(snapshot, spec=spec, now=await reads.now(),
                       last_tick=await reads.last_tick(key),
                       agent_applied=applied_agent is not None,
                       versions=tuple(await reads.versions(agent)), active=tuple(active))

    def decide(self, snapshot: ObjectSnapshot, policy: Policy) -> Plan:
        plan = super().decide(snapshot, policy)
        assert isinstance(snapshot, ScheduleSnapshot)
        if snapshot.applied is None and snapshot.armed is not None:  # deleted: disarm
            return _with(plan, _disarm(snapshot, snapshot.armed.due_at + timedelta(days=1)))
        return plan

    def decide_applied(self, snapshot: ObjectSnapshot, applied: AppliedObject,
                       policy: Policy) -> Plan:
        assert isinstance(snapshot, ScheduleSnapshot)
        return decide_armed(snapshot, applied)


def decide_armed(snapshot: ScheduleSnapshot, applied: AppliedObject) -> Plan:
    """`decide_schedule`, then the tick armed ahead (pure): the next instant armed once nothing
    is left to catch up, a change re-armed, a suspended or unreadable schedule disarmed; an
    armed tick due now is left to the run worker that claims it, one claimed too late is taken
    over here (withdrawn, then decided by the catch-up rules)."""
    spec, now, armed = snapshot.spec, snapshot.now, snapshot.armed
    if spec is None or now is None or spec.suspended:  # every armed tick withdrawn, due or not
        plan = decide_schedule(replace(snapshot, armed=None), applied)
        return plan if armed is None else _with(plan, _disarm(snapshot, now))
    late = armed is not None and armed.due_at <= now and arming.is_late(armed, now)
    if armed is not None and armed.due_at <= now and not late:
        return Plan("Due", f"the tick of {armed.due_at.isoformat()} is armed and due: the run "
                           f"worker that claims run {armed.run_id} decides it",
                    revision=snapshot.revision, periodic=True,
                    # (a change meanwhile: look again once the run worker has decided it)
                    requeue_after=None if armed.hash == applied.content_hash else 1.0)
    plan = decide_schedule(snapshot, applied)
    withdraw_late = now if late else None  # withdrawn first: the catch-up decides it too
    if plan.status == "Stalled":
        return plan if armed is None else _with(plan, _disarm(snapshot, now))
    if plan.requeue_after == 0.0:  # more to catch up first
        return plan if not late else _with(plan, _disarm(snapshot, withdraw_late))
    try:
        upcoming = CronZone(spec.cron, spec.timezone).next_after(now)
    except (CroniterBadCronError, CroniterBadDateError):  # (decide_schedule said Stalled)
        return plan
    if armed is not None and not late and armed.due_at == upcoming \
            and armed.hash == applied.content_hash:
        return replace(plan, requeue_after=None, reason=f"{plan.reason} (armed)")
    action = arming.arm(snapshot.key, agent_key(snapshot.source, spec.agent), upcoming, now,
                        cron=spec.cron, timezone=spec.timezone, concurrency=spec.concurrency,
                        content_hash=applied.content_hash, late_before=withdraw_late)
    return replace(_with(plan, action), requeue_after=None, reason=f"{plan.reason} (armed)")


def _with(plan: Plan, first: Action) -> Plan:
    return replace(plan, actions=(first, *plan.actions))


def _disarm(snapshot: ScheduleSnapshot, late_before: datetime | None) -> Action:
    """Withdraw the armed ticks not due yet, and those due before `late_before`."""
    armed = snapshot.armed
    assert armed is not None
    agent = snapshot.spec.agent if snapshot.spec else "?"
    return arming.arm(snapshot.key, agent_key(snapshot.source, agent), None,
                      snapshot.now or armed.due_at, late_before=late_before,
                      salt=str(armed.run_id))


def agent_key(source: str, name: str) -> str:
    return f"agent:{source}/{name}"


def decide_schedule(snapshot: ScheduleSnapshot, applied: AppliedObject) -> Plan:
    """The plan for one applied schedule at `snapshot.now` (pure)."""
    revision = snapshot.revision
    spec, now = snapshot.spec, snapshot.now
    if spec is None or now is None:
        return Plan("Unreadable", f"the applied document does not validate: "
                                  f"{snapshot.unreadable}", status="Stalled", revision=revision)
    cursors = [t for t in (snapshot.last_tick.due_at if snapshot.last_tick else None,
                           applied.applied_at) if t is not None]
    cursor = max(cursors) if cursors else now
    try:  # (validation refuses what cannot fire; this is for what slipped past an older one)
        cron = CronZone(spec.cron, spec.timezone)
        pending = cron.pending(cursor, now, CATCH_UP_MAX)
        upcoming = cron.next_after(now)
    except (CroniterBadCronError, CroniterBadDateError) as exc:
        return Plan("NeverFires", f"{spec.cron} in {spec.timezone} cannot fire: {exc}",
                    status="Stalled", revision=revision)
    wait = max(0.0, (upcoming - now).total_seconds())
    following = f"next tick {upcoming.isoformat()} ({spec.cron} in {spec.timezone})"
    if not pending.instants:
        return _idle(snapshot, spec, following, wait, revision)

    instants = pending.instants
    newest = instants[-1]
    if spec.suspended:
        tick = _tick(snapshot, spec, newest, "skipped",
                     f"suspended{_and_earlier(len(instants) - 1, pending.dropped_before)}")
        return Plan("Suspended", f"suspended: fires nothing; {following}", actions=(tick,),
                    requeue_after=wait, revision=revision, periodic=True)

    on_time = now - newest <= GRACE
    if spec.catch_up == "all":
        fire = list(instants)
    elif spec.catch_up == "latest" or on_time:
        fire = [newest]
    else:
        fire = []
    missed = [i for i in instants if i not in fire]
    actions: list[Action] = []
    last_missed = max(missed) if missed else pending.dropped_before
    if last_missed is not None and (not fire or last_missed < fire[0]):
        actions.append(_tick(snapshot, spec, last_missed, "skipped",
                             _missed_reason(spec.catch_up, missed, pending.dropped_before)))
    if not fire:
        return Plan("Missed", f"missed {len(missed)} tick(s) while not running "
                              f"(catchUp: none); {following}", actions=tuple(actions),
                    requeue_after=wait, revision=revision, periodic=True)

    due = fire[0]
    more = len(fire) > 1
    late = "" if now - due <= GRACE else f" (late by {_seconds(now - due)}, catchUp: " \
                                         f"{spec.catch_up})"
    blocked = _blocked(snapshot, spec)
    after = "; more missed ticks to go" if more else f"; {following}"
    if blocked is not None:
        reason, decision = blocked
        actions.append(_tick(snapshot, spec, due, "skipped", reason))
        status: Status = "Ready" if decision == "Overlap" else "Blocked"
        return Plan(decision, f"skipped the tick of {due.isoformat()}: {reason}{after}",
                    actions=tuple(actions), requeue_after=0.0 if more else wait,
                    status=status, revision=revision, periodic=True)
    stop = [r.id for r in snapshot.active] if spec.concurrency == "replace" else []
    replaced = f"; stopping run(s) {', '.join(map(str, stop))}" if stop else ""
    actions.append(_tick(snapshot, spec, due, "fired", f"due{late}{replaced}", stop))
    return Plan("Fired", f"fired the tick of {due.isoformat()}{late}{replaced}{after}",
                actions=tuple(actions), requeue_after=0.0 if more else wait, revision=revision,
                periodic=True)


def _idle(snapshot: ScheduleSnapshot, spec: ScheduleSpec, following: str, wait: float,
          revision: str | None) -> Plan:
    blocked = _blocked(snapshot, spec) if not spec.suspended else None
    if spec.suspended:
        return Plan("Suspended", f"suspended: fires nothing; {following}",
                    requeue_after=wait, revision=revision, periodic=True)
    if blocked is not None and blocked[1] != "Overlap":
        reason, decision = blocked
        return Plan(decision, f"{reason}; ticks will be skipped until it is; {following}",
                    requeue_after=wait, status="Blocked", revision=revision, periodic=True)
    return Plan("Scheduled", following, requeue_after=wait, revision=revision, periodic=True)


def _blocked(snapshot: ScheduleSnapshot, spec: ScheduleSpec) -> tuple[str, str] | None:
    """Why a due tick cannot fire (reason, decision), None when it can."""
    return arming.blocked(spec.agent, snapshot.source, snapshot.agent_applied,
                          snapshot.versions, spec.concurrency, snapshot.active)


def _tick(snapshot: ScheduleSnapshot, spec: ScheduleSpec, due: datetime, outcome: str,
          reason: str, replace_runs: list[int] | None = None) -> Action:
    params = Tick(schedule=snapshot.key, due_at=due, outcome=outcome, reason=reason,
                  agent=agent_key(snapshot.source, spec.agent), replace=replace_runs or [])
    what = (f"start a run of {spec.agent}" if outcome == "fired"
            else f"record a skipped tick: {reason}")
    return params.action(f"tick:{snapshot.key}:{due.isoformat()}",
                         description=f"{snapshot.name} due {due.isoformat()}: {what}")


def _missed_reason(catch_up: str, missed: list[datetime],
                   dropped_before: datetime | None) -> str:
    what = []
    if dropped_before is not None:
        what.append(f"every tick due up to {dropped_before.isoformat()}")
    if missed:
        what.append(f"{len(missed)} tick(s) due from {missed[0].isoformat()} to "
                    f"{missed[-1].isoformat()}")
    rule = {"none": f"none fires only a tick less than {_seconds(GRACE)} late",
            "latest": "latest fires only the newest",
            "all": f"all fires the newest {CATCH_UP_MAX}"}[catch_up]
    return (f"missed while the controller was down or behind: {' and '.join(what)} "
            f"(catchUp: {rule})")


def _and_earlier(count: int, dropped_before: datetime | None) -> str:
    if count == 0 and dropped_before is None:
        return ""
    return f" (and {count}{'+' if dropped_before else ''} earlier tick(s))"


def _seconds(delta: timedelta) -> str:
    return f"{delta.total_seconds():.0f}s"
