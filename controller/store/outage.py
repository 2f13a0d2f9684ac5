"""The database going away, said once: one error line when it becomes unreachable, one line
every `every` seconds while it stays so, one line when it is back. A blip shorter than `grace`
seconds (a pooled connection answering once more while the server shuts down, a restart that
a retry rode out) is not announced, so the lines do not flap.

Every loop that polls the database (the workers' claims, LISTEN, the resync, retention, the
local manifests watcher) reports its failures here instead of logging each one: a stopped
database would otherwise be ten warnings a second. A failure that is not the database being
unreachable (a bug, a refused value) is not taken: `failed` returns False and the caller logs
it as before. In memory only; no I/O beyond log lines.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import asyncpg
import structlog

log = structlog.get_logger("p38.store")

# What "the database cannot be reached" looks like, wherever in an exception's chain: the
# socket gone or refused (OSError: a stopped embedded server's socket file is missing), the
# server shutting down or terminating us, the database dropped, a pooled connection closed.
_UNREACHABLE: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
    asyncpg.exceptions.InvalidCatalogNameError,
    asyncpg.exceptions.InterfaceError,
    asyncpg.exceptions.InternalClientError,  # a pooled connection the server terminated
)


def unreachable(exc: BaseException) -> bool:
    """True when `exc` (or what caused it) says the database cannot be reached."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, _UNREACHABLE) or type(current).__name__ == "DatabaseUnavailable":
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


def _describe(exc: BaseException) -> str:
    """The first cause (the socket's error, not the wrappers around it), in words."""
    while exc.__cause__ is not None:
        exc = exc.__cause__
    if isinstance(exc, FileNotFoundError | ConnectionRefusedError):
        return f"{type(exc).__name__}: no server listens there (stopped?)"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


class Outage:
    """Whether the database is reachable, as the process last saw it, and the lines saying so."""

    def __init__(self, *, every: float = 60.0, grace: float = 2.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.every, self.grace = every, grace
        self._clock = clock
        self.since: float | None = None  # when failures began (monotonic), None: reachable
        self._said_at: float | None = None  # when it was announced, None: not (yet)
        self._failures = 0

    @property
    def down(self) -> bool:
        return self.since is not None

    def failed(self, exc: BaseException, *, where: str) -> bool:
        """Report a failure of `where` (claim, listen, resync...). True when it is the
        database being unreachable (then it is logged here, once or at the slow interval);
        False when it is something else, for the caller to log."""
        if not unreachable(exc):
            return False
        now = self._clock()
        self._failures += 1
        if self.since is None:
            self.since, self._failures = now, 1
        if self._said_at is None:
            if now - self.since >= self.grace:
                self._said_at = now
                log.error("database_unreachable", where=where, error=_describe(exc),
                          for_seconds=round(now - self.since, 1), failures=self._failures,
                          meaning="nothing is reconciled and webhooks are answered 503 until "
                                  "it is back; tried again all the while, said again every "
                                  f"{self.every:g}s while it lasts")
        elif now - self._said_at >= self.every:
            self._said_at = now
            log.warning("database_still_unreachable", for_seconds=round(now - self.since),
                        failures=self._failures, error=_describe(exc))
        return True

    def ok(self) -> None:
        """A query succeeded: if the database was said to be unreachable, say it is back
        (once); a blip never announced ends silently."""
        if self.since is None:
            return
        if self._said_at is not None:
            log.info("database_back", after_seconds=round(self._clock() - self.since, 1),
                     failures=self._failures)
        self.since, self._said_at, self._failures = None, None, 0
