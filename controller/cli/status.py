"""`p38 status [-o json] [--watch SECONDS]`: the system at a glance, read from the database.

The schema, the controllers running (their heartbeat rows: a process killed without a word is
shown as gone, and "none running" is said plainly), webhook deliveries, the controller's own
events, the queue (work due now apart from keys waiting for a later instant such as a
schedule's next tick), the killswitch, pull requests, and every object's status, those only
waiting for a provider's credentials apart from real trouble. `gather` reads, `render` writes
text; `-o json` prints what `gather` read. `--watch` redraws until Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import sys
from typing import Any

import orjson

from controller.cli.common import settings_from, shown, with_store
from controller.config import Settings
from controller.engine.heartbeat import GONE_AFTER_SECONDS
from controller.reconcile.plan import STATUSES
from controller.reconcile.reconciler import object_key
from controller.store import DatabaseUnavailable, Store, TransientStoreError
from controller.store.migrations import latest_version

# What a provider's status message says when it is not configured (controller/providers/*):
# an object Blocked for this only waits for credentials, it has not failed.
UNCONFIGURED = ("%ANTHROPIC_API_KEY is not set%", "%RAILWAY_TOKEN is not set%",
                "%no GitHub App credentials%")
LISTED = 20  # objects not Ready listed by name, dead keys too
CLEAR = "\x1b[H\x1b[2J"


def add_status_parser(sub: Any) -> None:
    """`p38 status` in the command's parser (`sub`: its subparsers)."""
    status = sub.add_parser("status", help="controllers running, deliveries, queue, killswitch "
                                           "and every object's status at a glance")
    status.add_argument("-o", "--output", choices=("text", "json"), default="text",
                        help="json: one JSON document (one per frame with --watch)")
    status.add_argument("--watch", metavar="SECONDS", type=_interval, nargs="?", const=2.0,
                        help="redraw every SECONDS (default 2) until Ctrl-C")
    status.set_defaults(func=cmd_status)


def _interval(text: str) -> float:
    """An argparse type: seconds between frames, 0.5 to 3600."""
    try:
        seconds = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0.5 <= seconds <= 3600:
        raise argparse.ArgumentTypeError("must be between 0.5 and 3600 seconds")
    return seconds


def cmd_status(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    as_json = getattr(args, "output", "text") == "json"
    watch: float | None = getattr(args, "watch", None)

    async def body(store: Store) -> int:
        frames = 0
        while True:
            try:
                found = await gather(store, settings)
            except (DatabaseUnavailable, TransientStoreError, OSError) as exc:
                if watch is None:
                    raise
                found = {"error": f"the database did not answer: {exc}"}
            if frames and not as_json:
                print(CLEAR if sys.stdout.isatty() else "")
            print(orjson.dumps(found, default=str).decode() if as_json else render(found),
                  flush=True)
            frames += 1
            if watch is None:
                return 1 if found.get("migrations_pending") else 0
            await asyncio.sleep(watch)

    try:
        return asyncio.run(with_store(settings, body, need_schema=False))
    except KeyboardInterrupt:  # Ctrl-C ends --watch: a normal end, not an error
        return 0


async def gather(store: Store, settings: Settings) -> dict[str, Any]:
    version = await store.schema_version()
    found: dict[str, Any] = {"schema": {"version": version, "latest": latest_version()}}
    if version < latest_version():
        found["migrations_pending"] = True
        return found
    controllers = [dict(r) for r in await store.fetch("controllers_list", GONE_AFTER_SECONDS)]
    here = socket.gethostname()
    for row in controllers:  # on this host, a process that is not there is gone at once
        if row["alive"] and row["host"] == here and not _exists(row["pid"]):
            row["alive"] = False
    found["controllers"] = {
        "running": [_controller(r) for r in controllers if r["alive"]],
        "gone": [_controller(r) for r in controllers if not r["alive"]]}
    counts = await store.fetch("deliveries_counts")
    found["deliveries"] = {r["status"]: r["n"] for r in counts if not r["own"]}
    found["internal_events"] = {r["status"]: r["n"] for r in counts if r["own"]}
    recovered = await store.fetchrow("redeliveries_summary")
    found["recovered_from_github"] = dict(recovered) if recovered else None
    queue = {r["bucket"]: {"n": r["n"], "next_in_seconds": r["next_in"]}
             for r in await store.fetch("queue_summary")}
    found["queue"] = {bucket: queue.get(bucket, {"n": 0})["n"]
                      for bucket in ("due", "running", "later", "retrying", "dead")}
    found["queue"]["next_later_in_seconds"] = (queue.get("later") or {}).get("next_in_seconds")
    found["dead"] = [{"key": r["key"], "error": r["last_error"]}
                     for r in await store.fetch("queue_list", "dead", None, LISTED)]
    held = [f"{r['source']} (Policy/{r['name']})"
            for r in await store.fetch("applied_policies")
            if (r["document"] or {}).get("spec", {}).get("killswitch") is True]
    held += [f"{r['source']} (/claude stop by {r['by_whom']})"
             for r in await store.fetch("killswitches_all")]
    if settings.policy.killswitch:
        held.insert(0, "everywhere (P38_KILLSWITCH)")
    found["killswitch"] = held
    pulls = {r["state"]: dict(r) for r in await store.fetch("pulls_counts")}
    found["pull_requests"] = {
        "by_state": {state: row["n"] for state, row in pulls.items()},
        "auto_merge_open_in_scope": (pulls.get("open") or {}).get("in_scope", 0),
        "merged_by_project38": (pulls.get("merged") or {}).get("by_us", 0)} if pulls else None
    objects: dict[str, int] = {}
    waiting_credentials = 0
    for count in await store.fetch("statuses_summary", list(UNCONFIGURED)):
        if count["credentials"]:
            waiting_credentials += count["n"]
        else:
            objects[count["status"]] = objects.get(count["status"], 0) + count["n"]
    rows = [dict(r) for r in await store.fetch("statuses_not_ready", list(UNCONFIGURED), 500)]
    # A schedule whose agent has no version only because Claude is not configured waits for
    # the same credentials.
    waiting = {r["key"] for r in rows if r["credentials"]}
    agent_of = {object_key("Schedule", r["source"], r["name"]):
                object_key("Agent", r["source"], str(spec.get("agent")))
                for r in await store.fetch("applied_of_kind", "Schedule")
                if isinstance(spec := (r["document"] or {}).get("spec"), dict)}
    for r in rows:
        if r["status"] == "Blocked" and r["reason"] == "AgentNotReady" \
                and agent_of.get(r["key"]) in waiting:
            r["credentials"] = True
            objects["Blocked"] -= 1
            waiting_credentials += 1
    found["objects"] = {s: objects[s] for s in STATUSES if objects.get(s)}
    found["waiting_for_credentials"] = waiting_credentials
    rank = {s: n for n, s in enumerate(STATUSES)}
    found["not_ready"] = sorted(
        ({"key": r["key"], "status": r["status"], "reason": r["reason"],
          "message": r["message"], "waiting_for_credentials": r["credentials"]}
         for r in rows), key=lambda o: (o["waiting_for_credentials"], rank.get(o["status"], 0),
                                        o["key"]))
    return found


async def controllers_running(store: Store, *, runs: bool = False) -> int:
    """How many controllers are alive now that carry out work (`runs`: agent runs)."""
    here = socket.gethostname()
    return sum(1 for r in await store.fetch("controllers_list", GONE_AFTER_SECONDS)
               if r["alive"] and r["workers"] and (r["run_workers"] or not runs)
               and (r["host"] != here or _exists(r["pid"])))


def _exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's process: it exists
        return True
    return True


def _controller(row: dict[str, Any]) -> dict[str, Any]:
    return {"host": row["host"], "pid": row["pid"], "version": row["version"],
            "workers": row["workers"], "run_workers": row["run_workers"],
            "started_at": row["started_at"], "last_seen": row["last_seen"],
            "seen_seconds_ago": round(row["seen_ago"], 1),
            "up_seconds": round(row["up_for"], 1)}


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
        work = (f"{_n(c['workers'], 'worker')}, {_n(c['run_workers'], 'run worker')}"
                if c["workers"] else "ingest only (--workers 0)")
        lines.append(f"  {shown(c['host'])} pid {c['pid']}: p38 {shown(c['version'])}, "
                     f"{work}, up {_age(c['up_seconds'])}, seen {_age(c['seen_seconds_ago'])} "
                     "ago")
    for c in gone:
        lines.append(f"  gone: {shown(c['host'])} pid {c['pid']} (p38 {shown(c['version'])}), "
                     f"last seen {_age(c['seen_seconds_ago'])} ago: it stopped without "
                     "saying so (killed, or lost its database)")
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

