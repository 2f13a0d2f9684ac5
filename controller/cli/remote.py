"""Where the read commands read from: the database (DATABASE_URL or the embedded server) or a
controller's HTTP API (`--server URL` / `P38_SERVER`, with `P38_API_TOKEN` as Bearer), so an
operator can look at production without the database password.

`Reader` is what `p38 status`, `get`, `describe`, `runs`, `tasks` and `logs` need;
`StoreReader` builds each answer with the functions the API routes use
(controller/web/views.py, controller/web/overview.py) and passes it through the same JSON
encoding, `ApiReader` asks the API, so both give the same dicts and each
command is written once. `run_read(args, body)` opens the one the arguments ask for and turns
what goes wrong into one line and an exit code. No command's output here.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import orjson

from controller.cli.common import EXIT_CANNOT_RUN, settings_from, shown, with_store
from controller.clients.controller_api import (
    ApiError,
    ControllerApi,
    Unreachable,
    check_server_url,
    key_path,
)
from controller.config import Settings
from controller.store import Store
from controller.web import overview, views
from controller.web import services as service_views
from controller.web.json import _default

PAGE = 500


class NotFound(Exception):
    """What was asked for does not exist (its text says what)."""


class Reader(Protocol):
    async def status(self) -> dict[str, Any]: ...

    async def services(self) -> list[dict[str, Any]]: ...

    async def cancel_run(self, run_id: int, by: str) -> dict[str, Any]: ...

    async def objects(self, kind: str | None) -> list[dict[str, Any]]: ...

    async def describe(self, key: str) -> dict[str, Any]: ...

    async def runs(self, agent: str | None, limit: int) -> list[dict[str, Any]]: ...

    async def run(self, run_id: int) -> dict[str, Any]: ...

    async def tasks(self, state: str | None, limit: int) -> list[dict[str, Any]]: ...

    async def task(self, task_id: int) -> dict[str, Any]: ...


def _plain(value: Any) -> Any:
    """As the API would answer it: datetimes as ISO text, UUIDs as text."""
    return orjson.loads(orjson.dumps(value, default=_default, option=orjson.OPT_NON_STR_KEYS))


class StoreReader:
    def __init__(self, store: Store, settings: Settings) -> None:
        self.store, self.settings = store, settings

    async def status(self) -> dict[str, Any]:
        return dict(_plain(await overview.gather(self.store, self.settings)))

    async def services(self) -> list[dict[str, Any]]:
        return list(_plain(await service_views.services(self.store)))

    async def cancel_run(self, run_id: int, by: str) -> dict[str, Any]:
        found = await views.cancel_run(self.store, run_id, by)
        if found is None:
            raise NotFound(f"no run {run_id} (`p38 runs` lists them)")
        return dict(_plain(found))

    async def objects(self, kind: str | None) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        after = None
        while True:
            page = await views.objects_page(self.store, kind=kind, status=None, source=None,
                                            after=after, limit=PAGE)
            items += page["items"]
            if (after := page["next"]) is None:
                return list(_plain(items))

    async def describe(self, key: str) -> dict[str, Any]:
        found = await views.describe(self.store, key)
        if found is None:
            raise NotFound(f"no object with key {key!r} (`p38 get` lists them)")
        return dict(_plain(found))

    async def runs(self, agent: str | None, limit: int) -> list[dict[str, Any]]:
        key = None
        if agent is not None:
            found = await views.agent_key(self.store, agent)
            if isinstance(found, list):
                if not found:
                    raise NotFound(f"no applied agent named {agent!r}")
                raise AmbiguousName(f"agent {agent!r} is defined by {', '.join(found)}: "
                                    "name it by its key, agent:<source>/<name>")
            key = found
        page = await views.runs(self.store, key, before=None, limit=limit)
        return list(_plain(page["items"]))

    async def run(self, run_id: int) -> dict[str, Any]:
        found = await views.run(self.store, run_id)
        if found is None:
            raise NotFound(f"no run {run_id} (`p38 runs` lists them)")
        return dict(_plain(found))

    async def tasks(self, state: str | None, limit: int) -> list[dict[str, Any]]:
        page = await views.tasks(self.store, state=state, repo=None, before=None, limit=limit)
        return list(_plain(page["items"]))

    async def task(self, task_id: int) -> dict[str, Any]:
        found = await views.task(self.store, task_id)
        if found is None:
            raise NotFound(f"no task {task_id} (`p38 tasks` lists them)")
        return dict(_plain(found))


class AmbiguousName(Exception):
    """A name that several objects have: the text says how to choose."""


class ApiReader:
    def __init__(self, api: ControllerApi) -> None:
        self.api = api

    async def _get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        try:
            return await self.api.get(path, params)
        except ApiError as exc:
            if exc.status == 404:
                raise NotFound(exc.reason) from None
            if exc.status == 400 and "say which" in exc.reason:
                raise AmbiguousName(exc.reason) from None
            raise

    async def status(self) -> dict[str, Any]:
        return dict(await self._get("/api/status"))

    async def services(self) -> list[dict[str, Any]]:
        return list((await self._get("/api/services"))["items"])

    async def cancel_run(self, run_id: int, by: str) -> dict[str, Any]:
        status, answer = await self.api.post(f"/api/runs/{run_id}/cancel",
                                             orjson.dumps({"by": by}),
                                             {"Content-Type": "application/json"})
        reason = answer.get("reason") if isinstance(answer, dict) else str(answer)
        if status == 404:
            raise NotFound(str(reason))
        if status == 409:
            return {"run": run_id, "state": "finished", "asked": False, "reason": reason}
        if status >= 400:
            raise ApiError(status, str(reason))
        return dict(answer)

    async def objects(self, kind: str | None) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        after = None
        while True:
            page = await self._get("/api/objects", {"kind": kind, "after": after,
                                                    "limit": PAGE})
            items += page["items"]
            if (after := page["next"]) is None:
                return items

    async def describe(self, key: str) -> dict[str, Any]:
        return dict(await self._get(f"/api/objects/{key_path(key)}"))

    async def runs(self, agent: str | None, limit: int) -> list[dict[str, Any]]:
        return list((await self._get("/api/runs", {"agent": agent, "limit": limit}))["items"])

    async def run(self, run_id: int) -> dict[str, Any]:
        return dict(await self._get(f"/api/runs/{run_id}"))

    async def tasks(self, state: str | None, limit: int) -> list[dict[str, Any]]:
        return list((await self._get("/api/tasks", {"state": state, "limit": limit}))["items"])

    async def task(self, task_id: int) -> dict[str, Any]:
        return dict(await self._get(f"/api/tasks/{task_id}"))


def add_server_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--server", metavar="URL", default=os.environ.get("P38_SERVER") or None,
                        help="read from this controller's HTTP API instead of the database "
                             "(default P38_SERVER; P38_API_TOKEN is sent as Bearer)")


def server_of(args: argparse.Namespace) -> str | None:
    """The --server URL (or P38_SERVER), None for the database; exits 2 on a bad one."""
    server: str | None = getattr(args, "server", None)
    if server is None:
        return None
    why = check_server_url(server)
    if why is not None:
        name = "--server" if "P38_SERVER" not in os.environ or \
            os.environ["P38_SERVER"] != server else "P38_SERVER"
        print(f"{name} {why}", file=sys.stderr)
        raise SystemExit(2)
    return server


def quiet_http_log() -> None:
    """httpx logs every request at info: a command's output is not the place for it."""
    logging.getLogger("httpx").setLevel(logging.WARNING)


def run_read(args: argparse.Namespace, body: Callable[[Reader], Awaitable[int]], *,
             need_schema: bool = True) -> int:
    """Run `body` with the reader the arguments ask for; what fails is one line on stderr:
    not found 1, refused (a token needed or wrong) or a bad request 2, unreachable 3."""
    settings = settings_from(args)
    server = server_of(args)

    async def guarded(reader: Reader) -> int:
        try:
            return await body(reader)
        except NotFound as exc:
            print(shown(exc), file=sys.stderr)
            return 1
        except AmbiguousName as exc:
            print(shown(exc), file=sys.stderr)
            return 2
        except ApiError as exc:
            if exc.status in (401, 403):
                hint = (" (the token in P38_API_TOKEN is not the one it accepts)"
                        if settings.server.api_token else " (set P38_API_TOKEN)")
                print(f"the controller at {server} refused: {shown(exc.reason)}{hint}",
                      file=sys.stderr)
                return 2
            print(f"the controller at {server} answered {exc.status}: {shown(exc.reason)}",
                  file=sys.stderr)
            return 2 if exc.status == 400 else 1
        except Unreachable as exc:
            print(shown(exc), file=sys.stderr)
            return EXIT_CANNOT_RUN

    if server is None:
        return asyncio.run(with_store(settings, lambda store: guarded(StoreReader(store, settings)),
                                      need_schema=need_schema))
    token = settings.server.api_token
    quiet_http_log()

    async def remote() -> int:
        async with ControllerApi(server, token.get_secret_value() if token else None) as api:
            return await guarded(ApiReader(api))

    return asyncio.run(remote())
