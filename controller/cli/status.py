"""`p38 status [-o json] [--watch SECONDS] [--server URL]`: the system at a glance, read from
the database or a controller's API (`GET /api/status`, controller/web/overview.py).

The schema, the controllers running (their heartbeat rows: a process killed without a word is
shown as gone, and "none running" is said plainly), webhook deliveries, the controller's own
events, the queue (work due now apart from keys waiting for a later instant such as a
schedule's next tick), the killswitch, pull requests, and every object's status, those only
waiting for a provider's credentials apart from real trouble. `overview.gather` reads,
`render` writes text; `-o json` prints what it read. `--watch` redraws until Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

import orjson

from controller.cli.common import seconds, shown
from controller.cli.remote import Reader, add_server_flag, run_read
from controller.clients.controller_api import ApiError, Unreachable
from controller.store import DatabaseUnavailable, TransientStoreError
from controller.web.overview import LISTED

CLEAR = "\x1b[H\x1b[2J"


def add_status_parser(sub: Any) -> None:
    """`p38 status` in the command's parser (`sub`: its subparsers)."""
    status = sub.add_parser("status", help="controllers running, deliveries, queue, killswitch "
                                           "and every object's status at a glance")
    status.add_argument("-o", "--output", choices=("text", "json"), default="text",
                        help="json: one JSON document (one per frame with --watch)")
    status.add_argument("--watch", metavar="SECONDS", type=seconds(0.5, 3600), nargs="?", const=2.0,
                        help="redraw every SECONDS (default 2) until Ctrl-C")
    add_server_flag(status)
    status.set_defaults(func=cmd_status)


def cmd_status(args: argparse.Namespace) -> int:
    as_json = getattr(args, "output", "text") == "json"
    watch: float | None = getattr(args, "watch", None)

    async def body(reader: Reader) -> int:
        frames = 0
        while True:
            try:
                found = await reader.status()
            except (DatabaseUnavailable, TransientStoreError, OSError, Unreachable,
                    ApiError) as exc:
                if watch is None:
                    raise
                found = {"error": f"no answer: {exc}"}
            if frames and not as_json:
                print(CLEAR if sys.stdout.isatty() else "")
            print(orjson.dumps(found).decode() if as_json else render(found), flush=True)
            frames += 1
            if watch is None:
                return 1 if found.get("migrations_pending") else 0
            await asyncio.sleep(watch)

    try:
        return run_read(args, body, need_schema=False)
    except KeyboardInterrupt:  # Ctrl-C ends --watch: a normal end, not an error
        return 0


def render(found: dict[str, Any]) -> str:
    """`gather`'s answer as the lines people read."""
    if "error" in found:
        return str(found["error"])
    schema = found["schema"]
    lines = [f"schema version {schema['version']} of {schema['latest']}"]
    if found.get("migrations_pending"):
        return "\n".join([*lines, "migrations pending: run `p38 migrate`"])
    lines += _controllers(found["controllers"])
    lines.append("webhook deliveries: " + _counts(found["deliveries"]))
    if found["internal_events"]:
        lines.append("internal events (start, resync, runs, timers): "
                     + _counts(found["internal_events"]))
    recovered = found["recovered_from_github"]
    if recovered and recovered["asked"]:
        lines.append(f"recovered from GitHub: {recovered['asked']} failed delivery(ies) asked "
                     f"again, {recovered['arrived']} arrived")
    lines.append(_queue(found["queue"]))
    lines += _jobs(found.get("jobs") or {}, found.get("job_workers") or {},
                   found.get("jobs_without_workers") or [])
    lines += [f"  dead {shown(d['key'])}: {shown(d['error'])}" for d in found["dead"]]
    held = found["killswitch"]
    lines.append("killswitch: " + ("on in " + ", ".join(shown(h) for h in held) if held
                                    else "off"))
    pulls = found["pull_requests"]
    if pulls:
        lines.append("pull requests: " + ", ".join(
            f"{state} {n}" for state, n in sorted(pulls["by_state"].items()))
            + f"; auto-merge: {pulls['auto_merge_open_in_scope']} open in scope, "
              f"{pulls['merged_by_project38']} merged by project38")
    objects = ", ".join(f"{s} {n}" for s, n in found["objects"].items())
    waiting = found["waiting_for_credentials"]
    if waiting:
        objects += ("; " if objects else "") + f"{waiting} waiting for credentials " \
            "(a provider is not configured: their actions are recorded, not run)"
    lines.append("objects: " + (objects or "none"))
    for o in found["not_ready"][:LISTED]:
        label = "waiting for credentials" if o["waiting_for_credentials"] else o["status"]
        lines.append(f"  {label} {shown(o['key'])}: {shown(o['reason'])}: "
                     f"{shown(o['message'])}")
    if len(found["not_ready"]) > LISTED:
        lines.append(f"  ... and {len(found['not_ready']) - LISTED} more (GET /api/objects)")
    return "\n".join(lines)


def _controllers(controllers: dict[str, list[dict[str, Any]]]) -> list[str]:
    running, gone = controllers["running"], controllers["gone"]
    lines = [f"controllers: {len(running)} running" if running else
             "controllers: none running: queued work waits until one starts "
             "(`p38 up` or `p38 serve`)"]
    for c in running:
        jobs = ", ".join(f"{kind} {n}" for kind, n in sorted((c.get("jobs") or {}).items()))
        if c.get("role") == "worker":
            work = f"p38 worker, job workers: {jobs or 'none'}"
        elif c["workers"]:
            work = (f"{_n(c['workers'], 'worker')}, job workers: "
                    f"{jobs or 'none (P38_JOBS=none)'}")
        else:
            work = "ingest only (--workers 0)"
        lines.append(f"  {shown(c['host'])} pid {c['pid']}: p38 {shown(c['version'])}, "
                     f"{work}, up {_age(c['up_seconds'])}, seen {_age(c['seen_seconds_ago'])} "
                     "ago")
    for c in gone:
        lines.append(f"  gone: {shown(c['host'])} pid {c['pid']} (p38 {shown(c['version'])}), "
                     f"last seen {_age(c['seen_seconds_ago'])} ago: it stopped without "
                     "saying so (killed, or lost its database)")
    return lines


def _jobs(jobs: dict[str, dict[str, int]], workers: dict[str, int],
          orphaned: list[str]) -> list[str]:
    """Long work by kind and state, and each kind's live job workers."""
    busy = [f"{kind} " + ", ".join(f"{state} {n}" for state, n in sorted(by_state.items()))
            for kind, by_state in jobs.items() if by_state]
    lines = ["jobs: " + ("; ".join(busy) or "none (generations, sessions, runs)")
             + ("; job workers alive: " + ", ".join(f"{k} {n}" for k, n in workers.items())
                if workers else "")]
    lines += [f"  no live process carries out {kind} jobs: start `p38 worker --kinds {kind}` "
              f"or a `p38 serve` whose P38_JOBS includes {kind}" for kind in orphaned]
    return lines


def _queue(queue: dict[str, Any]) -> str:
    if not any(queue[b] for b in ("due", "running", "later", "retrying", "dead")):
        return "queue: empty"
    parts = [f"due now {queue['due']}", f"running {queue['running']}"]
    if queue["later"]:
        soon = queue["next_later_in_seconds"]
        parts.append(f"waiting for a later time {queue['later']}"
                     + (f" (next in {_age(max(soon, 0))})" if soon is not None else ""))
    if queue["retrying"]:
        parts.append(f"retrying after an error {queue['retrying']}")
    if queue["dead"]:
        parts.append(f"dead {queue['dead']}")
    return "queue: " + ", ".join(parts)


def _n(count: int, what: str) -> str:
    return f"{count} {what}" + ("" if count == 1 else "s")


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "none"


def _age(seconds: float) -> str:
    s = int(seconds)
    if s < 120:
        return f"{s}s"
    if s < 7200:
        return f"{s // 60}m"
    if s < 172800:
        return f"{s // 3600}h {s % 3600 // 60}m"
    return f"{s // 86400}d"

