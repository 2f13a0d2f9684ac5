"""Agent runs (`run:<source>/<agent>#<id>`): a queued run is carried out once, by a run worker.

A run is queued by a schedule's tick, `p38 run`, `POST /api/agents/{name}/runs` or n8n, with
the hint that brings it here. `decide` starts it (`agent.run`: the harness, for the agent's
newest READY version, under the manifest's limits as they are now) unless it cannot run: the
agent is gone, has no READY version, spent its `usdPerDay`, or the run was asked to stop.
A run armed ahead by a schedule (reconcilers/agents/armed.py) decides its tick's instant first:
too early, late, skipped or fired, with the schedule's settings it was armed with.
A run cut off by a shutdown or a crash is queued once more by the runner when its agent allows
it (`retryOnInterrupt`), once only, else it ends `interrupted`. Runs have no status of their
own (they are records: /api/runs); the key is forgotten once the run has ended. `machine` is
the run's lifecycle (reconcilers/agents/lifecycles.py: queued -> running -> finished, running
-> queued once after an interruption), moved only through `controller.providers.lifecycle.move`.
No I/O of its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, ClassVar

from pydantic import ValidationError

from controller.manifests.models import AgentSpec, duration_seconds
from controller.reconcile.context import AppliedObject, ObserveContext
from controller.reconcile.fsm import StateMachine
from controller.reconcile.ids import key_name
from controller.reconcile.plan import Plan
from controller.reconcile.reconciler import Reconciler, object_key
from reconcilers.agents import armed as arming
from reconcilers.agents.agent_actions import (
    AGENTS,
    ArmedTick,
    FinishRun,
    FireArmed,
    RunAgent,
    RunInfo,
    VersionInfo,
)
from reconcilers.agents.lifecycles import RUN_MACHINE

if TYPE_CHECKING:
    from controller.reconcile.policy import Policy

QUANTITY_BYTES = {"Ki": 1024, "Mi": 1024 ** 2, "Gi": 1024 ** 3}


def run_key(agent_key: str, run_id: int) -> str:
    """`run:local/digest#17` for run 17 of `agent:local/digest`."""
    return f"run:{key_name(agent_key)}#{run_id}"


def run_ref(key: str) -> tuple[str, int] | None:
    """(agent key, run id) of a run key; None when the key is not one."""
    name, _, number = key_name(key).rpartition("#")
    source, slash, agent = name.rpartition("/")
    if not slash or not source or not agent or not number.isdigit():
        return None
    return f"agent:{name}", int(number)


def memory_bytes(quantity: str) -> int:
    return int(quantity[:-2]) * QUANTITY_BYTES[quantity[-2:]]


@dataclass(frozen=True)
class RunSnapshot:
    key: str
    agent: str
    source: str
    name: str
    run: RunInfo | None
    applied: AppliedObject | None = None
    versions: tuple[VersionInfo, ...] = ()
    spent_today: float = 0.0
    installation_id: int | None = None
    now: datetime | None = None
    armed: ArmedTick | None = None  # an armed tick's run, its instant not decided yet
    active: tuple[RunInfo, ...] = ()  # (armed) the schedule's other runs not ended


class Runs(Reconciler):
    kind: ClassVar[str] = "run"
    machine: ClassVar[StateMachine | None] = RUN_MACHINE
    owns: ClassVar[frozenset[str]] = frozenset({"schedule"})  # an armed tick claimed late
    deadline: ClassVar[float | None] = 3600.0 + 120.0  # the longest run, and its records

    def source(self, key: str) -> str | None:
        ref = run_ref(key)
        return key_name(ref[0]).rpartition("/")[0] if ref else None

    async def observe(self, ctx: ObserveContext, key: str) -> RunSnapshot:
        ref = run_ref(key)
        if ref is None:
            return RunSnapshot(key, "", "", "", None)
        agent, run_id = ref
        source, _, name = key_name(agent).rpartition("/")
        seen = await ctx.reads(AGENTS).run_observed(run_id, source, name)  # one round trip
        if seen.run is None or seen.run.state == "finished":
            return RunSnapshot(key, agent, source, name, seen.run)
        return RunSnapshot(key, agent, source, name, seen.run, applied=seen.agent,
                           versions=seen.versions, spent_today=seen.spent_today,
                           installation_id=seen.installation_id, now=seen.now,
                           armed=seen.armed, active=seen.active)

    def decide(self, snapshot: RunSnapshot, policy: Policy) -> Plan:
        return decide_run(snapshot, policy)


def decide_run(snapshot: RunSnapshot, policy: Policy) -> Plan:
    """What to do with one run (pure)."""
    run = snapshot.run
    if run is None:
        return Plan("Gone", f"{snapshot.key}: no such run", forget=True)
    if run.state == "finished":
        return Plan("Finished", f"run {run.id} has ended", forget=True)
    fired: FireArmed | None = None
    if snapshot.armed is not None:
        decided = decide_armed(snapshot, snapshot.armed)
        if isinstance(decided, Plan):
            return decided
        fired = decided

    def finish(outcome: str, decision: str, error: str) -> Plan:
        params = FinishRun(run_id=run.id, outcome=outcome, error=error)
        ticked = () if fired is None else (fired.action(
            f"tick:{fired.schedule}:{fired.due_at.isoformat()}",
            description=f"{fired.schedule} due {fired.due_at.isoformat()}: fired"),)
        return Plan(decision, error, actions=(*ticked, params.action(
            f"run-finish:{run.id}", description=f"end run {run.id}: {error}")), forget=True)

    if run.stop_requested is not None and run.state == "queued":
        return finish("cancelled", "Cancelled", f"stopped before it started: "
                                                f"{run.stop_requested}")
    spec = _spec(snapshot.applied)
    if spec is None:
        ident = object_key("Agent", snapshot.source, snapshot.name)
        return finish("failed", "AgentGone", f"{ident} is not applied (any more)")
    ready = [v for v in snapshot.versions if v.state == "READY"]
    if not ready:
        return finish("failed", "NoReadyVersion", f"agent {snapshot.name} has no READY "
                                                  "version to run")
    limit = spec.limits.usd_per_day
    if snapshot.spent_today >= limit > 0 or limit == 0:
        return finish("over_budget", "OverBudget",
                      f"agent {snapshot.name} spent ${snapshot.spent_today:.4f} today; its "
                      f"limit is ${limit:.2f} a day (limits.usdPerDay)")
    version = ready[0]
    params = RunAgent(run_id=run.id, agent=snapshot.agent, source=snapshot.source,
                      version=version.number, tools=list(spec.tools),
                      timeout_seconds=duration_seconds(spec.limits.timeout),
                      memory_bytes=memory_bytes(spec.limits.memory),
                      tokens_per_run=spec.limits.tokens_per_run, notify=list(spec.notify),
                      model=spec.model, workflows=list(spec.workflows),
                      workflow_urls={n: str(t.url) for n, t in
                                     policy.spec.workflows.items() if n in spec.workflows},
                      notify_urls={n: str(t.url) for n, t in
                                   policy.spec.notifications.items() if n in spec.notify},
                      installation_id=snapshot.installation_id,
                      retry_on_interrupt=(spec.retry_on_interrupt
                                          if spec.retry_on_interrupt is not None
                                          else run.trigger == "schedule"), armed=fired)
    return Plan("Run", f"run {run.id} of {snapshot.name} v{version.number} ({run.trigger})",
                actions=(params.action(f"run:{run.id}", description=(
                    f"run {snapshot.name} v{version.number} ({run.trigger}, timeout "
                    f"{spec.limits.timeout}, memory {spec.limits.memory})")),), forget=True)


def decide_armed(snapshot: RunSnapshot, armed: ArmedTick) -> Plan | FireArmed:
    """The instant of an armed tick (reconcilers/agents/armed.py): a plan when the run does not
    go on (too early, late, skipped), else the tick fired (carried out before the run)."""
    run, now = snapshot.run, snapshot.now
    assert run is not None and now is not None and run.schedule is not None
    schedule = run.schedule
    if now < armed.due_at:
        return Plan("Armed", f"run {run.id} is armed for {armed.due_at.isoformat()}",
                    requeue_after=(armed.due_at - now).total_seconds())
    if arming.is_late(armed, now):
        return Plan("Late", f"the tick of {armed.due_at.isoformat()} was not claimed in time: "
                            f"{schedule} applies its catch-up rules", enqueue=(schedule,),
                    forget=True)
    if run.stop_requested is not None:
        why: tuple[str, str] | None = (f"stopped before it started: {run.stop_requested}",
                                       "Cancelled")
    else:
        spec = _spec(snapshot.applied)
        why = arming.blocked(snapshot.name, snapshot.source, spec is not None,
                             snapshot.versions, armed.concurrency, snapshot.active)
    if why is not None:
        reason, decision = why
        params = arming.fire(schedule, snapshot.agent, armed, "skipped", reason)
        return Plan(decision, f"skipped the tick of {armed.due_at.isoformat()}: {reason}",
                    actions=(params.action(
                        f"tick:{schedule}:{armed.due_at.isoformat()}",
                        description=f"{schedule} due {armed.due_at.isoformat()}: record a "
                                    f"skipped tick: {reason}"),), forget=True)
    stop = [r.id for r in snapshot.active] if armed.concurrency == "replace" else []
    late = "" if now - armed.due_at < timedelta(seconds=1) else \
        f" (late by {(now - armed.due_at).total_seconds():.0f}s)"
    replaced = f"; stopping run(s) {', '.join(map(str, stop))}" if stop else ""
    return arming.fire(schedule, snapshot.agent, armed, "fired", f"due{late}{replaced}", stop)


def _spec(applied: AppliedObject | None) -> AgentSpec | None:
    if applied is None:
        return None
    try:
        return AgentSpec.model_validate(applied.document.get("spec") or {})
    except ValidationError:
        return None
