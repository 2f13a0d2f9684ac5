"""The typed parameters of the agent actions, shared by the reconcilers that plan them
(`reconcilers/agents/agents.py`, `runs.py`, `schedules.py`) and the runners that carry them out
(`controller/providers/agents.py`), and the reads those reconcilers use (`AGENTS`).

No I/O: parameters, a protocol and small frozen records.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, Literal, Protocol

from controller.reconcile.context import AppliedObject, ReadsKey
from controller.reconcile.plan import Params

VersionState = Literal["PENDING", "GENERATING", "VALIDATING", "READY", "FAILED"]
RunOutcome = Literal["succeeded", "failed", "timed_out", "killed", "over_budget", "cancelled"]


class BuildVersion(Params):
    """Build a version of `agent` from hand-written code (`code`, `test`): validate it and
    record it READY or FAILED. The runner finds the version of `spec_hash` first, so a build
    cut short resumes on its row instead of numbering another."""

    action_kind: ClassVar[str] = "agent.build"
    needs: ClassVar[str | None] = "agents"
    agent: str
    spec_hash: str
    model: str
    spec: dict[str, Any]
    code_path: str | None = None
    code: str | None = None
    test: str | None = None
    after: int | None = None  # build anew unless a version newer than this one exists


class GenerateVersion(BuildVersion):
    """Have Claude write the version from the description, then validate it (fix rounds)."""

    action_kind: ClassVar[str] = "agent.generate"
    needs: ClassVar[str | None] = "anthropic"
    job: ClassVar[str | None] = "generation"  # minutes of Claude: its own workers
    fix_rounds: int = 3  # the Policy's agents.fixRounds
    usd_ceiling: float = 3.0  # the Policy's agents.generationUsd


class RunAgent(Params):
    """Run `version` of `agent` for run `run_id` in the harness, serving its tool calls."""

    action_kind: ClassVar[str] = "agent.run"
    needs: ClassVar[str | None] = "agents"
    run_id: int
    agent: str
    source: str
    version: int
    tools: list[str]
    timeout_seconds: float
    memory_bytes: int
    tokens_per_run: int
    retry_on_interrupt: bool = False  # run once more if a shutdown interrupts it
    notify: list[str]
    notify_urls: dict[str, str] = {}  # the Policy's URL of each of `notify`
    model: str = ""  # what the claude tool asks
    workflows: list[str] = []  # n8n workflows the n8n tool may start
    workflow_urls: dict[str, str] = {}  # the Policy's URL of each of `workflows`
    installation_id: int | None = None
    armed: FireArmed | None = None  # an armed tick: its instant recorded fired first


class QueueRun(Params):
    """Queue a run of `agent` asked for by a delivery (n8n's `agent.run`), once per delivery."""

    action_kind: ClassVar[str] = "agent.queue_run"
    agent: str
    trigger: Literal["n8n"] = "n8n"
    requested_by: str
    input: Any = None


class FinishRun(Params):
    """End run `run_id` without running it (no READY version, over budget, agent gone)."""

    action_kind: ClassVar[str] = "agent.finish_run"
    run_id: int
    outcome: RunOutcome
    error: str


class Tick(Params):
    """Record the tick of `schedule` due at `due_at` (fired or skipped, once across every
    controller process) and, when fired, queue a run of `agent`; stop `replace` runs first."""

    action_kind: ClassVar[str] = "schedule.tick"
    needs: ClassVar[str | None] = "agents"
    schedule: str
    due_at: datetime
    outcome: Literal["fired", "skipped"]
    reason: str
    agent: str
    replace: list[int] = []


class Arm(Params):
    """Arm the tick of `schedule` due at `due_at` (its row, a queued run, the run's key due at
    the instant: reconcilers/agents/armed.py) with the schedule's settings as they are now;
    withdraw first whatever else is armed and not yet due (and what is due before
    `late_before`: the schedule takes those over). `due_at` None: only withdraw."""

    action_kind: ClassVar[str] = "schedule.arm"
    needs: ClassVar[str | None] = "agents"
    schedule: str
    agent: str
    due_at: datetime | None
    cron: str
    timezone: str
    concurrency: str
    hash: str  # the schedule's content hash: a change re-arms
    late_before: datetime | None = None


class FireArmed(Params):
    """Decide the instant of an armed tick (fired, or skipped with `reason`) while it is still
    armed for `run_id`, and arm `next_due`; `replace` runs are stopped first."""

    action_kind: ClassVar[str] = "schedule.fire_armed"
    needs: ClassVar[str | None] = "agents"
    schedule: str
    due_at: datetime
    run_id: int
    outcome: Literal["fired", "skipped"]
    reason: str
    next_due: datetime | None
    agent: str
    cron: str
    timezone: str
    concurrency: str
    hash: str
    replace: list[int] = []


RunAgent.model_rebuild()


@dataclass(frozen=True)
class VersionInfo:
    number: int
    spec_hash: str
    state: VersionState
    origin: str
    error: str | None = None
    usd: float = 0.0
    rounds: int = 0
    failure: str | None = None  # 'provider': the API refused the credential (not the code)
    failed_credential: str | None = None  # that credential's fingerprint


@dataclass(frozen=True)
class RunInfo:
    id: int
    agent: str
    state: Literal["queued", "running", "finished"]
    trigger: str
    schedule: str | None = None
    stop_requested: str | None = None


@dataclass(frozen=True)
class TickInfo:
    due_at: datetime
    outcome: str


@dataclass(frozen=True)
class ArmedTick:
    """A tick armed ahead (reconcilers/agents/armed.py), with the settings it was armed with."""

    due_at: datetime
    run_id: int
    hash: str
    cron: str
    timezone: str
    concurrency: str


@dataclass(frozen=True)
class RunObserved:
    """All a run's reconcile reads, in one round trip (`AgentReads.run_observed`)."""

    run: RunInfo | None
    now: datetime | None = None
    armed: ArmedTick | None = None  # the run is an armed tick's, still armed
    versions: tuple[VersionInfo, ...] = ()  # the newest, and the newest READY one
    spent_today: float = 0.0
    installation_id: int | None = None
    agent: AppliedObject | None = None
    active: tuple[RunInfo, ...] = ()  # an armed run's schedule's other runs not ended


class AgentReads(Protocol):
    """What the agent, run and schedule reconcilers read about agents (provider `agents`)."""

    async def versions(self, agent: str) -> list[VersionInfo]:
        """The agent's versions, newest first."""
        ...

    async def run(self, run_id: int) -> RunInfo | None:
        ...

    async def active_runs(self, agent: str) -> list[RunInfo]:
        """The agent's runs not finished yet, oldest first."""
        ...

    async def spent_today(self, agent: str) -> float:
        """US dollars the agent's runs spent since midnight UTC."""
        ...

    async def last_tick(self, schedule: str) -> TickInfo | None:
        """The newest tick decided (fired or skipped; an armed one is not)."""
        ...

    async def armed_tick(self, schedule: str) -> ArmedTick | None:
        """The schedule's armed tick (the oldest, when one is due and the next armed too)."""
        ...

    async def run_observed(self, run_id: int, source: str, name: str) -> RunObserved:
        """Run `run_id` of agent `name` from `source`, and what its reconcile decides with."""
        ...

    async def now(self) -> datetime:
        """The current time (UTC): what schedules are due against."""
        ...

    async def rebuild_after(self, agent: str) -> int | None:
        """The version a rebuild asked for (`p38 agents rebuild`) comes after; None: none."""
        ...

    async def credential(self, provider: str) -> str | None:
        """A fingerprint of the provider's credential in this process (never the credential
        itself); None when it is not configured."""
        ...


AGENTS: ReadsKey[AgentReads] = ReadsKey("agents")

