"""The read commands: `p38 get [KIND] [NAME] [--watch]`, `p38 describe KEY` (or `KIND NAME`),
`p38 runs [AGENT]`, `p38 tasks [ID]`, `p38 logs RUN`; each with `-o json`, each from the
database or from a controller's API (`--server URL` / `P38_SERVER`; controller/cli/remote.py).

Each command is written once against `Reader` and prints what it returns: tables as
`kubectl get` prints them, `describe` in sections. Reads only; nothing is changed anywhere.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from difflib import get_close_matches
from typing import Any

from controller.cli import send_webhook, tables
from controller.cli.common import positive_int, seconds, shown, text
from controller.cli.describe_text import describe_lines
from controller.cli.remote import Reader, add_server_flag, run_read
from reconcilers import default_registry

WATCH_SECONDS = 2.0


def kinds() -> list[str]:
    return sorted(default_registry())


def _kind(value: str) -> str:
    """An argparse type: a kind of object (`agent`, or `agents`), or `all`."""
    known = kinds()
    lowered = value.lower()
    if lowered == "all":
        return "all"
    if lowered in known:
        return lowered
    if lowered.endswith("s") and lowered[:-1] in known:
        return lowered[:-1]
    near = get_close_matches(lowered.removesuffix("s"), known, n=1, cutoff=0.6)
    hint = f"did you mean {near[0]}? " if near else ""
    raise argparse.ArgumentTypeError(f"unknown kind {value[:40]!r}; {hint}the kinds are "
                                     f"{', '.join(known)} (or all)")


def _limit(value: str) -> int:
    number = positive_int(value)
    if number > 500:
        raise argparse.ArgumentTypeError("at most 500")
    return number


_TEXT = text(500, empty="must not be blank")
_INTERVAL = seconds(0.1, 3600)


def add_parsers(sub: Any) -> None:
    """The read commands' parsers, on the `p38` parser's subcommands."""
    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("-o", "--output", choices=("table", "json"), default="table",
                       help="table (default) or json")
        add_server_flag(p)

    get = sub.add_parser("get", help="objects of a kind with status, reason, age and message "
                                     "(like kubectl get); --watch follows changes")
    get.add_argument("kind", nargs="?", type=_kind, default="all",
                     help=f"one of {', '.join(kinds())}, or all (default)")
    get.add_argument("name", nargs="?", type=_TEXT,
                     help="only this object: its name, or its key")
    get.add_argument("-w", "--watch", action="store_true",
                     help="after the table, print each object whose status changes, until "
                          "interrupted")
    get.add_argument("--interval", type=_INTERVAL, default=WATCH_SECONDS,
                     help=f"seconds between looks with --watch (default {WATCH_SECONDS:g})")
    common(get)
    get.set_defaults(func=cmd_get)

    describe = sub.add_parser("describe", help="one object: status, last reconciles with "
                                               "their reasons, actions, deliveries; an "
                                               "agent's versions and runs")
    describe.add_argument("what", type=_TEXT, help="a key (agent:local/uptime), or a kind")
    describe.add_argument("name", nargs="?", type=_TEXT,
                          help="with a kind: the object's name")
    common(describe)
    describe.set_defaults(func=cmd_describe)

    runs = sub.add_parser("runs", help="agent runs, newest first (of one agent when named); "
                                       "`runs cancel ID --by NAME` stops one")
    runs.add_argument("agent", nargs="?", type=_TEXT,
                      help="an agent's name, or its key agent:<source>/<name>; or `cancel`")
    runs.add_argument("run", nargs="?", type=positive_int, help="with `cancel`: the run's id")
    runs.add_argument("--by", type=_TEXT, help="with `cancel`: who asks (recorded)")
    runs.add_argument("--limit", type=_limit, default=20, help="how many (default 20, "
                                                               "at most 500)")
    common(runs)
    runs.set_defaults(func=cmd_runs)

    tasks = sub.add_parser("tasks", help="/claude tasks, newest first; with an id, one task "
                                         "and its history")
    tasks.add_argument("id", nargs="?", type=positive_int, help="one task's id")
    tasks.add_argument("--state", type=str.upper, help="only tasks in this state "
                                                       "(e.g. WORKING, PR_OPENED, FAILED)")
    tasks.add_argument("--limit", type=_limit, default=20, help="how many (default 20, "
                                                                "at most 500)")
    common(tasks)
    tasks.set_defaults(func=cmd_tasks)

    logs = sub.add_parser("logs", help="a run's outcome, error, stderr and tool calls")
    logs.add_argument("run", type=positive_int, help="the run's id (see p38 runs)")
    common(logs)
    logs.set_defaults(func=cmd_logs)
    send_webhook.add_parser(sub)


# --- get -------------------------------------------------------------------------------------

GET_COLUMNS = ("KEY", "STATUS", "REASON", "AGE", "MESSAGE")


def _row(item: dict[str, Any]) -> list[Any]:
    status = item["status"] + ("*" if item.get("reconciling") else "")
    return [item["key"], status, item["reason"], tables.age(item["since"]), item["message"]]


def _matches(item: dict[str, Any], name: str | None) -> bool:
    return name is None or name in (item["key"], item["name"], item["key"].partition(":")[2])


def cmd_get(args: argparse.Namespace) -> int:
    kind = None if args.kind == "all" else args.kind

    async def body(reader: Reader) -> int:
        items = [i for i in await reader.objects(kind) if _matches(i, args.name)]
        if args.name is not None and not items:
            print(f"no {kind or 'object'} named {shown(args.name)} (`p38 get "
                  f"{kind or 'all'}` lists them)", file=sys.stderr)
            return 1
        if args.output == "json":
            if args.watch:
                for item in items:
                    tables.emit_json(item, one_line=True)
            else:
                tables.emit_json({"items": items})
        elif items:
            tables.emit(tables.table(GET_COLUMNS, [_row(i) for i in items]))
        else:
            print(f"no {kind or ''} objects".replace("  ", " "), file=sys.stderr)
        if args.watch:
            await _watch(reader, kind, args, items)
        return 0

    try:
        return run_read(args, body)
    except KeyboardInterrupt:  # the end of a watch
        return 0


async def _watch(reader: Reader, kind: str | None, args: argparse.Namespace,
                 items: list[dict[str, Any]]) -> None:
    """Print each object whose status, reason, message or revision changes (and those that
    appear or go), one line each, until interrupted."""
    def seen(item: dict[str, Any]) -> tuple[Any, ...]:
        return (item["status"], item["reason"], item["message"], item["revision"],
                bool(item.get("reconciling")))

    known = {i["key"]: seen(i) for i in items}
    widths = [max([len(h), *(len(tables.cell(v)) for v in col)])
              for h, col in zip(GET_COLUMNS, zip(*[_row(i) for i in items], strict=False),
                                strict=False)] if items else []
    while True:
        await asyncio.sleep(args.interval)
        now = [i for i in await reader.objects(kind) if _matches(i, args.name)]
        for item in now:
            if known.get(item["key"]) != seen(item):
                known[item["key"]] = seen(item)
                if args.output == "json":
                    tables.emit_json(item, one_line=True)
                else:
                    values = [tables.cell(v) for v in _row(item)]
                    values[-1] = tables.cut(values[-1])
                    tables.emit(["   ".join([v.ljust(w) for v, w in
                                             zip(values[:-1], widths, strict=False)]
                                            + [values[-1]]).rstrip()])
        for key in sorted(set(known) - {i["key"] for i in now}):
            del known[key]
            if args.output == "json":
                tables.emit_json({"key": key, "deleted": True}, one_line=True)
            else:
                tables.emit([f"{shown(key)}   (gone)"])


# --- describe --------------------------------------------------------------------------------

def cmd_describe(args: argparse.Namespace) -> int:
    async def body(reader: Reader) -> int:
        key = await _resolve(reader, args.what, args.name)
        if key is None:
            return 1 if args.name is not None or ":" not in args.what else 2
        found = await reader.describe(key)
        if args.output == "json":
            tables.emit_json(found)
        else:
            tables.emit(describe_lines(found))
        return 0

    return run_read(args, body)


async def _resolve(reader: Reader, what: str, name: str | None) -> str | None:
    """The key meant: a key as given; `KIND NAME`; or a name only one object has."""
    if name is None and ":" in what:
        return what
    kind = None
    if name is not None:
        try:
            kind = _kind(what)
        except argparse.ArgumentTypeError as exc:
            print(f"describe: {exc}", file=sys.stderr)
            return None
        kind = None if kind == "all" else kind
    wanted = name if name is not None else what
    found = [i for i in await reader.objects(kind) if _matches(i, wanted)]
    if len(found) == 1:
        return str(found[0]["key"])
    if not found:
        print(f"no {kind or 'object'} named {shown(wanted)} (`p38 get` lists them; a key "
              "looks like agent:local/uptime)", file=sys.stderr)
    else:
        print(f"{shown(wanted)} names {len(found)} objects: "
              f"{', '.join(shown(i['key']) for i in found[:10])}; give the key",
              file=sys.stderr)
    return None


# --- runs, logs, tasks -----------------------------------------------------------------------

def cmd_runs(args: argparse.Namespace) -> int:
    if args.agent == "cancel":
        return _cancel(args)

    async def body(reader: Reader) -> int:
        items = await reader.runs(args.agent, args.limit)
        if args.output == "json":
            tables.emit_json({"items": items})
        elif not items:
            print("no runs" + (f" of {shown(args.agent)}" if args.agent else ""),
                  file=sys.stderr)
        else:
            tables.emit(tables.table(
                ("ID", "AGENT", "VERSION", "TRIGGER", "STATE", "OUTCOME", "AGE", "TOOL CALLS",
                 "USD", "ERROR"),
                [[r["id"], r["agent"].partition(":")[2], r["version"], r["trigger"],
                  r["state"], r["outcome"], tables.age(r["requested_at"]), r["tool_calls"],
                  r["usd"], r["error"]] for r in items]))
        return 0

    return run_read(args, body)


def _cancel(args: argparse.Namespace) -> int:
    """`p38 runs cancel ID --by NAME`: a queued run ends cancelled, a running one is stopped
    within a second (its process group killed); recorded with who asked."""
    if args.run is None or not args.by:
        print("usage: p38 runs cancel ID --by NAME", file=sys.stderr)
        return 2

    async def body(reader: Reader) -> int:
        found = await reader.cancel_run(args.run, args.by)
        if args.output == "json":
            tables.emit_json(found)
        elif not found["asked"]:
            print(f"run {args.run} has already ended ({found.get('outcome') or 'finished'})",
                  file=sys.stderr)
            return 1
        else:
            print(f"run {args.run} ({found['state']}) is asked to stop (by {shown(args.by)}); "
                  f"`p38 logs {args.run}` shows how it ended")
        return 0 if found["asked"] else 1

    return run_read(args, body)


def cmd_logs(args: argparse.Namespace) -> int:
    async def body(reader: Reader) -> int:
        run = await reader.run(args.run)
        if args.output == "json":
            tables.emit_json({k: run.get(k) for k in (
                "id", "agent", "version", "state", "outcome", "error", "stderr",
                "tool_calls", "started_at", "ended_at", "seconds")})
            return 0
        took = f" after {run['seconds']:.1f}s" if run.get("seconds") is not None else ""
        lines = [f"run {run['id']} of {shown(run['agent'])} (version "
                 f"{tables.cell(run['version'])}, {shown(run['trigger'])}"
                 + (f" by {shown(run['requested_by'])}" if run.get("requested_by") else "")
                 + f"): {shown(run['state'])}"
                 + (f" {shown(run['outcome'])}" if run.get("outcome") else "") + took]
        if run.get("error"):
            lines.append(f"error: {shown(run['error'])}")
        stderr = run.get("stderr") or ""
        lines.append(f"--- stderr ({len(stderr.splitlines())} lines) ---")
        lines += [shown(line) for line in stderr.splitlines()]
        calls = run.get("tool_calls") or []
        lines.append(f"--- tool calls ({len(calls)}) ---")
        for n, call in enumerate(calls, 1):
            lines.append(f"{n}. {shown(call.get('tool'))}.{shown(call.get('method'))} "
                         f"{shown(call.get('status', '?'))} {tables.cell(call.get('ms'))} ms"
                         + (f": {shown(call['error'])}" if call.get("error") else ""))
        tables.emit(lines)
        return 0

    return run_read(args, body)


def cmd_tasks(args: argparse.Namespace) -> int:
    async def body(reader: Reader) -> int:
        if args.id is not None:
            found = await reader.task(args.id)
            if args.output == "json":
                tables.emit_json(found)
            else:
                tables.emit(_task_lines(found))
            return 0
        items = await reader.tasks(args.state, args.limit)
        if args.output == "json":
            tables.emit_json({"items": items})
        elif not items:
            print("no /claude tasks" + (f" in state {shown(args.state)}" if args.state
                                        else ""), file=sys.stderr)
        else:
            tables.emit(tables.table(
                ("ID", "WHERE", "STATE", "BY", "AGE", "PULL REQUEST", "COMMAND"),
                [[t["id"], f"{t['repo']}#{t['issue']}", t["state"], t["requested_by"],
                  tables.age(t["created_at"]),
                  (t["pull_request"] or {}).get("url"), t["command"]] for t in items]))
        return 0

    return run_read(args, body)


def _task_lines(task: dict[str, Any]) -> list[str]:
    pull = (f"#{task['pull_request']['number']} {shown(task['pull_request']['url'])}"
            if task.get("pull_request") else "-")
    lines = [f"Task:        {task['id']} in {shown(task['repo'])}#{task['issue']} by "
             f"@{shown(task['requested_by'])}",
             f"Command:     {shown(task['command'])}",
             f"State:       {shown(task['state'])}: {tables.cell(task['reason'])}",
             f"Branch:      {tables.cell(task['branch'])} (base "
             f"{tables.cell(task['base_branch'])})",
             f"Pull:        {pull}",
             f"Spent:       {task['tokens']} tokens, {task['usd']:g} USD, "
             f"{task['tool_calls']} tool calls",
             f"Created:     {tables.stamp(task['created_at'])}",
             "History:"]
    for step in task.get("history") or []:
        lines.append(f"  {tables.stamp(step.get('at'))}  {shown(step.get('state'))}: "
                     f"{tables.cell(step.get('reason'))}")
    if task.get("files"):
        lines.append("Files:")
        lines += [f"  {shown(f['path'])}" + (" (deleted)" if f["deleted"] else "")
                  for f in task["files"]]
    return lines
