"""The Anthropic provider: Claude writes agents (`agent.generate`), answers agents that think at
run time (`tool.claude`) and works on `/claude` tasks (`claude.task`, `claude_work.py`).
Configured from ANTHROPIC_API_KEY (and the SDK's own ANTHROPIC_BASE_URL); without a key it is
unavailable and those actions are recorded as dry-run with what they would have done.

A generation works on one version row, found by its spec hash before one is created (a
generation cut short resumes on its row, its spend so far counted): GENERATING while Claude
writes, VALIDATING while the files are checked, then READY, or another round with validation's
exact messages, up to the Policy's fix rounds and generation ceiling in US dollars; past
either, FAILED with the figure. A reply cut off (`max_tokens`), without the two files, or with
files validation refuses is a fix round; a `refusal` ends it FAILED; an API that refuses the
request (unknown model, bad request) ends it FAILED with the API's message. Rate limits and
outages are not the agent's fault: the action is retried later on the same row; so is a
controller that cannot sandbox the agent's test (checked before Claude is asked anything).
A key the API refuses (401, 403) is not the agent's fault either: the version ends FAILED
blamed on the provider, with the key's fingerprint, and the agent reconciler builds again once
this process has a different key (`reconcilers/agents/agents.py`). Each step is a move of the
version's machine (`controller.providers.lifecycle.move`), refused once the version is finished.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any, ClassVar

from controller.clients.agent_prompt import brief, fix, parse_files, system_blocks
from controller.clients.agent_validation import validate, with_traces
from controller.clients.claude import Claude, ClaudeRefused, Usage, cached_up_to_here
from controller.clients.sandbox import REQUIRED, Sandbox, SandboxRefused
from controller.providers import Env, Provider
from controller.providers.claude_work import work_task
from controller.providers.lifecycle import VERSIONS, move
from controller.reconcile.desk import Desk
from controller.reconcile.plan import Action, ActionRunner, Params, runner
from controller.store import Store
from reconcilers.agents.agent_actions import GenerateVersion
from reconcilers.claude.task_actions import WorkTask

NAME = "anthropic"
UNCONFIGURED = "ANTHROPIC_API_KEY is not set"
MAX_TOKENS = 8192
KEY_REFUSED = (401, 403)  # the API refused the key, not the request: the provider's failure


def fingerprint(key: str) -> str:
    """What tells two keys apart in the database and nothing more: 16 hex digits of a salted
    SHA-256 (the key is high-entropy, so this reveals nothing of it)."""
    return hashlib.sha256(b"p38-credential-fingerprint:" + key.encode()).hexdigest()[:16]


class AskClaude(Params):
    """An agent's `task.tools.claude.ask(...)`, within what its run may still spend."""

    action_kind: ClassVar[str] = "tool.claude"
    needs: ClassVar[str | None] = "anthropic"
    model: str
    prompt: str
    system: str | None = None
    max_tokens: int = 1024
    run_id: int


def bundle(*, sleep: Callable[[float], Awaitable[None]] | None = None) -> Callable[
        [Env], contextlib.AbstractAsyncContextManager[Provider]]:
    """`sleep` replaces the client's short waits (a 429's retry-after, backoff) in tests."""

    @contextlib.asynccontextmanager
    async def open_anthropic(env: Env) -> AsyncIterator[Provider]:
        key = env.settings.providers.anthropic_api_key
        if key is None:
            yield Provider(NAME, unavailable=UNCONFIGURED)
            return
        claude = Claude(key.get_secret_value(), sleep=sleep or asyncio.sleep)
        # A process that carries generations or sessions loads the SDK now, in a thread;
        # one that never calls Claude never carries it (docs/operations.md).
        talks = {"generation", "session"} & set(env.settings.queue.job_kinds())
        warming = asyncio.ensure_future(claude.warm()) if talks else None
        try:
            yield Provider(NAME, runners=runners(env.store, claude, env.desk, env.sandbox,
                                                 credential=fingerprint(key.get_secret_value())))
        finally:
            if warming is not None:
                warming.cancel()
                with contextlib.suppress(BaseException):
                    await warming
            await claude.close()

    return open_anthropic


def runners(store: Store, claude: Claude, desk: Desk | None = None,
            sandbox: Sandbox = REQUIRED, *, credential: str | None = None,
            ) -> dict[str, ActionRunner]:
    async def generate(p: GenerateVersion, _action: Action) -> Mapping[str, Any]:
        return await generate_version(store, claude, p, sandbox, credential=credential)

    async def ask(p: AskClaude, _action: Action) -> Mapping[str, Any]:
        reply = await claude.message(
            model=p.model, system=p.system or "You help an automation agent.",
            messages=[{"role": "user", "content": p.prompt}], max_tokens=p.max_tokens)
        return {"text": reply.text, "stop_reason": reply.stop_reason,
                "tokens": reply.usage.tokens, "usd": reply.usd}

    async def task(p: WorkTask, _action: Action) -> Mapping[str, Any]:
        return await work_task(store, claude, desk, p)

    return {**runner(GenerateVersion, generate), **runner(AskClaude, ask),
            **runner(WorkTask, task)}


class Generation:
    """One version's figures as the rounds go (written to its row after every call)."""

    def __init__(self, store: Store, p: GenerateVersion, number: int, row: Mapping[str, Any]):
        self.store, self.p, self.number = store, p, number
        self.usage = Usage(row.get("input_tokens") or 0, row.get("output_tokens") or 0,
                           row.get("cache_read_tokens") or 0, row.get("cache_write_tokens") or 0)
        self.usd = float(row.get("usd") or 0.0)
        self.rounds = 0
        self.code: str | None = None
        self.test: str | None = None
        self.report: dict[str, Any] = {"rounds": []}
        self.started = time.perf_counter()

    def figures(self) -> dict[str, Any]:
        u = self.usage
        return {"code": self.code, "test": self.test, "rounds": self.rounds,
                "input_tokens": u.input, "output_tokens": u.output,
                "cache_read_tokens": u.cache_read, "cache_write_tokens": u.cache_write,
                "usd": self.usd, "report": self.report}

    async def progress(self, state: str) -> None:
        """A step of the build (GENERATING, VALIDATING) with what it has so far; refused when
        the version was finished meanwhile (`ConcurrentUpdate`: the next attempt finds it)."""
        (await move(self.store, VERSIONS, (self.p.agent, self.number), state,
                    f"round {self.rounds}", **self.figures())).required()

    async def finish(self, state: str, error: str | None = None, *,
                     blame: tuple[str, str | None] | None = None) -> Mapping[str, Any]:
        """`blame`: (whose failure, the credential's fingerprint), when not the code's."""
        if blame is not None:
            await self.store.execute("agent_version_blame", self.p.agent, self.number, *blame)
        (await move(self.store, VERSIONS, (self.p.agent, self.number), state,
                    error or f"validated after {self.rounds} fix round(s)", **self.figures(),
                    error=None if error is None else error[:4000],
                    duration_ms=(time.perf_counter() - self.started) * 1000)).required()
        return {"version": self.number, "state": state, "rounds": self.rounds,
                "usd": round(self.usd, 6), **({"error": error} if error else {})}


async def generate_version(store: Store, claude: Claude, p: GenerateVersion,
                           sandbox: Sandbox = REQUIRED, *,
                           credential: str | None = None) -> Mapping[str, Any]:
    found = await store.fetchrow("agent_version_find", p.agent, p.spec_hash)
    if found is not None and p.after is not None and found["number"] <= p.after:
        found = None  # a rebuild or a retry: a new version after that one
    if found is not None and found["state"] in ("READY", "FAILED"):
        return {"version": found["number"], "state": found["state"], "found": True}
    if (why := sandbox.refusal()) is not None:  # its test could not run: spend nothing
        raise SandboxRefused(why)
    number = found["number"] if found is not None else await store.fetchval(
        "agent_version_create", p.agent, p.spec_hash, "generated", p.model, p.spec)
    g = Generation(store, p, number, dict(found) if found is not None else {})
    name = p.agent.rpartition("/")[2]
    messages: list[dict[str, Any]] = [{"role": "user", "content": brief(name, p.spec)}]
    saved = found["session"] if found is not None else None
    if isinstance(saved, dict) and saved.get("messages"):  # stopped mid-way: resume there
        messages = list(saved["messages"])
        g.rounds = int(saved.get("rounds") or 0)
        g.report = dict(saved.get("report") or {"rounds": []})
    system = system_blocks()
    while True:
        if g.usd >= p.usd_ceiling:
            return await g.finish("FAILED", (
                f"the generation ceiling was reached: ${g.usd:.4f} spent of "
                f"${p.usd_ceiling:g} (Policy agents.generationUsd) after {g.rounds} fix "
                f"round(s)"))
        await g.progress("GENERATING")
        try:
            reply = await claude.message(model=p.model, system=system,
                                         messages=cached_up_to_here(messages),
                                         max_tokens=MAX_TOKENS)
        except ClaudeRefused as exc:
            if exc.status in KEY_REFUSED:
                return await g.finish(
                    "FAILED", f"the Anthropic API refused the key: {exc}; built again once "
                              "the controller runs with another ANTHROPIC_API_KEY (or `p38 "
                              "agents rebuild`)", blame=("provider", credential))
            return await g.finish("FAILED", f"the Anthropic API refused the request: {exc}")
        g.usage, g.usd = g.usage + reply.usage, g.usd + reply.usd
        step: dict[str, Any] = {"round": g.rounds, "stop_reason": reply.stop_reason,
                                "usd": round(reply.usd, 6), "tokens": reply.usage.tokens}
        g.report["rounds"].append(step)
        if reply.stop_reason == "refusal":
            return await g.finish("FAILED", "Claude declined to write this agent (stop_reason "
                                            "refusal); change its description")
        shown_to_author: list[str] | None = None  # a failed test's trace goes back to Claude
        if reply.stop_reason == "max_tokens":
            problems: tuple[str, ...] = (f"the reply was cut off at {MAX_TOKENS} tokens "
                                         "(stop_reason max_tokens): write a shorter module "
                                         "and test",)
        else:
            parsed = parse_files(reply.text)
            problems = parsed.problems
            if not problems:
                g.code, g.test = parsed.code, parsed.test
                await g.progress("VALIDATING")
                report = await validate(parsed.code or "", parsed.test, sandbox=sandbox)
                step["validation"] = report.as_json()
                g.report.update(report.as_json())
                problems = tuple(report.problems)
                if report.ok:
                    return await g.finish("READY")
                shown_to_author = with_traces(report)
        step["problems"] = list(problems)
        if g.rounds >= p.fix_rounds:
            return await g.finish("FAILED", (
                f"still refused after {g.rounds} fix round(s) (Policy agents.fixRounds "
                f"{p.fix_rounds}): " + "; ".join(problems)))
        g.rounds += 1
        messages += [{"role": "assistant", "content": reply.text.strip() or "(no text)"},
                     {"role": "user", "content": fix(shown_to_author or problems)}]
        await store.execute("agent_version_session_save", p.agent, number, {
            "messages": messages, "rounds": g.rounds, "report": g.report})
