"""`p38`: up, serve, migrate, status, replay, approve, db-stop, validate, schema, plan.

Parses arguments, builds Settings from the environment, and calls into the app or the store.
Exit codes: 0 success, 1 failure, 2 usage error.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from controller import serving
from controller.clients.secrets import (
    GoogleSecretManager,
    Secrets,
    SecretSource,
    with_provider_secrets,
)
from controller.clients.secrets import load as load_secrets
from controller.config import RetentionSettings, Settings
from controller.engine import retention
from controller.engine.queue import WorkQueue
from controller.logs import SecretRedactor, configure_logging
from controller.manifests import reference
from controller.manifests.loader import ManifestSet, Problem, load_dir
from controller.manifests.models import json_schema
from controller.reconcile.plan import STATUSES
from controller.store import DatabaseUnavailable, Store
from controller.store.embedded import resolve_dsn, stop_embedded
from controller.store.migrations import latest_version
from reconcilers.manifests import decide as manifests_decide
from reconcilers.manifests import object_changes, snapshot_of


def _settings(args: argparse.Namespace) -> Settings:
    settings = Settings()
    server = settings.server
    if getattr(args, "host", None):
        server = server.model_copy(update={"host": args.host})
    if getattr(args, "port", None) is not None:
        server = server.model_copy(update={"port": args.port})
    queue = settings.queue
    if getattr(args, "workers", None) is not None:
        queue = queue.model_copy(update={"workers": args.workers})
    manifests = settings.manifests
    folder = getattr(args, "manifests", None)
    if folder is None and getattr(args, "command", None) == "up" \
            and manifests.directory is None and Path("manifests").is_dir():
        folder = "manifests"  # `p38 up` in a checkout reconciles the repository's own
    if folder is not None:
        manifests = manifests.model_copy(update={"directory": Path(folder)})
    return settings.model_copy(update={"server": server, "queue": queue,
                                       "manifests": manifests})


def _with_secret_manager(settings: Settings, redactor: SecretRedactor
                         ) -> tuple[Settings, SecretSource | None]:
    """With GCP_PROJECT_ID: provider secrets from Secret Manager (read at start, then
    refreshed by the app every P38_SECRETS_TTL_SECONDS)."""
    project = settings.providers.gcp_project_id
    if not project:
        return settings, None
    holder = Secrets(on_change=redactor.update)
    manager = GoogleSecretManager.connect(project)
    asyncio.run(load_secrets(holder, manager))
    return with_provider_secrets(settings, holder), SecretSource(holder, manager)


def _serve(settings: Settings, *, banner: bool, unix: str | None = None,
           redactor: SecretRedactor | None = None) -> int:
    settings, secrets = _with_secret_manager(settings, redactor or SecretRedactor())
    return serving.serve(settings, secrets=secrets, banner=banner, unix=unix)


def cmd_up(args: argparse.Namespace) -> int:
    return _serve(_settings(args), banner=True, unix=args.unix, redactor=args.redactor)


def cmd_serve(args: argparse.Namespace) -> int:
    return _serve(_settings(args), banner=False, unix=args.unix, redactor=args.redactor)


EXIT_CANNOT_RUN = 3  # no database to work with (a usage error is 2, a failure 1)


async def _with_store(settings: Settings, body: Callable[[Store], Awaitable[int]], *,
                      need_schema: bool = True, create: bool = False,
                      absent: Callable[[], int] | None = None) -> int:
    """Run `body` on the database. With DATABASE_URL unset, the embedded server is started
    if it exists; it is created only by a command that means to (`create`: migrate), never
    as a side effect of a look (status, plan): `absent` answers instead, or exit 3."""
    pgdata = settings.store.home / "pgdata"
    if not settings.store.database_url and not create and not (pgdata / "PG_VERSION").exists():
        if absent is not None:
            return absent()
        print(f"cannot run: no database: DATABASE_URL is unset and there is no embedded "
              f"database in {pgdata} yet (`p38 up` or `p38 migrate` creates it)",
              file=sys.stderr)
        return EXIT_CANNOT_RUN
    dsn = await asyncio.to_thread(resolve_dsn, settings.store.database_url, settings.store.home)
    try:
        store = await Store.connect(dsn, min_size=1, max_size=2)
    except DatabaseUnavailable as exc:
        print(f"cannot run: {exc}", file=sys.stderr)
        return EXIT_CANNOT_RUN
    try:
        if need_schema and (version := await store.schema_version()) < latest_version():
            print(f"the database schema is at version {version}, this p38 needs "
                  f"{latest_version()}: run `p38 migrate` first", file=sys.stderr)
            return 1
        return await body(store)
    finally:
        await store.close()


def cmd_migrate(args: argparse.Namespace) -> int:
    async def body(store: Store) -> int:
        applied = await store.migrate()
        print(f"applied {applied}" if applied else "nothing to apply",
              f"(schema version {await store.schema_version()})")
        return 0

    return asyncio.run(_with_store(_settings(args), body, need_schema=False, create=True))


def cmd_status(args: argparse.Namespace) -> int:
    settings = _settings(args)

    async def body(store: Store) -> int:
        version = await store.schema_version()
        print(f"schema version {version} of {latest_version()}")
        if version < latest_version():
            print("migrations pending: run `p38 migrate`")
            return 1
        counts = await store.fetch("deliveries_counts")
        for own, label in ((False, "deliveries:"), (True, "controller hints:")):
            found = sorted((r["status"], r["n"]) for r in counts if r["own"] is own)
            if found or not own:
                print(label, ", ".join(f"{k} {v}" for k, v in found) or "none")
        recovered = await store.fetchrow("redeliveries_summary")
        if recovered and recovered["asked"]:
            print(f"recovered from GitHub: {recovered['asked']} failed delivery(ies) asked "
                  f"again, {recovered['arrived']} arrived")
        queue: dict[str, int] = {}
        for row in await store.fetch("queue_depth"):
            state = "running" if row["leased"] else row["state"]
            queue[state] = queue.get(state, 0) + row["n"]
        print("queue:", ", ".join(f"{k} {v}" for k, v in sorted(queue.items())) or "empty")
        for row in await store.fetch("queue_list", "dead", None, 20):
            print(f"  dead {row['key']}: {row['last_error']}")
        held = [f"{r['source']} (Policy/{r['name']})"
                for r in await store.fetch("applied_policies")
                if (r["document"] or {}).get("spec", {}).get("killswitch") is True]
        if settings.policy.killswitch:
            held.insert(0, "everywhere (P38_KILLSWITCH)")
        print("killswitch:", "on in " + ", ".join(held) if held else "off")
        statuses = {r["status"]: r["n"] for r in await store.fetch("statuses_counts")}
        print("objects:", ", ".join(f"{s} {statuses[s]}" for s in STATUSES if s in statuses)
              or "none")
        for status in STATUSES[1:]:  # everything that is not Ready, worst last
            for row in await store.fetch("statuses_list", None, status, None, 20, None):
                print(f"  {status} {row['key']}: {row['reason']}: {row['message']}")
        return 0

    return asyncio.run(_with_store(settings, body, need_schema=False))


def cmd_replay(args: argparse.Namespace) -> int:
    settings = _settings(args)

    async def body(store: Store) -> int:
        ref: str = args.delivery
        row = await store.fetchrow("delivery_by_guid", ref)
        if row is None and ref.isdigit():
            row = await store.fetchrow("delivery_by_id", int(ref))
        if row is None:
            print(f"no delivery with GUID or id {ref!r}", file=sys.stderr)
            return 1
        keys = await store.fetchval("delivery_reopen", row["id"])
        if not keys:
            print(f"delivery {row['id']} ({row['event']}) produced no keys: nothing to replay")
            return 0
        await WorkQueue(store, settings.queue).enqueue_now(keys)
        print(f"delivery {row['id']} ({row['event']}) re-enqueued: {', '.join(keys)}")
        return 0

    return asyncio.run(_with_store(settings, body))


def cmd_approve(args: argparse.Namespace) -> int:
    settings = _settings(args)

    async def body(store: Store) -> int:
        row = await store.fetchrow("action_by_key", args.idempotency_key)
        if row is None:
            print(f"no action with idempotency key {args.idempotency_key!r} (see "
                  "/api/actions?status=held)", file=sys.stderr)
            return 1
        await store.execute("approval_grant", args.idempotency_key, args.by)
        if row["key"]:
            await WorkQueue(store, settings.queue).enqueue_now([row["key"]])
        print(f"approved {args.idempotency_key} (by {args.by}); {row['key']} is reconciled "
              "now, and the action runs unless the killswitch is on")
        return 0

    return asyncio.run(_with_store(settings, body))


def cmd_prune(args: argparse.Namespace) -> int:
    settings = _settings(args)
    days = settings.retention.days
    if args.days is not None:
        try:
            days = RetentionSettings(P38_RETENTION_DAYS=args.days).days
        except ValidationError as exc:
            print(f"--days {args.days}: {exc.errors()[0]['msg']}", file=sys.stderr)
            return 2
    if days == 0:
        print("retention is off (P38_RETENTION_DAYS=0): nothing pruned")
        return 0

    async def body(store: Store) -> int:
        pruned = await retention.prune(store, days=days)
        print(f"deleted {pruned.deliveries} settled deliveries, {pruned.audit} audit rows and "
              f"{pruned.statuses} statuses of objects older than {days} days")
        return 0

    return asyncio.run(_with_store(settings, body))


def cmd_db_stop(args: argparse.Namespace) -> int:
    home = _settings(args).store.home
    stopped = stop_embedded(home)
    print(f"embedded PostgreSQL in {home / 'pgdata'} "
          f"{'stopped' if stopped else 'was not running'}")
    return 0


def _print_problems(manifests: ManifestSet) -> None:
    for problem in manifests.problems:
        print(problem, file=sys.stderr)


def _load(folder: str) -> ManifestSet:
    """The folder's manifests; an empty folder is a problem too (a plan of nothing would
    prune everything, and validating nothing proves nothing)."""
    manifests = load_dir(Path(folder))
    if manifests.ok and not manifests.objects:
        manifests.problems.append(Problem(folder, 1, 1, "no manifests found (*.yaml, *.yml)"))
    return manifests


def cmd_validate(args: argparse.Namespace) -> int:
    manifests = _load(args.dir)
    _print_problems(manifests)
    if not manifests.ok:
        files = len({p.path for p in manifests.problems})
        print(f"{len(manifests.problems)} problem(s) in {files} of {manifests.files} "
              "file(s) read" if manifests.files else
              f"{len(manifests.problems)} problem(s); no manifest file was read",
              file=sys.stderr)
        return 1
    kinds = Counter(o.kind for o in manifests.objects)
    print(f"ok: {len(manifests.objects)} object(s) in {manifests.files} file(s)"
          + (f" ({', '.join(f'{n} {k}' for k, n in sorted(kinds.items()))})" if kinds else ""))
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    print(reference.render() if args.markdown else json.dumps(json_schema(), indent=2), end=""
          if args.markdown else "\n")
    return 0


def cmd_plan(args: argparse.Namespace) -> int:
    """Exit 0: nothing would change; 2: something would; 1: the manifests are invalid or
    empty; 3: no database to compare with."""
    manifests = _load(args.dir)
    if not manifests.ok:
        _print_problems(manifests)
        print(f"{len(manifests.problems)} problem(s): nothing would be applied",
              file=sys.stderr)
        return 1

    def against(rows: list[Any]) -> int:
        plan = manifests_decide(snapshot_of(manifests, rows, source=args.source))
        changes = object_changes(plan)
        for action in changes:
            print(action.description)
        print(f"Plan ({args.source}): {plan.reason}.")
        return 2 if changes else 0

    async def applied(store: Store) -> int:
        # A database never migrated (a fresh clone) has applied nothing: every object is a
        # create. Plan reads only; it never migrates.
        return against(await store.fetch("applied_objects_of", args.source)
                       if await store.schema_version() >= APPLIED_OBJECTS_SINCE else [])

    def nothing_applied() -> int:
        print("(no database here yet: compared with nothing applied)", file=sys.stderr)
        return against([])

    return asyncio.run(_with_store(_settings(args), applied, need_schema=False,
                                   absent=nothing_applied))


APPLIED_OBJECTS_SINCE = 3  # the migration that created applied_objects


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="p38", description="project38 GitOps controller")
    parser.add_argument("--version", action="version",
                        version=f"p38 {package_version('project38')}")
    sub = parser.add_subparsers(dest="command", required=True)

    def server_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("--host", help="bind address (default P38_HOST or 127.0.0.1)")
        p.add_argument("--port", type=_ranged(0, 65535),
                       help="port, 0-65535; 0: any free port, printed (default P38_PORT or 8080)")
        p.add_argument("--workers", type=_ranged(0, 64),
                       help="reconcile workers (default P38_WORKERS); 0: this process only "
                            "ingests")
        p.add_argument("--unix", metavar="PATH", help="listen on a Unix socket instead of TCP")
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
    sub.add_parser("migrate", help="apply pending migrations").set_defaults(func=cmd_migrate)
    sub.add_parser("status", help="schema, deliveries, queue, killswitch and every object's "
                                  "status at a glance").set_defaults(
        func=cmd_status)
    replay = sub.add_parser("replay", help="process a stored delivery again")
    replay.add_argument("delivery", help="X-GitHub-Delivery GUID or internal id")
    replay.set_defaults(func=cmd_replay)
    approve = sub.add_parser("approve", help="approve a held action by its idempotency key")
    approve.add_argument("idempotency_key")
    approve.add_argument("--by", required=True, help="who approves (recorded)")
    approve.set_defaults(func=cmd_approve)
    prune = sub.add_parser("prune", help="delete settled deliveries, audit rows and idle "
                                         "statuses older than "
                                         "P38_RETENTION_DAYS now (the server does it hourly)")
    prune.add_argument("--days", type=int, help="instead of P38_RETENTION_DAYS (at least 7)")
    prune.set_defaults(func=cmd_prune)
    sub.add_parser("db-stop", help="stop the embedded PostgreSQL in P38_HOME").set_defaults(
        func=cmd_db_stop)
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
    return parser


def _ranged(low: int, high: int) -> Callable[[str], int]:
    """An argparse type: an integer from `low` to `high` (what the environment variable of the
    same setting is checked against)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{value} is not between {low} and {high}")
        return value
    return parse


# A setting read from either of two variables is named by the one that is set.
_ALSO_READ_FROM = {"P38_PORT": "PORT"}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
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


if __name__ == "__main__":
    sys.exit(main())
