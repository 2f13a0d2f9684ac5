"""`p38 run AGENT [--input JSON] [--wait]`: queue a manual run of an agent in the database; a
running controller (`p38 up`, `p38 serve`) carries it out. With `--wait`, follow it to its end
and print its outcome and result; the exit code is 0 only when it succeeded."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time

import orjson

from controller.cli.common import settings_from, shown, with_store
from controller.reconcile.payloads import json_problem
from controller.reconcile.reconciler import object_key
from controller.store import RejectedValue, Store

MAX_INPUT_BYTES = 64 * 1024
POLL_SECONDS = 0.5


def cmd_run(args: argparse.Namespace) -> int:
    try:
        given = orjson.loads(args.input) if args.input is not None else None
    except orjson.JSONDecodeError as exc:
        print(f"--input is not JSON: {exc}", file=sys.stderr)
        return 2
    if args.input is not None and len(args.input.encode()) > MAX_INPUT_BYTES:
        print(f"--input is at most {MAX_INPUT_BYTES} bytes", file=sys.stderr)
        return 2
    why = json_problem(given)
    if why is not None:
        print(f"--input cannot be stored: {why}", file=sys.stderr)
        return 2

    async def body(store: Store) -> int:
        rows = [r for r in await store.fetch("applied_of_kind", "Agent")
                if r["name"] == args.agent and args.source in (None, r["source"])]
        if not rows:
            print(f"no applied agent named {shown(args.agent)}"
                  + (f" in {shown(args.source)}" if args.source else ""), file=sys.stderr)
            return 1
        if len(rows) > 1:
            print(f"agent {shown(args.agent)} is defined by "
                  f"{', '.join(shown(r['source']) for r in rows)}: say which with --source",
                  file=sys.stderr)
            return 2
        key = object_key("Agent", rows[0]["source"], args.agent)
        try:
            row = await store.fetchrow("agent_run_create", key, "manual", "cli", None, given)
        except RejectedValue as exc:
            print(f"the input cannot be stored: {exc}", file=sys.stderr)
            return 2
        assert row is not None
        print(f"run {row['id']} of {shown(key)} queued (a running controller carries it out; "
              f"GET /api/runs/{row['id']})")
        if not args.wait:
            return 0
        return await _follow(store, row["id"], args.timeout)

    return asyncio.run(with_store(settings_from(args), body))


async def _follow(store: Store, run_id: int, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while True:
        run = await store.fetchrow("agent_run_get", run_id)
        if run is not None and run["state"] == "finished":
            break
        if time.monotonic() > deadline:
            print(f"run {run_id} has not ended after {timeout:.0f}s (is a controller "
                  "running?)", file=sys.stderr)
            return 1
        await asyncio.sleep(POLL_SECONDS)
    print(f"run {run_id} {run['outcome']}" + (f": {shown(run['error'])}" if run["error"] else ""))
    if run["result"] is not None:
        print(orjson.dumps(run["result"], option=orjson.OPT_INDENT_2).decode())
    return 0 if run["outcome"] == "succeeded" else 1
