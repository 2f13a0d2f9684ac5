"""The one-shot commands on the database: migrate, the operator's words (replay, approve,
revive, killswitch: controller/engine/operator.py, recorded with who gave them), prune,
db-stop (`p38 status` lives in `status.py`)."""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

from pydantic import ValidationError

from controller.cli.common import settings_from, shown, with_store
from controller.config import RetentionSettings
from controller.engine import operator, retention
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


def _operator_word(args: argparse.Namespace,
                   act: Callable[[Store, WorkQueue], Awaitable[operator.Done]]) -> int:
    """Run one operator's word (controller/engine/operator.py) on the database: its message,
    exit 0, or 1 when its target does not exist."""
    settings = settings_from(args)

    async def body(store: Store) -> int:
        done = await act(store, WorkQueue(store, settings.queue))
        print(shown(done.message), file=sys.stdout if done.found else sys.stderr)
        return 0 if done.found else 1

    return asyncio.run(with_store(settings, body))


def cmd_replay(args: argparse.Namespace) -> int:
    return _operator_word(args, lambda store, queue: operator.replay(
        store, queue, args.delivery, by=args.by or _who(), via="cli"))


def cmd_approve(args: argparse.Namespace) -> int:
    return _operator_word(args, lambda store, queue: operator.approve(
        store, queue, args.idempotency_key, by=args.by, via="cli"))


def cmd_revive(args: argparse.Namespace) -> int:
    return _operator_word(args, lambda store, queue: operator.revive(
        store, queue, args.key, by=args.by, via="cli"))


def cmd_killswitch(args: argparse.Namespace) -> int:
    return _operator_word(args, lambda store, _queue: operator.killswitch(
        store, args.source, args.state == "on", by=args.by, via="cli"))


def _who() -> str:
    return os.environ.get("USER") or "operator"


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
