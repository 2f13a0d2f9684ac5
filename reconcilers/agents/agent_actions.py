"""The typed parameters of the agent actions, shared by the reconcilers that plan them
(`reconcilers/agents/agents.py`, `runs.py`, `schedules.py`) and the runners that carry them out
(`controller/providers/agents.py`), and the reads those reconcilers use (`AGENTS`).

No I/O: parameters, a protocol and small frozen records.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, Literal, Protocol

from controller.reconcile.context import ReadsKey
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

