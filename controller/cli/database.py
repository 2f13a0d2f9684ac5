"""The one-shot commands on the database: migrate, replay, approve, prune, db-stop (`p38 status`
lives in `status.py`)."""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sys
from pathlib import Path

from pydantic import ValidationError

from controller.cli.common import settings_from, shown, with_store
from controller.config import RetentionSettings
from controller.engine import retention
from controller.engine.queue import WorkQueue
from controller.store import DatabaseUnavailable, Store, application_name
from controller.store.embedded import embedded_state, start_embedded, stop_embedded


def cmd_migrate(args: argparse.Namespace) -> int:
    async def body(store: Store) -> int:
        applied = await store.migrate()
        print(f"applied {applied}" if applied else "nothing to apply",
              f"(schema version {await store.schema_version()})")
        return 0

    return asyncio.run(with_store(settings_from(args), body, need_schema=False, create=True))


def cmd_replay(args: argparse.Namespace) -> int:
    settings = settings_from(args)

    async def body(store: Store) -> int:
        ref: str = args.delivery
        row = await store.fetchrow("delivery_by_guid", ref)
        if row is None and ref.isascii() and ref.isdigit() and int(ref) < 2**62:
            row = await store.fetchrow("delivery_by_id", int(ref))
        if row is None:
            print(f"no delivery with GUID or id {ref!r}", file=sys.stderr)
            return 1
        keys = await store.fetchval("delivery_reopen", row["id"])
        if not keys:
            print(f"delivery {row['id']} ({shown(row['event'])}) produced no keys: nothing to "
                  "replay")
            return 0
        await WorkQueue(store, settings.queue).enqueue_now(keys)
        print(f"delivery {row['id']} ({shown(row['event'])}) re-enqueued: "
              f"{shown(', '.join(keys))}")
        return 0

    return asyncio.run(with_store(settings, body))


def cmd_approve(args: argparse.Namespace) -> int:
    settings = settings_from(args)

    async def body(store: Store) -> int:
        row = await store.fetchrow("action_by_key", args.idempotency_key)
        if row is None:
            print(f"no action with idempotency key {args.idempotency_key!r} (see "
                  "/api/actions?status=held)", file=sys.stderr)
            return 1
        await store.execute("approval_grant", args.idempotency_key, args.by)
        if row["key"]:
            await WorkQueue(store, settings.queue).enqueue_now([row["key"]])
        print(f"approved {shown(args.idempotency_key)} (by {shown(args.by)}); "
              f"{shown(row['key'])} is reconciled "
              "now, and the action runs unless the killswitch is on")
        return 0

    return asyncio.run(with_store(settings, body))


def cmd_prune(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    days = settings.retention.days
    if args.days is not None:
        try:
            days = RetentionSettings(P38_RETENTION_DAYS=args.days).days
        except ValidationError as exc:
            rule = exc.errors()[0]["msg"].removeprefix("Value error, ")
            print(f"--days {args.days}: {rule}", file=sys.stderr)
            return 2
    if days == 0:  # named as it was given: the flag, or else the variable
        print("--days 0 keeps everything: nothing pruned" if args.days is not None
              else "retention is off (P38_RETENTION_DAYS=0): nothing pruned")
        return 0

    async def body(store: Store) -> int:
        pruned = await retention.prune(store, days=days)
        print(f"deleted {pruned.deliveries} settled deliveries, {pruned.audit} audit rows, "
              f"{pruned.statuses} statuses of objects, {pruned.runs} agent runs, "
              f"{pruned.ticks} schedule ticks and {pruned.blobs} cached blobs older than "
              f"{days} days")
        return 0

    return asyncio.run(with_store(settings, body))


def cmd_db_stop(args: argparse.Namespace) -> int:
    """Stop the embedded server, unless a controller (or any other client) still uses it:
    stopping it under a running controller is an outage that nothing announces."""
    home = settings_from(args).store.home
    pgdata = home / "pgdata"
    if embedded_state(home) == "running":
        unknown: str | None = None
        try:
            users = asyncio.run(_clients(home))
        except DatabaseUnavailable as exc:
            users, unknown = [], str(exc)
        if (users or unknown) and not getattr(args, "force", False):
            who = f"cannot tell who uses it ({unknown})" if unknown else \
                "in use by " + "; ".join(users)
            print(f"not stopped: the embedded PostgreSQL in {pgdata} is {who}. Stop the "
                  "controller first (SIGTERM, or Ctrl-C where `p38 up` runs), or run "
                  "`p38 db-stop --force` to stop it anyway (a controller then waits for its "
                  "database, saying so once a minute, until it runs again)", file=sys.stderr)
            return 1
    stopped = stop_embedded(home)
    print(f"embedded PostgreSQL in {pgdata} {'stopped' if stopped else 'was not running'}")
    return 0


async def _clients(home: Path) -> list[str]:
    """Who else is connected to the embedded server in `home`, one entry per process."""
    dsn = await asyncio.to_thread(start_embedded, home)  # running: only its address
    store = await Store.connect(dsn, min_size=1, max_size=1)
    try:
        rows = await store.fetch("database_clients")
    finally:
        await store.close()
    return [shown(f"{r['name']} ({r['connections']} connection(s) since "
                  f"{r['since']:%Y-%m-%d %H:%M:%S %Z})") for r in rows
            if not _gone(str(r["name"]))]


def _gone(name: str) -> bool:
    """A p38 process of this host that has exited (its connections may outlive it for a
    moment, while the server notices)."""
    found = re.match(r"p38 pid (\d+) on ", name)
    if found is None or name != application_name(int(found.group(1))):
        return False
    try:
        os.kill(int(found.group(1)), 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False
    return False
