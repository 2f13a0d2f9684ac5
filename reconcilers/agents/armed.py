"""Armed ticks: a schedule's next tick is written ahead (its row, outcome `armed`, its queued run
and the run's key, due at the instant behind a firm wait), so that at the due second only a run
worker's claim of that key remains. What is decided at the instant is decided here, by the run
reconciler (reconcilers/agents/runs.py) on the run it claimed:

- claimed before the instant (an operator's word cut its wait): wait for the instant;
- late (the next instant is due already, or it is more than `GRACE` late: the controller was
  down or behind): the schedule takes it over (its key is enqueued) and applies its catch-up
  rules, exactly as when nothing was armed;
- blocked (the agent is not applied, has no READY version, the run was asked to stop, or
  concurrency forbid and a run of the schedule is going): the tick is recorded skipped with its
  reason, the run (never started) removed, the next instant armed;
- else fired: the tick is recorded fired, the next instant armed, and the run goes on (replace
  stops the schedule's other runs first).

Also the rules a schedule and its armed run share (`blocked`, `GRACE`). Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from croniter import CroniterBadCronError, CroniterBadDateError

from controller.reconcile.plan import Action
from reconcilers.agents.agent_actions import Arm, ArmedTick, FireArmed, RunInfo, VersionInfo
from reconcilers.agents.cron import CronZone

GRACE = timedelta(minutes=5)


def blocked(agent: str, source: str, agent_applied: bool, versions: Sequence[VersionInfo],
            concurrency: str, active: Sequence[RunInfo]) -> tuple[str, str] | None:
    """Why a due tick cannot fire (reason, decision), None when it can."""
    if not agent_applied:
        return f"agent {agent} is not applied from {source}", "AgentNotApplied"
    if not any(v.state == "READY" for v in versions):
        newest = versions[0] if versions else None
        why = (f"newest is v{newest.number}, {newest.state}"
               + (f": {newest.error}" if newest.error else "")) if newest else "none built yet"
        return f"agent {agent} has no READY version ({why})", "AgentNotReady"
    if concurrency == "forbid" and active:
        runs = ", ".join(f"{r.id} ({r.state})" for r in active)
        return f"run {runs} of this schedule has not ended (concurrency: forbid)", "Overlap"
    return None


def following(armed: ArmedTick) -> datetime | None:
    """The instant after this armed one (None: the cron cannot fire again)."""
    try:
        return CronZone(armed.cron, armed.timezone).next_after(armed.due_at)
    except (CroniterBadCronError, CroniterBadDateError):
        return None


def is_late(armed: ArmedTick, now: datetime) -> bool:
    """Too late for the run workers to decide alone: the schedule's catch-up rules decide."""
    after = following(armed)
    return now - armed.due_at > GRACE or (after is not None and after <= now)


def arm(schedule: str, agent: str, due: datetime | None, now: datetime, *, cron: str = "",
        timezone: str = "UTC", concurrency: str = "allow", content_hash: str = "",
        late_before: datetime | None = None, salt: str = "") -> Action:
    """Arm the tick due at `due` (None: withdraw whatever is armed and not yet due)."""
    params = Arm(schedule=schedule, agent=agent, due_at=due, cron=cron, timezone=timezone,
                 concurrency=concurrency, hash=content_hash, late_before=late_before)
    what = f"arm the tick due {due.isoformat()}" if due else "withdraw the armed tick"
    # (Keyed by the moment it was decided: arming is idempotent in the database itself, and a
    # withdrawal then the same arming again, a suspend and a resume, must both be carried out.)
    return params.action(f"arm:{schedule}:{due.isoformat() if due else 'none'}:"
                         f"{now.isoformat()}{salt and ':' + salt}",
                         description=f"{schedule}: {what}")


def fire(schedule: str, agent: str, armed: ArmedTick, outcome: str, reason: str,
         replace: Sequence[int] = ()) -> FireArmed:
    """The tick's instant decided (fired or skipped), and the following instant armed."""
    return FireArmed(schedule=schedule, due_at=armed.due_at, run_id=armed.run_id,
                     outcome=outcome, reason=reason, next_due=following(armed), agent=agent,
                     cron=armed.cron, timezone=armed.timezone, concurrency=armed.concurrency,
                     hash=armed.hash, replace=list(replace))
