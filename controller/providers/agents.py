"""The agents provider: the runners of the agent actions (build a version, run one, end a run,
fire a schedule's tick, arm one ahead and decide an armed one at its instant), the tools an
agent's run may call, and the reads the agent, run and schedule reconcilers use. Needs no
credentials: always available.

Runners find before they create: a build resumes the unfinished version of its spec hash; a
run starts only from `queued` (controller/providers/agent_runs.py: the run itself, its tool
calls, a run cut off by a shutdown or a crash); a tick is one row per schedule and due time,
and an armed one is decided only while its row still says `armed` (migration 0026).
Versions and runs change state only through `controller.providers.lifecycle.move`, from the
states their machines allow (reconcilers/agents/lifecycles.py).
Generation by Claude (`agent.generate`) belongs to the Anthropic provider.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import AsyncIterator, Mapping
from datetime import datetime
from typing import Any

from controller.clients.agent_validation import Report, validate
from controller.clients.sandbox import REQUIRED, Sandbox
from controller.clients.tools import (
    HttpCall,
    Notify,
    StartWorkflow,
    ToolClient,
)
from controller.clients.warm_pool import WarmPool
from controller.providers import Env, Provider, anthropic
from controller.providers.agent_runs import run_version
from controller.providers.anthropic import fingerprint
from controller.providers.lifecycle import RUNS, VERSIONS, move
from controller.reconcile.context import AppliedObject
from controller.reconcile.desk import Desk
from controller.reconcile.plan import Action, ActionRunner, runner
from controller.store import RejectedValue, Store
from reconcilers.agents.agent_actions import (
    Arm,
    ArmedTick,
    BuildVersion,
    FinishRun,
    FireArmed,
    QueueRun,
    RunAgent,
    RunInfo,
    RunObserved,
    Tick,
    TickInfo,
    VersionInfo,
)

NAME = "agents"


@contextlib.asynccontextmanager
async def bundle(env: Env) -> AsyncIterator[Provider]:
    async with ToolClient.open() as tools:
        key = env.settings.providers.anthropic_api_key
        credentials = {anthropic.NAME: fingerprint(key.get_secret_value()) if key else None}
        yield Provider(NAME, runners=runners(env.store, env.desk, tools, env.sandbox,
                                             pool=env.pool),
                       reads=AgentStoreReads(env.store, credentials))


def runners(store: Store, desk: Desk | None, tools: ToolClient,
            sandbox: Sandbox = REQUIRED, *,
            pool: WarmPool | None = None) -> dict[str, ActionRunner]:
    async def build(p: BuildVersion, _action: Action) -> Mapping[str, Any]:
        return await build_version(store, p, sandbox)

    async def run(p: RunAgent, _action: Action) -> Mapping[str, Any]:
        if p.armed is not None:
            fired = await fire_armed(store, p.armed)
            if not fired.get("decided"):
                return {"run": p.run_id, **fired}  # withdrawn meanwhile: nothing runs
        return await run_version(store, desk, p, sandbox, pool=pool)

    async def finish(p: FinishRun, _action: Action) -> Mapping[str, Any]:
        await move(store, RUNS, (p.run_id,), "finished", p.error, outcome=p.outcome,
                   error=p.error)
        return {"run": p.run_id, "outcome": p.outcome}

    async def tick(p: Tick, _action: Action) -> Mapping[str, Any]:
        return await fire_tick(store, p)

    async def arm(p: Arm, _action: Action) -> Mapping[str, Any]:
        return await arm_tick(store, p)

    async def fire(p: FireArmed, _action: Action) -> Mapping[str, Any]:
        return await fire_armed(store, p)

    async def queue(p: QueueRun, _action: Action) -> Mapping[str, Any]:
        try:
            row = await store.fetchrow("agent_run_create", p.agent, p.trigger, p.requested_by,
                                       None, p.input)
        except (RejectedValue, ValueError) as exc:  # never a key jammed by one bad request
            row = await store.fetchrow("agent_run_create", p.agent, p.trigger, p.requested_by,
                                       None, None)
            assert row is not None
            why = f"the input cannot be stored: {exc}"[:1000]
            await move(store, RUNS, (row["id"],), "finished", why, outcome="failed", error=why)
            return {"run": row["id"], "refused_input": True}
        assert row is not None
        return {"run": row["id"]}

    async def http(p: HttpCall, _action: Action) -> Mapping[str, Any]:
        return await tools.http(p)

    async def notify(p: Notify, _action: Action) -> Mapping[str, Any]:
        return await tools.notify(p)

    async def start_workflow(p: StartWorkflow, _action: Action) -> Mapping[str, Any]:
        return await tools.start_workflow(p)

    return {**runner(BuildVersion, build), **runner(RunAgent, run),
            **runner(FinishRun, finish), **runner(Tick, tick), **runner(QueueRun, queue),
            **runner(Arm, arm), **runner(FireArmed, fire),
            **runner(HttpCall, http), **runner(Notify, notify),
            **runner(StartWorkflow, start_workflow)}


async def build_version(store: Store, p: BuildVersion,
                        sandbox: Sandbox = REQUIRED) -> Mapping[str, Any]:
    """Validate hand-written code and record the version READY or FAILED (`SandboxRefused`,
    leaving it VALIDATING, when its test cannot run here)."""
    found = await find_version(store, p)
    if found is not None and found["state"] in ("READY", "FAILED"):
        return {"version": found["number"], "state": found["state"], "found": True}
    number = found["number"] if found is not None else await store.fetchval(
        "agent_version_create", p.agent, p.spec_hash, "code", None, p.spec)
    started = time.perf_counter()
    (await move(store, VERSIONS, (p.agent, number), "VALIDATING", "hand-written code: its test "
                "runs", code=p.code, test=p.test, report={})).required()
    report = await validate(p.code or "", p.test, sandbox=sandbox)
    report = in_repository_terms(report, p.code_path, p.spec.get("test"))
    state = "READY" if report.ok else "FAILED"
    error = None if report.ok else "; ".join(report.problems)[:4000]
    (await move(store, VERSIONS, (p.agent, number), state, error or "its test passed",
                code=p.code, test=p.test, report=report.as_json(), error=error,
                duration_ms=(time.perf_counter() - started) * 1000)).required()
    return {"version": number, "state": state}


_HARNESS_FILE = re.compile(r"(?:[\w.-]*/)*\b(test_agent|agent)\.py\b")


def in_repository_terms(report: Report, code_path: str | None, test_path: Any) -> Report:
    """Validation's messages name the harness's files (`agent.py`, `test_agent.py`); a
    hand-written agent's author knows them by their paths in the repository
    (`agents/uptime.py`), so they are named so. (The test still imports `from agent import
    run`: that is the module's name in the harness.)"""
    if code_path is None:
        return report
    names = {"agent": code_path,
             "test_agent": test_path if isinstance(test_path, str) else "test_agent.py"}

    def renamed(text: str) -> str:
        return _HARNESS_FILE.sub(lambda m: names[m.group(1)], text)

    steps = {step: {k: [renamed(v) for v in value] if k == "problems" and isinstance(
                        value, list) else value for k, value in found.items()}
             if isinstance(found, dict) else found for step, found in report.steps.items()}
    return Report(report.ok, [renamed(problem) for problem in report.problems], steps)


async def find_version(store: Store, p: BuildVersion) -> Mapping[str, Any] | None:
    """The version of `p`'s spec hash to finish or resume (find before create); with
    `p.after` (a rebuild, a retry), only one newer than that."""
    found = await store.fetchrow("agent_version_find", p.agent, p.spec_hash)
    if found is not None and p.after is not None and found["number"] <= p.after:
        return None
    return found


async def fire_tick(store: Store, p: Tick) -> Mapping[str, Any]:
    """One row per schedule and due time: the process whose INSERT wins queues the run."""
    for run_id in p.replace:
        await store.execute("agent_run_stop", run_id, f"replaced by the tick of {p.due_at}")
    async with store.transaction() as tx:
        won = await tx.fetchval("schedule_tick_record", p.schedule, p.due_at, p.outcome,
                                p.reason)
        if won is None:
            return {"tick": p.due_at.isoformat(), "fired_elsewhere": True}
        if p.outcome != "fired":
            return {"tick": p.due_at.isoformat(), "skipped": p.reason}
        row = await tx.fetchrow("agent_run_create", p.agent, "schedule", None, p.schedule,
                                {"due_at": p.due_at.isoformat()})
        assert row is not None
        await tx.execute("schedule_tick_run", p.schedule, p.due_at, row["id"])
    return {"tick": p.due_at.isoformat(), "run": row["id"]}


def _settings(cron: str, timezone: str, concurrency: str, content_hash: str) -> dict[str, str]:
    return {"cron": cron, "timezone": timezone, "concurrency": concurrency,
            "hash": content_hash}


async def arm_tick(store: Store, p: Arm) -> Mapping[str, Any]:
    """Arm the tick due at `p.due_at` (and withdraw what else is armed): one statement."""
    run = await store.fetchval("schedule_arm", p.schedule, p.due_at, p.agent,
                               _settings(p.cron, p.timezone, p.concurrency, p.hash),
                               p.late_before)
    return {"armed": p.due_at.isoformat() if p.due_at else None, "run": run}


async def fire_armed(store: Store, p: FireArmed) -> Mapping[str, Any]:
    """The armed tick's instant, decided once (its row moves from `armed` only once), and the
    next instant armed: one statement (and one per run a `replace` stops)."""
    for run_id in p.replace:
        await store.execute("agent_run_stop", run_id, f"replaced by the tick of {p.due_at}")
    row = await store.fetchrow("schedule_fire_armed", p.schedule, p.due_at, p.run_id,
                               p.outcome, p.reason, p.next_due, p.agent,
                               _settings(p.cron, p.timezone, p.concurrency, p.hash))
    assert row is not None
    return {"tick": p.due_at.isoformat(), "outcome": p.outcome, "decided": row["decided"],
            "next_run": row["next_run"]}


class AgentStoreReads:
    """`reconcilers.agents.agent_actions.AgentReads` over the store."""

    def __init__(self, store: Store, credentials: Mapping[str, str | None] | None = None,
                 ) -> None:
        self._store = store
        self._credentials = dict(credentials or {})

    async def versions(self, agent: str) -> list[VersionInfo]:
        rows = await self._store.gathered.fetch("agent_versions_of", agent, 100)
        return [VersionInfo(r["number"], r["spec_hash"], r["state"], r["origin"], r["error"],
                            r["usd"], r["rounds"], r["failure"], r["failed_credential"])
                for r in rows]

    async def rebuild_after(self, agent: str) -> int | None:
        after = await self._store.gathered.fetchval("agent_rebuild_of", agent)
        return int(after) if after is not None else None

    async def credential(self, provider: str) -> str | None:
        return self._credentials.get(provider)

    async def run(self, run_id: int) -> RunInfo | None:
        row = await self._store.gathered.fetchrow("agent_run_get", run_id)
        return None if row is None else _run_info(row)

    async def active_runs(self, agent: str) -> list[RunInfo]:
        rows = await self._store.gathered.fetch("agent_runs_active", agent)
        return [RunInfo(r["id"], agent, r["state"], "schedule" if r["schedule"] else "manual",
                        r["schedule"]) for r in rows]

    async def spent_today(self, agent: str) -> float:
        return float(await self._store.gathered.fetchval("agent_spend_today", agent) or 0.0)

    async def last_tick(self, schedule: str) -> TickInfo | None:
        row = await self._store.gathered.fetchrow("schedule_tick_last", schedule)
        return None if row is None else TickInfo(row["due_at"], row["outcome"])

    async def armed_tick(self, schedule: str) -> ArmedTick | None:
        row = await self._store.gathered.fetchrow("schedule_tick_armed", schedule)
        return None if row is None else _armed(row["due_at"], row["run_id"], row["armed"])

    async def run_observed(self, run_id: int, source: str, name: str) -> RunObserved:
        agent = f"agent:{source}/{name}"
        row = await self._store.fetchrow("agent_run_observe", run_id, agent, source, name)
        if row is None:
            return RunObserved(None)
        run = _run_info(row)
        installation = row["installation_id"]
        applied = None if row["applied_kind"] is None else AppliedObject(
            row["applied_kind"], row["applied_name"], row["content_hash"], row["document"],
            revision=row["revision"], source=source, applied_at=row["applied_at"])
        return RunObserved(
            run, now=row["now"],
            armed=None if row["armed_due"] is None else _armed(row["armed_due"], run_id,
                                                               row["armed"]),
            versions=tuple(VersionInfo(v["number"], v["spec_hash"], v["state"], v["origin"],
                                       v["error"]) for v in row["versions"]),
            spent_today=float(row["spent_today"] or 0.0),
            installation_id=installation if isinstance(installation, int) else None,
            agent=applied,
            active=tuple(RunInfo(a["id"], agent, a["state"], "schedule", run.schedule)
                         for a in row["active"]))

    async def now(self) -> datetime:
        return await self._store.gathered.fetchval("clock_now")  # type: ignore[no-any-return]


def _armed(due_at: datetime, run_id: int, armed: Mapping[str, Any] | None) -> ArmedTick:
    a = armed or {}
    return ArmedTick(due_at, run_id, str(a.get("hash", "")), str(a.get("cron", "")),
                     str(a.get("timezone", "UTC")), str(a.get("concurrency", "allow")))


def _run_info(row: Mapping[str, Any]) -> RunInfo:
    return RunInfo(row["id"], row["agent"], row["state"], row["trigger"], row["schedule"],
                   row["stop_requested"])
