"""What every `p38` command shares: the settings (the environment, then the flags), the exit
codes, the database for the one-shot commands, and the argparse types that check the
arguments. No command logic here."""

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


# The argparse types: each returns the value or raises ArgumentTypeError saying what is wrong
# (argparse prints it after the argument's name and exits 2).

def ranged(low: int, high: int) -> Callable[[str], int]:
    """An argparse type: an integer from `low` to `high` (what the environment variable of the
    same setting is checked against)."""
    def parse(text: str) -> int:
        digits = text.removeprefix("-")
        if not (digits.isascii() and digits.isdigit()):  # int() takes Arabic digits, "+5", "1_0"
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer")
        value = int(text)
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{value} is not between {low} and {high}")
        return value
    return parse


def positive_int(value: str) -> int:
    """An argparse type: an id or a count, 1 or more (and below 2**62, a BIGINT)."""
    if not (value.isascii() and value.isdigit()) or not 0 < int(value) < 2**62:
        raise argparse.ArgumentTypeError(f"{value[:40]!r} is not a positive integer")
    return int(value)


def _number_of_seconds(value: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value[:40]!r} is not a number of seconds") \
            from None


def seconds(low: float, high: float) -> Callable[[str], float]:
    """An argparse type: a number of seconds from `low` to `high`."""
    def parse(value: str) -> float:
        number = _number_of_seconds(value)
        if not low <= number <= high:  # NaN is not either
            raise argparse.ArgumentTypeError(f"must be between {low:g} and {high:g} seconds")
        return number
    return parse


def positive_seconds(value: str) -> float:
    """An argparse type: a positive, finite number of seconds."""
    number = _number_of_seconds(value)
    if not 0 < number < float("inf"):
        raise argparse.ArgumentTypeError("must be more than 0 seconds")
    return number


def utf8(value: str) -> str:
    """An argparse type: valid UTF-8 (a terminal may pass undecodable bytes), of any length
    (the command checks its own limit)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise argparse.ArgumentTypeError("not valid UTF-8") from None
    return value


def text(most: int = 1000, *, empty: str | None = None) -> Callable[[str], str]:
    """An argparse type: text the database can hold (valid UTF-8, no NUL), at most `most`
    characters; with `empty`, blank text is refused with that message."""
    def parse(value: str) -> str:
        if empty is not None and not value.strip():
            raise argparse.ArgumentTypeError(empty)
        utf8(value)
        if "\x00" in value:
            raise argparse.ArgumentTypeError("contains a NUL character")
        if len(value) > most:
            raise argparse.ArgumentTypeError(f"longer than {most} characters")
        return value
    return parse


def path(value: str) -> str:
    """An argparse type: a path that is not empty (an empty one would silently mean "none")."""
    if not value:
        raise argparse.ArgumentTypeError("an empty path")
    return value
