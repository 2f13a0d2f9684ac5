"""The schedule reconciler's decide and its cron: which instants tick, fire or are skipped,
and why (pure: no database, no clock)."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest

from controller.manifests.models import ScheduleSpec
from controller.reconcile.context import AppliedObject
from controller.reconcile.policy import Policy
from reconcilers.agents.agent_actions import ArmedTick, RunInfo, TickInfo, VersionInfo
from reconcilers.agents.cron import CronZone
from reconcilers.agents.runs import RunSnapshot, decide_run
from reconcilers.agents.schedules import ScheduleSnapshot, decide_armed, decide_schedule

KEY = "schedule:local/nightly"


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def snapshot(now: str, *, last: str | None = None, applied_at: str = "2026-11-01T00:00",
             versions: tuple[VersionInfo, ...] = (VersionInfo(1, "h", "READY", "code"),),
             active: tuple[RunInfo, ...] = (), agent_applied: bool = True,
             **spec: Any) -> ScheduleSnapshot:
    fields = {"cron": "0 * * * *", "agent": "digest", **spec}
    document = {"spec": fields}
    applied = AppliedObject("Schedule", "nightly", "h" * 64, document, revision="c0ffee",
                            source="local", applied_at=at(applied_at))
    return ScheduleSnapshot(KEY, "local", "nightly", applied, "h" * 64,
                            spec=ScheduleSpec.model_validate(fields), now=at(now),
                            last_tick=TickInfo(at(last), "fired") if last else None,
                            agent_applied=agent_applied, versions=versions, active=active)


def ticks(s: ScheduleSnapshot) -> tuple[str, list[tuple[str, str]], float | None]:
    assert s.applied is not None
    plan = decide_schedule(s, s.applied)
    done = [(a.params["due_at"][11:16], a.params["outcome"]) for a in plan.actions]
    return plan.decision, done, plan.requeue_after


@pytest.mark.parametrize(("s", "decision", "done", "requeue"), [
    # On time: the instant fires, the key comes back at the next one.
    (snapshot("2026-11-22T10:00:02", last="2026-11-22T09:00"), "Fired",
     [("10:00", "fired")], 3598.0),
    # Nothing due since the last tick: wait for the next instant.
    (snapshot("2026-11-22T10:30", last="2026-11-22T10:00"), "Scheduled", [], 1800.0),
    # Never ticked: counted from when the schedule was applied, not from the epoch.
    (snapshot("2026-11-22T10:00:01", applied_at="2026-11-22T09:30"), "Fired",
     [("10:00", "fired")], 3599.0),
    # Down for three hours. latest: the missed ones are one skipped tick, the newest fires.
    (snapshot("2026-11-22T10:00:03", last="2026-11-22T07:00"), "Fired",
     [("09:00", "skipped"), ("10:00", "fired")], 3597.0),
    # none: the newest is on time, so it fires; the older are recorded missed.
    (snapshot("2026-11-22T10:00:03", last="2026-11-22T07:00", catchUp="none"), "Fired",
     [("09:00", "skipped"), ("10:00", "fired")], 3597.0),
    # none, and the newest is late too: nothing fires.
    (snapshot("2026-11-22T10:20", last="2026-11-22T07:00", catchUp="none"), "Missed",
     [("10:00", "skipped")], 2400.0),
    # latest fires the newest even late.
    (snapshot("2026-11-22T10:20", last="2026-11-22T07:00"), "Fired",
     [("09:00", "skipped"), ("10:00", "fired")], 2400.0),
    # all: the oldest missed one fires now, the key comes back at once for the next.
    (snapshot("2026-11-22T10:20", last="2026-11-22T07:00", catchUp="all"), "Fired",
     [("08:00", "fired")], 0.0),
    # Suspended: the due instant is recorded skipped, nothing fires.
    (snapshot("2026-11-22T10:00:02", last="2026-11-22T09:00", suspended=True), "Suspended",
     [("10:00", "skipped")], 3598.0),
    # The agent has no READY version: a skipped tick with the reason; Blocked.
    (snapshot("2026-11-22T10:00:02", last="2026-11-22T09:00",
              versions=(VersionInfo(2, "h", "FAILED", "code", "ruff: F821"),)),
     "AgentNotReady", [("10:00", "skipped")], 3598.0),
    (snapshot("2026-11-22T10:00:02", last="2026-11-22T09:00", agent_applied=False),
     "AgentNotApplied", [("10:00", "skipped")], 3598.0),
    # forbid: the previous run has not ended, the tick is skipped.
    (snapshot("2026-11-22T10:00:02", last="2026-11-22T09:00",
              active=(RunInfo(7, "agent:local/digest", "running", "schedule", KEY),)),
     "Overlap", [("10:00", "skipped")], 3598.0),
    # allow: fires beside it.
    (snapshot("2026-11-22T10:00:02", last="2026-11-22T09:00", concurrency="allow",
              active=(RunInfo(7, "agent:local/digest", "running", "schedule", KEY),)),
     "Fired", [("10:00", "fired")], 3598.0),
], ids=["on-time", "idle", "first-tick", "latest-after-downtime", "none-on-time",
        "none-late", "latest-late", "all", "suspended", "agent-failed", "agent-gone",
        "forbid", "allow"])
def test_decide(s: ScheduleSnapshot, decision: str, done: list[tuple[str, str]],
                requeue: float) -> None:
    assert ticks(s) == (decision, done, requeue)


def test_replace_stops_the_runs_it_replaces() -> None:
    s = snapshot("2026-11-22T10:00:02", last="2026-11-22T09:00", concurrency="replace",
                 active=(RunInfo(7, "agent:local/digest", "running", "schedule", KEY),))
    assert s.applied is not None
    plan = decide_schedule(s, s.applied)
    assert [(a.params["outcome"], a.params["replace"]) for a in plan.actions] == \
        [("fired", [7])]
    assert plan.actions[0].idempotency_key == f"tick:{KEY}:2026-11-22T10:00:00+00:00"


def test_reasons_name_what_was_missed_and_why() -> None:
    s = snapshot("2026-11-22T10:20", last="2026-11-22T07:00", catchUp="none")
    assert s.applied is not None
    (tick,) = decide_schedule(s, s.applied).actions
    assert "3 tick(s) due from 2026-11-22T08:00:00+00:00 to 2026-11-22T10:00:00+00:00" \
        in tick.params["reason"]
    assert "catchUp: none fires only a tick less than 300s late" in tick.params["reason"]
    failed = replace(s, versions=(VersionInfo(2, "h", "FAILED", "code", "ruff: F821"),))
    assert failed.applied is not None
    plan = decide_schedule(replace(failed, now=at("2026-11-22T10:00:02"),
                                   last_tick=TickInfo(at("2026-11-22T09:00"), "fired")),
                           failed.applied)
    assert "agent digest has no READY version (newest is v2, FAILED: ruff: F821)" in \
        plan.actions[0].params["reason"]


def test_all_catches_up_at_most_the_newest_hundred() -> None:
    s = snapshot("2026-11-22T10:00:30", last="2026-11-20T00:00", cron="* * * * *",
                 catchUp="all")
    assert s.applied is not None
    plan = decide_schedule(s, s.applied)
    skipped, fired = plan.actions
    assert skipped.params["outcome"] == "skipped"
    assert skipped.params["due_at"] == "2026-11-22T08:20:00Z" or \
        skipped.params["due_at"].startswith("2026-11-22T08:20:00")
    assert "every tick due up to 2026-11-22T08:20:00+00:00" in skipped.params["reason"]
    assert fired.params["due_at"].startswith("2026-11-22T08:21:00")
    assert plan.requeue_after == 0.0


def utc(instants: tuple[datetime, ...]) -> list[str]:
    return [i.strftime("%m-%d %H:%M") for i in instants]


@pytest.mark.parametrize(("cron", "start", "end", "expected"), [
    # Berlin, 29 March 2026: 02:00 CET becomes 03:00 CEST (01:00 UTC).
    ("30 2 * * *", "2026-03-28T12:00", "2026-03-30T12:00", ["03-29 01:00", "03-30 00:30"]),
    ("*/30 2,3 * * *", "2026-03-29T00:00", "2026-03-29T02:00", ["03-29 01:00", "03-29 01:30"]),
    ("*/30 * * * *", "2026-03-29T00:00", "2026-03-29T02:00",
     ["03-29 00:30", "03-29 01:00", "03-29 01:30", "03-29 02:00"]),
    # 25 October 2026: 03:00 CEST becomes 02:00 CET (01:00 UTC); 02:xx happens twice.
    ("30 2 * * *", "2026-10-24T12:00", "2026-10-26T12:00", ["10-25 00:30", "10-26 01:30"]),
    ("*/30 * * * *", "2026-10-24T23:00", "2026-10-25T02:00",
     ["10-24 23:30", "10-25 00:00", "10-25 00:30", "10-25 01:00", "10-25 01:30",
      "10-25 02:00"]),
], ids=["gap-fixed-hour-runs-after-it", "gap-collapses-to-one", "gap-wildcard-hour-skips",
        "repeat-fixed-hour-once", "repeat-wildcard-hour-twice"])
def test_daylight_saving_time(cron: str, start: str, end: str, expected: list[str]) -> None:
    pending = CronZone(cron, "Europe/Berlin").pending(at(start), at(end), 100)
    assert utc(pending.instants) == expected


def test_next_instant_across_the_repeated_hour() -> None:
    cron = CronZone("*/30 * * * *", "Europe/Berlin")
    # 02:45 CEST → the next is 02:00 CET (the repeated hour), not 03:00.
    assert cron.next_after(at("2026-10-25T00:45")) == at("2026-10-25T01:00")
    assert cron.next_after(at("2026-10-25T01:10")) == at("2026-10-25T01:30")
    assert CronZone("0 0 1 1 *", "America/New_York").next_after(at("2026-11-22T00:00")) == \
        at("2027-01-01T05:00")


def test_the_slow_walk_agrees_with_the_fast_path() -> None:
    """A window with a clock change inside is walked with margins; the instants away from the
    change are the same either way."""
    cron = CronZone("17 */3 * * *", "America/New_York")
    across = cron.pending(at("2026-10-30T00:00"), at("2026-11-03T00:00"), 100).instants
    before = cron.pending(at("2026-10-30T00:00"), at("2026-10-31T00:00"), 100).instants
    after = cron.pending(at("2026-11-02T00:00"), at("2026-11-03T00:00"), 100).instants
    assert set(before) | set(after) <= set(across)
    assert len(across) == 4 * 8  # 8 a day, the day clocks go back included
    assert len(set(across)) == len(across)


def test_a_cron_that_slipped_past_validation_stalls_with_the_reason() -> None:
    s = snapshot("2026-11-22T10:00:02", last="2026-11-22T09:00")
    assert s.applied is not None and s.spec is not None
    never = replace(s, spec=s.spec.model_construct(**{**dict(s.spec), "cron": "0 0 31 2 *"}))
    plan = decide_schedule(never, s.applied)
    assert (plan.decision, plan.status) == ("NeverFires", "Stalled")
    assert "0 0 31 2 * in UTC cannot fire" in plan.reason


@pytest.mark.parametrize(("cron", "why"), [
    ("61 * * * *", "field 1, '61', is not a valid minute (0-59)"),
    ("0 0 * * 8", "field 5, '8', is not a valid weekday"),
    ("0 0 31 2 *", "never fires (no such date)"),
    ("@hourly", "this one has 1 field(s)"),
])
def test_validation_names_what_is_wrong_with_a_cron(cron: str, why: str) -> None:
    with pytest.raises(ValueError, match=re.escape(why)):
        ScheduleSpec.model_validate({"cron": cron, "agent": "a"})


# Armed ticks (reconcilers/agents/armed.py): what the schedule arms, and what the run worker
# that claims an armed run decides at its instant.

ARMED = ArmedTick(at("2026-11-22T11:00"), 7, "h" * 64, "0 * * * *", "UTC", "allow")


def armed_plan(s: ScheduleSnapshot) -> tuple[str, list[tuple[str, Any]], float | None]:
    assert s.applied is not None
    plan = decide_armed(s, s.applied)
    return plan.decision, [(a.kind, a.params.get("due_at")) for a in plan.actions], \
        plan.requeue_after


def test_the_next_instant_is_armed_and_the_key_rests() -> None:
    s = snapshot("2026-11-22T10:30", last="2026-11-22T10:00")
    assert armed_plan(s) == ("Scheduled", [("schedule.arm", "2026-11-22T11:00:00Z")], None)
    # Armed already, with these settings: nothing to write.
    assert armed_plan(replace(s, armed=ARMED)) == ("Scheduled", [], None)


def test_a_change_rearms_and_suspend_or_an_unreadable_schedule_disarms() -> None:
    changed = snapshot("2026-11-22T10:30", last="2026-11-22T10:00", concurrency="forbid")
    changed = replace(changed, armed=replace(ARMED, hash="0" * 64))
    assert armed_plan(changed)[1] == [("schedule.arm", "2026-11-22T11:00:00Z")]
    suspended = replace(snapshot("2026-11-22T10:30", last="2026-11-22T10:00", suspended=True),
                        armed=ARMED)
    assert armed_plan(suspended) == ("Suspended", [("schedule.arm", None)], 1800.0)
    unreadable = replace(suspended, spec=None, unreadable="bad")
    assert armed_plan(unreadable)[:2] == ("Unreadable", [("schedule.arm", None)])


def test_an_armed_tick_due_now_is_left_to_its_run_worker_and_a_late_one_taken_over() -> None:
    due = replace(snapshot("2026-11-22T11:00:02", last="2026-11-22T10:00"), armed=ARMED)
    assert armed_plan(due) == ("Due", [], None)
    # Not claimed before the next instant: withdrawn, then the catch-up rules (latest) decide.
    late = replace(snapshot("2026-11-22T12:00:03", last="2026-11-22T10:00"), armed=ARMED)
    decision, actions, _ = armed_plan(late)
    assert decision == "Fired"
    assert actions == [("schedule.arm", "2026-11-22T13:00:00Z"),
                       ("schedule.tick", "2026-11-22T11:00:00Z"),
                       ("schedule.tick", "2026-11-22T12:00:00Z")]


AGENT = AppliedObject("Agent", "digest", "a" * 64, {"spec": {
    "description": "digests the day", "code": "agents/digest.py"}}, source="local")


def run_snapshot(now: str, **fields: Any) -> RunSnapshot:
    run = RunInfo(7, "agent:local/digest", "queued", "schedule", KEY,
                  fields.pop("stop_requested", None))
    base: dict[str, Any] = {"applied": AGENT, "versions": (VersionInfo(1, "h", "READY",
                                                                        "code"),),
                            "now": at(now), "armed": ARMED}
    return RunSnapshot("run:local/digest#7", "agent:local/digest", "local", "digest", run,
                       **{**base, **fields})


def test_the_run_worker_decides_the_armed_instant() -> None:
    policy = Policy()
    early = decide_run(run_snapshot("2026-11-22T10:59:30"), policy)
    assert (early.decision, early.actions, early.requeue_after) == ("Armed", (), 30.0)
    fired = decide_run(run_snapshot("2026-11-22T11:00:00.2"), policy)
    assert fired.decision == "Run"
    params = fired.actions[0].params["armed"]
    assert (params["outcome"], params["next_due"]) == ("fired", "2026-11-22T12:00:00Z")
    going = (RunInfo(6, "agent:local/digest", "running", "schedule", KEY),)
    forbid = decide_run(run_snapshot("2026-11-22T11:00:01", active=going,
                                     armed=replace(ARMED, concurrency="forbid")), policy)
    assert forbid.decision == "Overlap" and forbid.forget
    assert forbid.actions[0].params["outcome"] == "skipped"
    assert "run 6 (running) of this schedule has not ended" in forbid.actions[0].params["reason"]
    replaced = decide_run(run_snapshot("2026-11-22T11:00:01", active=going,
                                       armed=replace(ARMED, concurrency="replace")), policy)
    assert replaced.actions[0].params["armed"]["replace"] == [6]
    stopped = decide_run(run_snapshot("2026-11-22T11:00:01", stop_requested="ops"), policy)
    assert stopped.decision == "Cancelled" and stopped.actions[0].params["outcome"] == "skipped"
    late = decide_run(run_snapshot("2026-11-22T12:00:01"), policy)
    assert (late.decision, late.enqueue, late.actions) == ("Late", (KEY,), ())
