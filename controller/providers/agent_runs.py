"""One agent run (`agent.run`), carried out by a run worker: the harness for the agent's
version under the manifest's limits, its tool calls answered here (each an action gated and
recorded through the desk: `tool.http`, `tool.notify`, `tool.github`, ...), a stop asked for
meanwhile (`p38 runs cancel`, a schedule's `replace`) or the run's token budget killing its
process group, and the run's record written at its end.

A run starts only from `queued`. A run cut off by a shutdown (its process group killed) or
found `running` after a crash is queued once more when its agent allows it
(`retryOnInterrupt`), once only, else it ends `interrupted` with the reason. Every change of
the run's state is a move of its machine (`controller.providers.lifecycle.move`).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Mapping
from typing import Any

import orjson

from controller.clients.harness import Limits, ToolRefused, run_agent
from controller.clients.railway import RailwayQuery, read_only
from controller.clients.sandbox import REQUIRED, Sandbox
from controller.clients.tools import (
    GitHubGet,
    HttpCall,
    Notify,
    StartWorkflow,
    repo_path,
)
from controller.clients.warm_pool import WarmPool
from controller.providers.anthropic import AskClaude
from controller.providers.lifecycle import RUNS, Moved, move
from controller.reconcile.authz import Authority, Principal
from controller.reconcile.desk import Desk
from controller.store import Store
from reconcilers.agents.agent_actions import (
    RunAgent,
)
from reconcilers.agents.runs import run_key

MAX_STATE_BYTES = 64 * 1024  # task.state handed to the next run
MAX_RESULT_BYTES = 256 * 1024
MAX_RECORDED_CALLS = 200
STOP_POLL_SECONDS = 1.0


async def run_version(store: Store, desk: Desk | None, p: RunAgent,
                      sandbox: Sandbox = REQUIRED, *,
                      pool: WarmPool | None = None) -> Mapping[str, Any]:
    """Carry out one run in the harness and record how it ended."""
    started = await _start(store, p)
    if not started:
        row = await store.fetchrow("agent_run_get", p.run_id)
        if row is None or row["state"] == "finished":
            return {"run": p.run_id, "found": row["outcome"] if row else "gone"}
        # `running`, and no worker carries it out (a crash): once more, or ended interrupted.
        if await interrupted(store, p) != "queued" or not (started := await _start(store, p)):
            return {"run": p.run_id, "outcome": "interrupted"}
    try:
        return await _run(store, desk, p, sandbox, started, pool)
    except asyncio.CancelledError:  # a shutdown past its grace: the run is put back, or ends
        await asyncio.shield(interrupted(store, p))
        raise


async def _start(store: Store, p: RunAgent) -> Moved:
    """queued -> running, returning what the run starts with (its input, the version's code,
    the agent's state); not moved when the run is not queued (a second attempt finds it)."""
    return await move(store, RUNS, (p.run_id,), "running",
                      f"a run worker starts v{p.version}", version=p.version)


async def interrupted(store: Store, p: RunAgent) -> str | None:
    """A run found `running` that no worker carries out any more (a shutdown, a crash): queued
    again when its agent allows a retry and it was not interrupted before, else finished
    `interrupted`. Returns the state it is left in (None: it was not running)."""
    if p.retry_on_interrupt and await move(
            store, RUNS, (p.run_id,), "queued", "interrupted: run once more (retryOnInterrupt)",
            interrupted=True, max_interruptions=1):
        return "queued"
    if await move(store, RUNS, (p.run_id,), "finished", INTERRUPTED, only_from=("running",),
                  outcome="interrupted", error=INTERRUPTED, interrupted=True):
        return "finished"
    return None


INTERRUPTED = ("interrupted: the controller stopped during the run (a deploy, a crash); it "
               "is run once more only when its agent allows it (spec.retryOnInterrupt)")


async def _run(store: Store, desk: Desk | None, p: RunAgent, sandbox: Sandbox,
               started: Moved, pool: WarmPool | None) -> Mapping[str, Any]:
    begun = started.row
    assert begun is not None
    state = begun["handed"]
    calls: list[dict[str, Any]] = []
    serve = ToolServer(desk, p, calls)
    limits = Limits(timeout=p.timeout_seconds, memory_bytes=p.memory_bytes)
    harness = asyncio.ensure_future(run_agent(
        code=begun["code"] or "", input=begun["input"], state=state or {}, tools=p.tools,
        limits=limits, serve=serve, sandbox=sandbox, pool=pool))
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
    handed: dict[str, Any] | None = None
    if finished is not None and outcome == "succeeded":
        handed = finished.state or {}
        if len(orjson.dumps(handed, default=str)) > MAX_STATE_BYTES:
            outcome, error = "failed", (f"task.state is larger than {MAX_STATE_BYTES} bytes; "
                                        "the previous state is kept")
            handed = None
    await move(store, RUNS, (p.run_id,), "finished", error or outcome, outcome=outcome,
               handed_state=handed,
               result=result, error=error, stderr=finished.stderr if finished else None,
               tool_calls=calls[:MAX_RECORDED_CALLS], tokens=serve.tokens, usd=serve.usd,
               isolation=finished.isolation if finished else None, version=p.version)
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


