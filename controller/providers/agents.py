"""The agents provider: the runners of the agent actions (build a version, run one, end a run,
fire a schedule's tick), the tools an agent's run may call, and the reads the agent, run and
schedule reconcilers use. Needs no credentials: always available.

Runners find before they create: a build resumes the unfinished version of its spec hash; a
run starts only from `queued` (a run found `running` was cut off by a dead worker and is ended
as failed, never run twice); a tick is one row per schedule and due time. Tool calls are
actions too (`tool.http`, `tool.notify`), gated and recorded through the desk, answered to the
agent. Generation by Claude (`agent.generate`) belongs to the Anthropic provider.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import AsyncIterator, Mapping
from datetime import datetime
from typing import Any

import orjson

from controller.clients.agent_validation import Report, validate
from controller.clients.harness import Limits, ToolRefused, run_agent
from controller.clients.railway import RailwayQuery, read_only
from controller.clients.sandbox import REQUIRED, Sandbox
from controller.clients.tools import (
    GitHubGet,
    HttpCall,
    Notify,
    StartWorkflow,
    ToolClient,
    repo_path,
)
from controller.providers import Env, Provider, anthropic
from controller.providers.anthropic import AskClaude, fingerprint
from controller.reconcile.authz import Authority, Principal
from controller.reconcile.desk import Desk
from controller.reconcile.plan import Action, ActionRunner, runner
from controller.store import RejectedValue, Store
from reconcilers.agents.agent_actions import (
    BuildVersion,
    FinishRun,
    QueueRun,
    RunAgent,
    RunInfo,
    Tick,
    TickInfo,
    VersionInfo,
)
from reconcilers.agents.runs import run_key

NAME = "agents"
MAX_STATE_BYTES = 64 * 1024  # task.state handed to the next run
MAX_RESULT_BYTES = 256 * 1024
MAX_RECORDED_CALLS = 200
STOP_POLL_SECONDS = 1.0


@contextlib.asynccontextmanager
async def bundle(env: Env) -> AsyncIterator[Provider]:
    async with ToolClient.open() as tools:
        key = env.settings.providers.anthropic_api_key
        credentials = {anthropic.NAME: fingerprint(key.get_secret_value()) if key else None}
        yield Provider(NAME, runners=runners(env.store, env.desk, tools, env.sandbox),
                       reads=AgentStoreReads(env.store, credentials))


def runners(store: Store, desk: Desk | None, tools: ToolClient,
            sandbox: Sandbox = REQUIRED) -> dict[str, ActionRunner]:
    async def build(p: BuildVersion, _action: Action) -> Mapping[str, Any]:
        return await build_version(store, p, sandbox)

    async def run(p: RunAgent, _action: Action) -> Mapping[str, Any]:
        return await run_version(store, desk, p, sandbox)

    async def finish(p: FinishRun, _action: Action) -> Mapping[str, Any]:
        await store.execute("agent_run_finish", p.run_id, p.outcome, None, p.error, None, [],
                            0, 0, None, None)
        return {"run": p.run_id, "outcome": p.outcome}

    async def tick(p: Tick, _action: Action) -> Mapping[str, Any]:
        return await fire_tick(store, p)

    async def queue(p: QueueRun, _action: Action) -> Mapping[str, Any]:
        try:
            row = await store.fetchrow("agent_run_create", p.agent, p.trigger, p.requested_by,
                                       None, p.input)
        except (RejectedValue, ValueError) as exc:  # never a key jammed by one bad request
            row = await store.fetchrow("agent_run_create", p.agent, p.trigger, p.requested_by,
                                       None, None)
            assert row is not None
            await store.execute("agent_run_finish", row["id"], "failed", None,
                                f"the input cannot be stored: {exc}"[:1000], None, [], 0, 0,
                                None, None)
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
    await store.execute("agent_version_progress", p.agent, number, "VALIDATING", p.code,
                        p.test, 0, 0, 0, 0, 0, 0, {})
    report = await validate(p.code or "", p.test, sandbox=sandbox)
    report = in_repository_terms(report, p.code_path, p.spec.get("test"))
    state = "READY" if report.ok else "FAILED"
    error = None if report.ok else "; ".join(report.problems)[:4000]
    await store.execute("agent_version_finish", p.agent, number, state, p.code, p.test, 0, 0,
                        0, 0, 0, 0, report.as_json(), error,
                        (time.perf_counter() - started) * 1000)
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


async def run_version(store: Store, desk: Desk | None, p: RunAgent,
                      sandbox: Sandbox = REQUIRED) -> Mapping[str, Any]:
    """Carry out one run in the harness and record how it ended."""
    if await store.fetchval("agent_run_start", p.run_id, p.version) is None:
        row = await store.fetchrow("agent_run_get", p.run_id)
        if row is None or row["state"] == "finished":
            return {"run": p.run_id, "found": row["outcome"] if row else "gone"}
        # `running`, and no worker carries it out (a crash): once more, or ended interrupted.
        left = await store.fetchval("agent_run_interrupted", p.run_id, p.retry_on_interrupt,
                                    INTERRUPTED)
        if left != "queued" or await store.fetchval("agent_run_start", p.run_id,
                                                    p.version) is None:
            return {"run": p.run_id, "outcome": "interrupted"}
    try:
        return await _run(store, desk, p, sandbox)
    except asyncio.CancelledError:  # a shutdown past its grace: the run is put back, or ends
        await asyncio.shield(store.fetchval("agent_run_interrupted", p.run_id,
                                            p.retry_on_interrupt, INTERRUPTED))
        raise


INTERRUPTED = ("interrupted: the controller stopped during the run (a deploy, a crash); it "
               "is run once more only when its agent allows it (spec.retryOnInterrupt)")


async def _run(store: Store, desk: Desk | None, p: RunAgent,
               sandbox: Sandbox) -> Mapping[str, Any]:
    version = await store.fetchrow("agent_version_get", p.agent, p.version)
    run = await store.fetchrow("agent_run_get", p.run_id)
    assert version is not None and run is not None
    state = await store.fetchval("agent_state_get", p.agent)
    calls: list[dict[str, Any]] = []
    serve = ToolServer(desk, p, calls)
    limits = Limits(timeout=p.timeout_seconds, memory_bytes=p.memory_bytes)
    harness = asyncio.ensure_future(run_agent(
        code=version["code"] or "", input=run["input"], state=state or {}, tools=p.tools,
        limits=limits, serve=serve, sandbox=sandbox))
    try:
        stopped = await _until_done_or_stopped(store, p.run_id, harness, serve)
    except asyncio.CancelledError:
        harness.cancel()  # the agent's process group is killed, not left running
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await harness
        raise
    outcome: str
    error: str | None
    result: dict[str, Any] | None
    if serve.over_budget is not None:
        outcome, result, error, finished = "over_budget", None, serve.over_budget, None
    elif stopped is not None:
        outcome, result, error, finished = "cancelled", None, f"stopped: {stopped}", None
    else:
        finished = harness.result()
        # (A run the sandbox refused ends failed; its error says the kernel could not fence
        # it in and how to allow it.)
        outcome = "failed" if finished.outcome == "refused" else finished.outcome
        error = finished.error
        result = {"output": finished.output}
        if len(orjson.dumps(result, default=str)) > MAX_RESULT_BYTES:
            result, error = None, f"the result is larger than {MAX_RESULT_BYTES} bytes"
            outcome = "failed"
    if finished is not None and outcome == "succeeded":
        handed = finished.state or {}
        if len(orjson.dumps(handed, default=str)) > MAX_STATE_BYTES:
            outcome, error = "failed", (f"task.state is larger than {MAX_STATE_BYTES} bytes; "
                                        "the previous state is kept")
        else:
            await store.execute("agent_state_put", p.agent, handed, p.run_id)
    await store.execute(
        "agent_run_finish", p.run_id, outcome, result, error,
        (finished.stderr if finished else None), calls[:MAX_RECORDED_CALLS],
        serve.tokens, serve.usd, (finished.isolation if finished else None), p.version)
    return {"run": p.run_id, "outcome": outcome, "tool_calls": len(calls)}


async def _until_done_or_stopped(store: Store, run_id: int, harness: asyncio.Future[Any],
                                 serve: ToolServer) -> str | None:
    """Wait for the harness; a stop asked for meanwhile, or the run's token budget spent,
    cancels it (its group is killed)."""
    while True:
        done, _ = await asyncio.wait({harness, serve.spent}, timeout=STOP_POLL_SECONDS,
                                     return_when=asyncio.FIRST_COMPLETED)
        if harness in done:
            return None
        stop = serve.over_budget or await store.fetchval("agent_run_stop_requested", run_id)
        if stop is not None:
            harness.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await harness
            return str(stop)


class ToolServer:
    """Answers one run's tool calls: the grant is checked here, the call is an action gated
    and recorded through the desk."""

    def __init__(self, desk: Desk | None, run: RunAgent, calls: list[dict[str, Any]]) -> None:
        self._desk = desk
        self._run = run
        self._calls = calls
        self.tokens = 0
        self.usd = 0.0
        self.over_budget: str | None = None  # why the run is ended: its tokensPerRun spent
        self.spent: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def __call__(self, tool: str, method: str, args: Mapping[str, Any]) -> Any:
        started = time.perf_counter()
        record: dict[str, Any] = {"tool": tool, "method": method}
        self._calls.append(record)
        try:
            value = await self._perform(tool, method, args)
        except ToolRefused as exc:
            record.update(status="refused", error=str(exc))
            raise
        finally:
            record["ms"] = round((time.perf_counter() - started) * 1000, 1)
        record.setdefault("status", "succeeded")
        return value

    async def _perform(self, tool: str, method: str, args: Mapping[str, Any]) -> Any:
        run = self._run
        if tool not in run.tools:
            raise ToolRefused(f"tool {tool!r} is not granted to this agent (granted: "
                              f"{', '.join(run.tools) or 'none'})")
        params = _tool_params(run, tool, method, args, self.remaining())
        if self._desk is None:
            raise ToolRefused("tools are not available in this controller")
        n = len(self._calls)
        action = params.action(f"run:{run.run_id}:call:{n}",
                               description=f"{tool}.{method} for run {run.run_id}",
                               authority=Authority(Principal.agent(run.agent, run.run_id,
                                                                   run.source), "tool",
                                                   run.source))
        done = await self._desk.perform(action, key=run_key(run.agent, run.run_id),
                                        source=run.source)
        self._calls[-1]["status"] = done.status
        if done.status in ("succeeded", "already_succeeded"):
            answer = dict(done.result or {})
            if tool == "claude":
                self._spend(int(answer.get("tokens") or 0), float(answer.get("usd") or 0.0))
            return answer
        if done.status == "dry_run":
            return {"dry_run": True, "reason": done.reason}
        raise ToolRefused(f"{tool}.{method} was not performed: {done.reason}")


    def _spend(self, tokens: int, usd: float) -> None:
        self.tokens += tokens
        self.usd += usd
        self._calls[-1].update(tokens=tokens, usd=round(usd, 6))
        if self.tokens >= self._run.tokens_per_run and self.over_budget is None:
            self.over_budget = (f"the run used {self.tokens} Claude tokens; its limit is "
                                f"{self._run.tokens_per_run} (limits.tokensPerRun)")
            self.spent.set_result(None)

    def remaining(self) -> int:
        return self._run.tokens_per_run - self.tokens


def _tool_params(run: RunAgent, tool: str, method: str, args: Mapping[str, Any],
                 remaining: int) -> (HttpCall | Notify | AskClaude | GitHubGet | StartWorkflow
                                     | RailwayQuery):
    try:
        if tool == "railway":
            if method != "query":
                raise ToolRefused("railway has one method: query(query, variables=None) "
                                  "(read-only)")
            variables = args.get("variables") or {}
            if not isinstance(variables, dict):
                raise ToolRefused("railway.query: variables is a dict")
            return RailwayQuery(query=read_only(str(args.get("query") or "")),
                                variables=variables)
        if tool == "n8n":
            if method != "start":
                raise ToolRefused("n8n has one method: start(workflow, data=None)")
            workflow = str(args.get("workflow") or "")
            if workflow not in run.workflows:
                raise ToolRefused(f"workflow {workflow!r} is not one this agent may start "
                                  f"(spec.workflows: {', '.join(run.workflows) or 'none'})")
            url = run.workflow_urls.get(workflow)
            if url is None:
                raise ToolRefused(f"the Policy has no workflow {workflow!r}")
            return StartWorkflow(workflow=workflow, url=url, agent=run.agent,
                                 run_id=run.run_id, data=args.get("data"))
        if tool == "github":
            if method != "get":
                raise ToolRefused("github has one method: get(path, params=None) (read-only)")
            if run.source == "local" or run.installation_id is None:
                raise ToolRefused("the github tool reads the agent's own repository: this "
                                  "agent comes from the local folder, which has none")
            given = args.get("params") or {}
            if not isinstance(given, dict):
                raise ToolRefused("github.get: params is a dict of query parameters")
            params = {str(k): str(v) for k, v in given.items()}
            return GitHubGet(repo=run.source, installation_id=run.installation_id,
                             path=repo_path(str(args.get("path") or "")), params=params)
        if tool == "claude":
            if method != "ask":
                raise ToolRefused("claude has one method: ask(prompt, system=None, "
                                  "max_tokens=1024)")
            if remaining <= 0:
                raise ToolRefused("this run's Claude tokens are spent (limits.tokensPerRun)")
            wanted = int(args.get("max_tokens") or 1024)
            return AskClaude(model=run.model, prompt=str(args.get("prompt") or ""),
                             system=args.get("system"), run_id=run.run_id,
                             max_tokens=max(1, min(wanted, remaining, 8192)))
        if tool == "http":
            if method.upper() not in ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"):
                raise ToolRefused(f"http has no method {method!r}: get, post, put, patch, "
                                  "delete, head")
            fields = dict(args)
            if "json" in fields:
                fields["body"] = fields.pop("json")
            return HttpCall(method=method.upper(), **fields)
        if tool == "notify":
            if method != "send":
                raise ToolRefused("notify has one method: send(text, target=None, data=None)")
            target = args.get("target") or (run.notify[0] if run.notify else None)
            if target not in run.notify:
                raise ToolRefused(f"notify target {target!r} is not one of this agent's "
                                  f"(spec.notify: {', '.join(run.notify) or 'none'})")
            url = run.notify_urls.get(str(target))
            if url is None:
                raise ToolRefused(f"the Policy has no notification target {target!r}")
            return Notify(target=str(target), url=url, agent=run.agent, run_id=run.run_id,
                          text=str(args.get("text") or ""), data=args.get("data"))
    except (TypeError, ValueError) as exc:
        raise ToolRefused(f"{tool}.{method}: {exc}") from None
    raise ToolRefused(f"the {tool} tool is not available in this release")


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


class AgentStoreReads:
    """`reconcilers.agents.agent_actions.AgentReads` over the store."""

    def __init__(self, store: Store, credentials: Mapping[str, str | None] | None = None,
                 ) -> None:
        self._store = store
        self._credentials = dict(credentials or {})

    async def versions(self, agent: str) -> list[VersionInfo]:
        rows = await self._store.fetch("agent_versions_of", agent, 100)
        return [VersionInfo(r["number"], r["spec_hash"], r["state"], r["origin"], r["error"],
                            r["usd"], r["rounds"], r["failure"], r["failed_credential"])
                for r in rows]

    async def rebuild_after(self, agent: str) -> int | None:
        after = await self._store.fetchval("agent_rebuild_of", agent)
        return int(after) if after is not None else None

    async def credential(self, provider: str) -> str | None:
        return self._credentials.get(provider)

    async def run(self, run_id: int) -> RunInfo | None:
        row = await self._store.fetchrow("agent_run_get", run_id)
        return None if row is None else _run_info(row)

    async def active_runs(self, agent: str) -> list[RunInfo]:
        rows = await self._store.fetch("agent_runs_active", agent)
        return [RunInfo(r["id"], agent, r["state"], "schedule" if r["schedule"] else "manual",
                        r["schedule"]) for r in rows]

    async def spent_today(self, agent: str) -> float:
        return float(await self._store.fetchval("agent_spend_today", agent) or 0.0)

    async def last_tick(self, schedule: str) -> TickInfo | None:
        row = await self._store.fetchrow("schedule_tick_last", schedule)
        return None if row is None else TickInfo(row["due_at"], row["outcome"])

    async def now(self) -> datetime:
        return await self._store.fetchval("clock_now")  # type: ignore[no-any-return]


def _run_info(row: Mapping[str, Any]) -> RunInfo:
    return RunInfo(row["id"], row["agent"], row["state"], row["trigger"], row["schedule"],
                   row["stop_requested"])
