"""What every `p38` command shares: the settings (the environment, then the flags), the exit
codes, and the database for the one-shot commands. No command logic here."""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

from controller.config import Settings
from controller.store import DatabaseUnavailable, Store
from controller.store.embedded import embedded_state, resolve_dsn
from controller.store.migrations import latest_version

EXIT_CANNOT_RUN = 3  # no database to work with (a usage error is 2, a failure 1)


def settings_from(args: argparse.Namespace) -> Settings:
    """The environment's settings with the command's flags (already range-checked) on top."""
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


async def with_store(settings: Settings, body: Callable[[Store], Awaitable[int]], *,
                      need_schema: bool = True, create: bool = False,
                      absent: Callable[[], int] | None = None) -> int:
    """Run `body` on the database. With DATABASE_URL unset, the embedded server is used when
    it runs; it is created or started only by a command that means to (`create`: migrate),
    never as a side effect of a look (status, plan): `absent` answers when there is none
    yet, else exit 3."""
    pgdata = settings.store.home / "pgdata"
    state = "given" if settings.store.database_url or create else \
        embedded_state(settings.store.home)
    if state == "absent" and absent is not None:
        return absent()
    if state in ("absent", "stopped"):
        print(f"cannot run: no database: DATABASE_URL is unset and the embedded database in "
              f"{pgdata} " + ("does not exist yet (`p38 up` or `p38 migrate` creates it)"
                              if state == "absent" else "is stopped (`p38 up` starts it)"),
              file=sys.stderr)
        return EXIT_CANNOT_RUN
    try:  # an embedded database P38_HOME cannot hold is DatabaseUnavailable too
        dsn = await asyncio.to_thread(resolve_dsn, settings.store.database_url,
                                      settings.store.home)
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


# Characters a terminal acts on rather than shows: C0 and C1 controls (escape sequences can
# retitle the window or clear the screen; a newline would forge a line of its own) and the
# bidirectional overrides that reorder text.
_UNSHOWN = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def shown(value: object) -> str:
    """Text from the database (a repository name, a provider's message) made safe to print
    on a terminal: what a terminal would act on is printed as an escape."""
    return _UNSHOWN.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"),
                        str(value))
