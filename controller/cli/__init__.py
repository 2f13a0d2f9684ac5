"""`p38`: up, serve, migrate, status, replay, approve, services, run, prune, db-stop, validate,
schema, plan.

Parses arguments, builds Settings from the environment (every setting checked, one line per
problem) and hands over to the command's module: `server` (up, serve), `database` (the
one-shot commands on the store), `manifests` (validate, schema, plan). Exit codes: 0 success,
1 failure, 2 usage or configuration error, 3 no database to work with.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from importlib.metadata import version as package_version
from typing import Any

from pydantic import ValidationError

from controller.cli.agents import add_agents_parser, cmd_run
from controller.cli.common import path, positive_seconds, ranged, text, utf8
from controller.cli.database import (
    cmd_approve,
    cmd_db_stop,
    cmd_killswitch,
    cmd_migrate,
    cmd_prune,
    cmd_replay,
    cmd_revive,
)
from controller.cli.manifests import cmd_plan, cmd_schema, cmd_validate
from controller.cli.reads import add_parsers as add_read_parsers
from controller.cli.remote import add_server_flag
from controller.cli.services import cmd_services
from controller.cli.status import add_status_parser
from controller.cli.suggest import unknown_command
from controller.config import JOB_KINDS, Settings
from controller.logs import configure_logging

_TEXT = text()  # an argument the database records
_NAME = text(empty="an empty name")  # who did something, recorded: not blank


def cmd_up(args: argparse.Namespace) -> int:
    from controller.cli.server import cmd_up as up  # the server's imports only when serving

    return up(args)


def cmd_serve(args: argparse.Namespace) -> int:
    from controller.cli.server import cmd_serve as serve

    return serve(args)


def cmd_worker(args: argparse.Namespace) -> int:
    from controller.cli.server import cmd_worker as worker

    return worker(args)


def _job_kinds(given: str) -> list[str]:
    kinds = [part.strip().lower() for part in given.split(",") if part.strip()]
    unknown = sorted(set(kinds) - set(JOB_KINDS))
    if unknown or not kinds:
        raise argparse.ArgumentTypeError(
            f"unknown job kind {', '.join(unknown) or '(none given)'}: use "
            f"{', '.join(JOB_KINDS)}")
    return [kind for kind in JOB_KINDS if kind in kinds]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="p38", description="project38 GitOps controller")
    parser.add_argument("--version", action="version",
                        version=f"p38 {package_version('project38')}")
    sub = parser.add_subparsers(dest="command", required=True)

    def server_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("--host", help="bind address (default P38_HOST or 127.0.0.1)")
        p.add_argument("--port", type=ranged(0, 65535),
                       help="port, 0-65535; 0: any free port, printed (default P38_PORT or 8080)")
        p.add_argument("--workers", type=ranged(0, 64),
                       help="reconcile workers (default P38_WORKERS); 0: this process only "
                            "ingests")
        p.add_argument("--unix", metavar="PATH", type=path,
                       help="listen on a Unix socket instead of TCP")
        p.add_argument("--manifests", metavar="DIR",
                       help="reconcile this folder as the source `local`, re-read when its "
                            "files change (default P38_MANIFESTS_DIR; `up`: ./manifests)")

    up = sub.add_parser("up", help="start the embedded database (unless DATABASE_URL), migrate, "
                                   "serve on 127.0.0.1:8080")
    server_args(up)
    up.set_defaults(func=cmd_up)
    serve = sub.add_parser("serve", help="serve (production entry point)")
    server_args(serve)
    serve.set_defaults(func=cmd_serve)
    worker = sub.add_parser(
        "worker", help="carry out long work only (agent runs, generations, /claude sessions) "
                       "beside `p38 serve` processes on the same database")
    worker.add_argument("--kinds", type=_job_kinds, default=list(JOB_KINDS),
                        help=f"comma-separated job kinds, of {', '.join(JOB_KINDS)} (default: "
                             "all); each with P38_JOB_WORKERS_<KIND> workers")
    worker.add_argument("--host", help="bind address of the health routes (default P38_HOST)")
    worker.add_argument("--port", type=ranged(0, 65535),
                        help="serve /healthz and /readyz on this port (default: no listener)")
    worker.add_argument("--unix", metavar="PATH", type=path,
                        help="serve the health routes on a Unix socket instead")
    worker.set_defaults(func=cmd_worker)
    sub.add_parser("migrate", help="apply pending migrations").set_defaults(func=cmd_migrate)
    add_status_parser(sub)
    replay = sub.add_parser("replay", help="process a stored delivery again")
    replay.add_argument("delivery", type=_TEXT, help="X-GitHub-Delivery GUID or internal id")
    replay.add_argument("--by", type=_NAME, help="who replays it (recorded; default $USER)")
    replay.set_defaults(func=cmd_replay)
    revive = sub.add_parser("revive", help="queue a dead key again now, with a fresh count")
    revive.add_argument("key", type=_TEXT, help="the key, as p38 status lists dead ones")
    revive.add_argument("--by", type=_NAME, required=True, help="who revives it (recorded)")
    revive.set_defaults(func=cmd_revive)
    killswitch = sub.add_parser("killswitch", help="set or lift a source's killswitch (its "
                                                   "actions are held while it is on)")
    killswitch.add_argument("state", choices=("on", "off"))
    killswitch.add_argument("source", type=_TEXT, help="`local` or owner/repo")
    killswitch.add_argument("--by", type=_NAME, required=True, help="who sets it (recorded)")
    killswitch.set_defaults(func=cmd_killswitch)
    approve = sub.add_parser("approve", help="approve a held action by its idempotency key")
    approve.add_argument("idempotency_key", type=_TEXT)
    approve.add_argument("--by", type=_NAME, required=True, help="who approves (recorded)")
    approve.set_defaults(func=cmd_approve)
    services = sub.add_parser("services", help="every Service with its status and bad "
                                               "commits; clear-bad SERVICE SHA --by NAME "
                                               "clears a mark")
    services.add_argument("action", nargs="?", choices=("list", "clear-bad"), default="list")
    services.add_argument("service", nargs="?", type=_TEXT,
                          help="service:<source>/<name>, <source>/<name> or a unique name")
    services.add_argument("sha", nargs="?", type=_TEXT, help="the commit to clear")
    services.add_argument("--by", type=_NAME, help="who clears it (recorded)")
    services.add_argument("-o", "--output", choices=("text", "json"), default="text",
                          help="json: the Services as GET /api/services gives them")
    add_server_flag(services)
    services.set_defaults(func=cmd_services)
    run = sub.add_parser("run", help="queue a manual run of an agent (a running controller "
                                     "carries it out)")
    run.add_argument("agent", type=_NAME)
    run.add_argument("--input", type=utf8, help="the run's input, as JSON (at most 64 KiB)")
    run.add_argument("--source", type=_TEXT, help="the agent's source, when two define it")
    run.add_argument("--wait", action="store_true", help="follow the run to its end; exit 0 "
                                                        "only when it succeeded")
    run.add_argument("--timeout", type=positive_seconds, default=3700.0,
                     help="seconds --wait waits (default 3700); a run not started by then "
                          "stays queued")
    run.add_argument("--cancel-on-timeout", action="store_true",
                     help="with --wait: cancel the run if it has not started by --timeout")
    run.set_defaults(func=cmd_run)
    add_agents_parser(sub)
    prune = sub.add_parser("prune", help="delete settled deliveries, audit rows and idle "
                                         "statuses older than "
                                         "P38_RETENTION_DAYS now (the server does it hourly)")
    prune.add_argument("--days", type=ranged(0, 36500),
                       help="instead of P38_RETENTION_DAYS (0, or 7 to 36500)")
    prune.set_defaults(func=cmd_prune)
    db_stop = sub.add_parser("db-stop", help="stop the embedded PostgreSQL in P38_HOME "
                                             "(refused while a controller uses it)")
    db_stop.add_argument("--force", action="store_true",
                         help="stop it even while a controller or another client uses it")
    db_stop.set_defaults(func=cmd_db_stop)
    validate = sub.add_parser("validate", help="check manifests; every problem as path:line:col")
    validate.add_argument("dir", nargs="?", default="manifests")
    validate.set_defaults(func=cmd_validate)
    schema = sub.add_parser("schema", help="JSON Schema of manifests on stdout")
    schema.add_argument("--markdown", action="store_true",
                        help="the manifest reference (docs/manifests.md) instead")
    schema.set_defaults(func=cmd_schema)
    plan = sub.add_parser("plan", help="diff the manifests against what is applied "
                                       "(exit 0 no changes, 2 changes, 1 invalid)")
    plan.add_argument("dir", nargs="?", default="manifests")
    plan.add_argument("--source", default="local",
                      help="applied set to compare with: local, or OWNER/NAME")
    plan.set_defaults(func=cmd_plan)
    add_read_parsers(sub)  # get, describe, runs, tasks, logs, send-webhook
    return parser


# A setting read from either of two variables is named by the one that is set.
_ALSO_READ_FROM = {"P38_PORT": "PORT"}


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    if problem := unknown_command(parser, sys.argv[1:] if argv is None else argv):
        print(f"p38: {problem}", file=sys.stderr)
        return 2
    args = parser.parse_args(argv)
    try:
        settings = Settings()
    except ValidationError as exc:  # a bad environment variable: say which and why (never
        for error in exc.errors():  # its value: it may be a secret)
            name = ".".join(str(part) for part in error["loc"])
            other = _ALSO_READ_FROM.get(name)
            if other and name not in os.environ and other in os.environ:
                name = other
            rule = error["msg"].removeprefix("Value error, ")
            print(f"configuration error: {name}: {rule}" if name
                  else f"configuration error: {rule}", file=sys.stderr)
        return 2
    args.redactor = configure_logging(fmt=settings.log.format, level=settings.log.level)
    args.redactor.update(settings.secret_values())
    func: Callable[[argparse.Namespace], Any] = args.func
    try:
        return int(func(args) or 0)
    except BrokenPipeError:  # `p38 schema | head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
