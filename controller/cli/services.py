"""`p38 services [-o json] [--server URL]` (every Service with its status, the commits it will
not deploy again and its open incident, from the database or a controller's API) and
`p38 services clear-bad SERVICE SHA --by NAME` (clear a mark by hand, recorded with who did
it; the Service is reconciled at once and deploys the commit if it is its branch's head)."""

from __future__ import annotations

import argparse
import asyncio
import sys

import orjson

from controller.cli.common import settings_from, shown, with_store
from controller.cli.remote import Reader, run_read, server_of
from controller.config import Settings
from controller.engine.queue import WorkQueue
from controller.store import Store


def cmd_services(args: argparse.Namespace) -> int:
    if args.action == "clear-bad":
        if server_of(args) is not None:
            print("p38 services clear-bad writes: it needs the database (DATABASE_URL), not "
                  "--server", file=sys.stderr)
            return 2
        settings = settings_from(args)
        return asyncio.run(with_store(settings, lambda store: _clear(store, settings, args)))

    async def body(reader: Reader) -> int:
        items = await reader.services()
        if getattr(args, "output", "text") == "json":
            print(orjson.dumps(items).decode())
            return 0
        if not items:
            print("no Service objects")
        for item in items:
            status = item["status"] or {"status": "(not reconciled yet)", "reason": "",
                                        "message": ""}
            print(f"{shown(item['key'])}: {status['status']} {shown(status['reason'])}: "
                  f"{shown(status['message'])}")
            for bad in item["bad_commits"]:
                print(f"  bad commit {bad['commit']} (deployment "
                      f"{shown(bad['deployment'])}: {shown(bad['reason'])})")
            if (incident := item["incident"]) is not None:
                back = incident["rolled_back_to"]
                print(f"  open incident: deployment {shown(incident['deployment'])} of "
                      f"{shown(incident['commit'])} {shown(incident['status'])} at "
                      f"{shown(incident['opened_at'])}; "
                      + (f"rolled back to {shown(back['deployment'])}" if back
                         else "not rolled back")
                      + (f" (issue #{incident['issue']})" if incident["issue"] else ""))
        return 0

    return run_read(args, body)


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
