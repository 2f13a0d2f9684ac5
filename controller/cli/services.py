"""`p38 services` (every Service with its status, the commits it will not deploy again and its
open incident) and
`p38 services clear-bad SERVICE SHA --by NAME` (clear a mark by hand, recorded with who did
it; the Service is reconciled at once and deploys the commit if it is its branch's head)."""

from __future__ import annotations

import argparse
import asyncio
import sys

from controller.cli.common import settings_from, shown, with_store
from controller.config import Settings
from controller.engine.queue import WorkQueue
from controller.store import Store


def cmd_services(args: argparse.Namespace) -> int:
    settings = settings_from(args)

    async def body(store: Store) -> int:
        if args.action == "clear-bad":
            return await _clear(store, settings, args)
        rows = await store.fetch("statuses_list", "service", None, None, 500, None)
        if not rows:
            print("no Service objects")
        for row in rows:
            print(f"{shown(row['key'])}: {row['status']} {shown(row['reason'])}: "
                  f"{shown(row['message'])}")
            for bad in await store.fetch("service_bad_list", row["key"]):
                print(f"  bad commit {bad['commit_sha']} (deployment "
                      f"{shown(bad['deployment'])}: {shown(bad['reason'])})")
            for incident in await store.fetch("service_incidents_list", row["key"], 1):
                if incident["closed_at"] is None:
                    print(f"  open incident: deployment {shown(incident['deployment'])} of "
                          f"{shown(incident['commit_sha'])} {shown(incident['status'])} at "
                          f"{incident['opened_at']:%Y-%m-%d %H:%M:%S}; "
                          + (f"rolled back to {shown(incident['rolled_back_to'])}"
                             if incident["rolled_back_to"] else "not rolled back"))
        return 0

    return asyncio.run(with_store(settings, body))


async def _clear(store: Store, settings: Settings, args: argparse.Namespace) -> int:
    if not args.service or not args.sha or not args.by:
        print("usage: p38 services clear-bad SERVICE SHA --by NAME", file=sys.stderr)
        return 2
    key = _key(args.service)
    if key is None or not await store.fetch("statuses_of", [key]):
        known = [r["key"] for r in await store.fetch("statuses_list", "service", None, None,
                                                      500, None)
                 if r["key"].rpartition("/")[2] == args.service]
        if len(known) != 1:
            print(f"no single Service {args.service!r}: name it as service:<source>/<name> "
                  "(see p38 services)", file=sys.stderr)
            return 1
        key = known[0]
    cleared = await store.fetchval("service_bad_clear", key, args.sha, args.by)
    if cleared is None:
        print(f"{shown(args.sha)} is not marked bad for {shown(key)}", file=sys.stderr)
        return 1
    await WorkQueue(store, settings.queue).enqueue_now([key])
    print(f"cleared {shown(args.sha)} for {shown(key)} (by {shown(args.by)}); it is reconciled "
          "now and deploys the commit if it is its branch's head")
    return 0


def _key(service: str) -> str | None:
    if service.startswith("service:"):
        return service
    if "/" in service:
        return f"service:{service}"
    return None
