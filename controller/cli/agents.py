"""`p38 run AGENT [--input JSON] [--wait [--timeout S] [--cancel-on-timeout]]`: queue a manual
run of an agent in the database; a running controller (`p38 up`, `p38 serve`) carries it out,
and the command says at once when none is running (their heartbeat rows). With `--wait`,
follow it to its end and print its outcome and result; the exit code is 0 only when it
succeeded. A run still queued at the timeout stays queued (it runs when a controller starts),
unless `--cancel-on-timeout` ends it cancelled.

`p38 agents rebuild NAME`: ask for a new version of an agent after its newest one (a FAILED
one, or a READY one to have Claude write it again); a running controller builds it."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from typing import Any

import orjson

from controller.cli.common import settings_from, shown, with_store
from controller.engine import operator
from controller.providers.lifecycle import RUNS, move
from controller.reconcile.payloads import json_problem
from controller.reconcile.reconciler import object_key
from controller.store import RejectedValue, Store
from controller.web.overview import controllers_running

MAX_INPUT_BYTES = 64 * 1024
POLL_SECONDS = 0.5


def add_agents_parser(sub: Any) -> None:
    """`p38 agents rebuild NAME` in the command's parser (`sub`: its subparsers)."""
    agents = sub.add_parser("agents", help="rebuild NAME: build a new version of an agent "
                                           "now (after a FAILED one, or again)")
    agents.add_argument("action", choices=("rebuild",))
    agents.add_argument("agent", help="the agent's manifest name")
    agents.add_argument("--source", help="the agent's source, when two define it")
    agents.set_defaults(func=cmd_agents)


def cmd_agents(args: argparse.Namespace) -> int:
    async def body(store: Store) -> int:
        found = await _agent_key(store, args.agent, args.source)
        if isinstance(found, int):
            return found
        key = found
        versions = await store.fetch("agent_versions_of", key, 1)
        newest = versions[0] if versions else None
        if newest is not None and newest["state"] not in ("READY", "FAILED"):
            print(f"v{newest['number']} of {shown(key)} is being built now "
                  f"({newest['state']}): a rebuild would only repeat it; ask again once it has "
                  "ended", file=sys.stderr)
            return 1
        after = await store.fetchval("agent_rebuild_ask", key, "cli")
        print(f"a new version of {shown(key)} after v{after} is asked for; a running "
              f"controller builds it (GET /api/agents/{shown(args.agent)})")
        if not await controllers_running(store):
            print("no controller is running: it is built when one starts (`p38 up` or "
                  "`p38 serve`)", file=sys.stderr)
        return 0

    return asyncio.run(with_store(settings_from(args), body))


async def _agent_key(store: Store, name: str, source: str | None) -> str | int:
    """The key of the applied agent `name` (of `source`), or the exit code after saying why
    there is none."""
    rows = [r for r in await store.fetch("applied_of_kind", "Agent")
            if r["name"] == name and source in (None, r["source"])]
    if not rows:
        print(f"no applied agent named {shown(name)}"
              + (f" in {shown(source)}" if source else ""), file=sys.stderr)
        return 1
    if len(rows) > 1:
        print(f"agent {shown(name)} is defined by "
              f"{', '.join(shown(r['source']) for r in rows)}: say which with --source",
              file=sys.stderr)
        return 2
    return object_key("Agent", rows[0]["source"], name)


def cmd_run(args: argparse.Namespace) -> int:
    try:
        given = orjson.loads(args.input) if args.input is not None else None
    except orjson.JSONDecodeError as exc:
        print(f"--input is not JSON: {exc}", file=sys.stderr)
        return 2
    if args.input is not None and len(args.input.encode()) > MAX_INPUT_BYTES:
        print(f"--input is at most {MAX_INPUT_BYTES} bytes", file=sys.stderr)
        return 2
    if args.cancel_on_timeout and not args.wait:
        print("--cancel-on-timeout goes with --wait (it cancels a run not started by "
              "--timeout)", file=sys.stderr)
        return 2
    why = json_problem(given)
    if why is not None:
        print(f"--input cannot be stored: {why}", file=sys.stderr)
        return 2

    async def body(store: Store) -> int:
        found = await _agent_key(store, args.agent, args.source)
        if isinstance(found, int):
            return found
        key = found
        try:
            done = await operator.run_agent(store, key, given,
                                            by=os.environ.get("USER") or "cli", via="cli")
        except RejectedValue as exc:
            print(f"the input cannot be stored: {exc}", file=sys.stderr)
            return 2
        run_id = done.detail["run"]
        print(f"run {run_id} of {shown(key)} queued (a running controller carries it out; "
              f"GET /api/runs/{run_id})")
        if not await controllers_running(store, runs=True):
            print(f"no controller that runs agents is running: run {run_id} stays queued "
                  "and runs when one starts (`p38 up`, `p38 serve` or `p38 worker --kinds run`; "
                  "`p38 status` lists them)", file=sys.stderr)
        if not args.wait:
            return 0
        return await _follow(store, run_id, args.timeout, cancel=args.cancel_on_timeout)

    return asyncio.run(with_store(settings_from(args), body))


async def _follow(store: Store, run_id: int, timeout: float, *, cancel: bool = False) -> int:
    deadline = time.monotonic() + timeout
    while True:
        run = await store.fetchrow("agent_run_get", run_id)
        if run is not None and run["state"] == "finished":
            break
        if time.monotonic() > deadline:
            return await _timed_out(store, run_id, timeout, cancel=cancel)
        await asyncio.sleep(POLL_SECONDS)
    print(f"run {run_id} {run['outcome']}" + (f": {shown(run['error'])}" if run["error"] else ""))
    if run["result"] is not None:
        print(orjson.dumps(run["result"], option=orjson.OPT_INDENT_2).decode())
    return 0 if run["outcome"] == "succeeded" else 1


async def _timed_out(store: Store, run_id: int, timeout: float, *, cancel: bool) -> int:
    """What a `--wait` that ran out of time says, and with `cancel`, does."""
    running = await controllers_running(store, runs=True)
    after = f"run {run_id} has not ended after {timeout:g}s"
    why = f"cancelled: not started within {timeout:g}s (p38 run --cancel-on-timeout)"
    if cancel and await move(store, RUNS, (run_id,), "finished", why, only_from=("queued",),
                             outcome="cancelled", error=why):
        print(f"{after}: it had not started, and is cancelled (--cancel-on-timeout)",
              file=sys.stderr)
        return 1
    run = await store.fetchrow("agent_run_get", run_id)
    state = run["state"] if run is not None else "gone"
    if state == "running":
        what = ("it is running and goes on (--cancel-on-timeout cancels only a run that has "
                f"not started; GET /api/runs/{run_id} follows it)")
    elif state == "queued":
        what = ("it stays queued and runs when a controller carries it out"
                + ("" if running else " (no controller that runs agents is running: "
                   "`p38 up`, `p38 serve` or `p38 worker --kinds run` starts one)")
                + "; --cancel-on-timeout cancels a run that has not started")
    else:
        what = f"it is {state} now (GET /api/runs/{run_id})"
    print(f"{after}: {what}", file=sys.stderr)
    return 1
